"""File copy (PUT /v4/filecopy; butlerd-api(7), FILES): every success path, the
overwrite rules, missing sources, preserveTimestamp, and every escape attempt
(.., percent-encoded forms, absolute paths where a relative one is expected,
symbolic links leading out of an approved directory, UNC paths, empty, NUL and
over-long paths); each escape test asserts that nothing outside changed.
test_files_move.py has the move, test_files_dirs.py delete, createdir and
createdirqvd and the /v2 forms."""

import os
import stat
import time

from harness import validation, err
from harness import check_reply as check
from filesfix import (  # noqa: F401
    EXISTS,
    INSIDE,
    IS_DIR,
    MISSING,
    NOT_DIR,
    NO_COPY,
    NO_SOURCE,
    NUL,
    SAME,
    TOO_LONG,
    call,
    copy_body,
    copy_echo,
    no_temp_left,
    pairs,
    read,
    tree,
    unc,
    uniq,
    write)
from filesfix import env, outside  # noqa: F401 (pytest fixtures)


# ====================================================================== copy

def test_copy_file_creates_parents(env):
    lay, n = env.lay, uniq()
    src = write(os.path.join(lay.cfrom, n, "copyme.txt"), b"hello \xc3\xa9\x00\xff", 0o640)
    dst = os.path.join(lay.cto, n, "a", "b", "copied.txt")
    check(env.copy(copy_body(src, dst)), 201, copy_echo(src, dst))
    assert read(dst) == b"hello \xc3\xa9\x00\xff"
    assert stat.S_IMODE(os.stat(dst).st_mode) == 0o640
    assert read(src) == b"hello \xc3\xa9\x00\xff"
    no_temp_left(os.path.join(lay.cto, n))


def test_copy_large_file(env):
    lay, n = env.lay, uniq()
    data = os.urandom(3 * 1024 * 1024 + 17)
    src = write(os.path.join(lay.cfrom, n, "big.bin"), data)
    dst = os.path.join(lay.cto, n, "big.bin")
    check(env.copy(copy_body(src, dst)), 201, copy_echo(src, dst))
    assert read(dst) == data


def test_copy_quoted_flags_and_echo_form(env):
    """Load scripts quote everything; paths are echoed normalised."""
    lay, n = env.lay, uniq()
    src = write(os.path.join(lay.cfrom, n, "x.txt"))
    given_src = lay.cfrom + "//" + n + "/./sub/../x.txt"
    given_dst = lay.cto.replace("/", "\\") + "\\" + n + "\\y.txt\\"
    r = env.copy({"fromFile": given_src, "toFile": given_dst, "overwrite": "true",
                  "preserveTimestamp": "false"})
    dst = os.path.join(lay.cto, n, "y.txt")
    check(r, 201, copy_echo(src, dst, overwrite=True))
    assert read(dst) == b"data"


def test_copy_relative_paths(env):
    """Relative paths and relative approved directories resolve against the
    working directory; the echo keeps them relative."""
    lay, n = env.lay, uniq()
    write(os.path.join(lay.cwd, "rel", "from", n, "f.txt"), b"rel")
    r = env.copy(copy_body("rel/from/%s/f.txt" % n, "./rel/to/%s/g.txt" % n))
    check(r, 201, copy_echo("rel/from/%s/f.txt" % n, "rel/to/%s/g.txt" % n))
    assert read(os.path.join(lay.cwd, "rel", "to", n, "g.txt")) == b"rel"


def test_copy_overwrite_rules(env):
    lay, n = env.lay, uniq()
    src = write(os.path.join(lay.cfrom, n, "s.txt"), b"new")
    dst = write(os.path.join(lay.cto, n, "d.txt"), b"old")
    # overwrite false (default and explicit): 409, destination untouched
    check(env.copy(copy_body(src, dst)), 409, EXISTS)
    check(env.copy(copy_body(src, dst, overwrite=False)), 409, EXISTS)
    assert read(dst) == b"old"
    # overwrite true: replaced
    check(env.copy(copy_body(src, dst, overwrite=True)), 201, copy_echo(src, dst, True))
    assert read(dst) == b"new"
    # a file onto an existing directory: 409 even with overwrite
    ddir = os.path.join(lay.cto, n, "adir")
    write(os.path.join(ddir, "keep"), b"k")
    check(env.copy(copy_body(src, ddir, overwrite=True)), 409, IS_DIR)
    check(env.copy(copy_body(src, ddir)), 409, EXISTS)
    assert os.listdir(ddir) == ["keep"]
    # a directory onto an existing file
    sdir = os.path.join(lay.cfrom, n, "sdir")
    write(os.path.join(sdir, "f"), b"f")
    check(env.copy(copy_body(sdir, dst, overwrite=True)), 409, NOT_DIR)
    assert read(dst) == b"new"


def test_copy_missing_source_creates_nothing(env):
    lay, n = env.lay, uniq()
    src = os.path.join(lay.cfrom, n, "nope.txt")
    dst = os.path.join(lay.cto, n, "deep", "x.txt")
    check(env.copy(copy_body(src, dst)), 400, NO_SOURCE)
    assert not os.path.exists(os.path.join(lay.cto, n))


def test_copy_same_path_approved(start_daemon, tmp_path):
    d_dir = tmp_path / "same"
    d_dir.mkdir()
    p = write(str(d_dir / "f.txt"), b"s")
    d = start_daemon({"Butler": {"restServerEndpointsEnable": {"fileCopy": True, "fileMove": True},
                                 "fileCopyApprovedDirectories": pairs((str(d_dir), str(d_dir))),
                                 "fileMoveApprovedDirectories": pairs((str(d_dir), str(d_dir)))}})
    check(call(d, "PUT", "/v4/filecopy", (copy_body(p, p, overwrite=True))), 400, SAME)
    check(call(d, "PUT", "/v4/filecopy", (copy_body(p, str(d_dir) + "//f.txt"))), 400, SAME)
    check(call(d, "PUT", "/v4/filemove", (copy_body(p, p, overwrite=True))), 400, SAME)
    # a hard link is the same file too
    os.link(p, str(d_dir / "hard.txt"))
    check(call(d, "PUT", "/v4/filemove", (copy_body(p, str(d_dir / "hard.txt"), overwrite=True))),
          400, SAME)
    # missing source is reported before "same"
    q = str(d_dir / "nope")
    check(call(d, "PUT", "/v4/filecopy", (copy_body(q, q))), 400, NO_SOURCE)
    assert read(p) == b"s" and read(str(d_dir / "hard.txt")) == b"s"


def test_copy_directory_tree(env, outside):
    lay, n = env.lay, uniq()
    s = os.path.join(lay.cfrom, n, "tree")
    write(os.path.join(s, "a.txt"), b"A", 0o600)
    write(os.path.join(s, "sub", "b.txt"), b"B")
    os.makedirs(os.path.join(s, "empty"))
    os.symlink("sub/b.txt", os.path.join(s, "rel-link"))
    os.symlink(os.path.join(lay.outside, "secret.txt"), os.path.join(s, "out-link"))
    os.chmod(os.path.join(s, "sub"), 0o750)
    dst = os.path.join(lay.cto, n, "copied")
    check(env.copy(copy_body(s, dst)), 201, copy_echo(s, dst))
    assert read(os.path.join(dst, "a.txt")) == b"A"
    assert stat.S_IMODE(os.stat(os.path.join(dst, "a.txt")).st_mode) == 0o600
    assert read(os.path.join(dst, "sub", "b.txt")) == b"B"
    assert stat.S_IMODE(os.stat(os.path.join(dst, "sub")).st_mode) == 0o750
    assert os.path.isdir(os.path.join(dst, "empty"))
    # links are copied as links, targets unchanged
    assert os.readlink(os.path.join(dst, "rel-link")) == "sub/b.txt"
    assert os.readlink(os.path.join(dst, "out-link")) == os.path.join(lay.outside, "secret.txt")
    no_temp_left(os.path.join(lay.cto, n))
    # onto the existing directory without overwrite: 409
    check(env.copy(copy_body(s, dst)), 409, EXISTS)


def test_copy_directory_skips_special_files(env):
    lay, n = env.lay, uniq()
    s = os.path.join(lay.cfrom, n, "t")
    write(os.path.join(s, "a.txt"), b"a")
    os.mkfifo(os.path.join(s, "fifo"))
    dst = os.path.join(lay.cto, n, "t")
    check(env.copy(copy_body(s, dst)), 201, copy_echo(s, dst))
    assert os.listdir(dst) == ["a.txt"]
    # a FIFO as fromFile is not copied (reading it could block for ever)
    check(env.copy(copy_body(os.path.join(s, "fifo"), dst + "f")), 500,
          err(500, "Failed copying file"))
    assert not os.path.exists(dst + "f")


def test_copy_directory_merge(env):
    lay, n = env.lay, uniq()
    s = os.path.join(lay.cfrom, n, "m")
    write(os.path.join(s, "both.txt"), b"from source")
    write(os.path.join(s, "sub", "new.txt"), b"new")
    dst = os.path.join(lay.cto, n, "m")
    write(os.path.join(dst, "both.txt"), b"old")
    write(os.path.join(dst, "only-dest.txt"), b"kept")
    write(os.path.join(dst, "sub", "kept.txt"), b"kept too")
    check(env.copy(copy_body(s, dst, overwrite=True)), 201, copy_echo(s, dst, True))
    assert read(os.path.join(dst, "both.txt")) == b"from source"
    assert read(os.path.join(dst, "only-dest.txt")) == b"kept"
    assert read(os.path.join(dst, "sub", "kept.txt")) == b"kept too"
    assert read(os.path.join(dst, "sub", "new.txt")) == b"new"


def test_copy_directory_into_itself_refused(start_daemon, tmp_path):
    top = tmp_path / "nest"
    s = top / "a"
    write(str(s / "f"), b"f")
    d = start_daemon({"Butler": {"restServerEndpointsEnable": {"fileCopy": True, "fileMove": True},
                                 "fileCopyApprovedDirectories": pairs((str(top), str(top))),
                                 "fileMoveApprovedDirectories": pairs((str(top), str(top)))}})
    before = tree(str(top))
    check(call(d, "PUT", "/v4/filecopy", (copy_body(str(s), str(s / "b" / "c")))), 400, INSIDE)
    check(call(d, "PUT", "/v4/filecopy", (copy_body(str(s), str(s / "c")))), 400, INSIDE)
    check(call(d, "PUT", "/v4/filemove", (copy_body(str(s), str(s / "b" / "c")))), 400, INSIDE)
    assert tree(str(top)) == before


def test_preserve_timestamp(env):
    lay, n = env.lay, uniq()
    src = write(os.path.join(lay.cfrom, n, "old.txt"), b"old")
    sdir = os.path.join(lay.cfrom, n, "olddir")
    write(os.path.join(sdir, "inner.txt"), b"i")
    atime, mtime = 1_000_000_000_123_456_789, 1_100_000_000_987_654_321
    os.utime(src, ns=(atime, mtime))
    os.utime(os.path.join(sdir, "inner.txt"), ns=(atime, mtime))
    os.utime(sdir, ns=(atime, mtime))
    dst = os.path.join(lay.cto, n, "kept.txt")
    check(env.copy(copy_body(src, dst, preserveTimestamp=True)), 201,
          copy_echo(src, dst, preserve=True))
    st = os.stat(dst)
    assert (st.st_atime_ns, st.st_mtime_ns) == (atime, mtime)
    ddir = os.path.join(lay.cto, n, "keptdir")
    check(env.copy(copy_body(sdir, ddir, preserveTimestamp="true")), 201,
          copy_echo(sdir, ddir, preserve=True))
    for p in (ddir, os.path.join(ddir, "inner.txt")):
        assert os.stat(p).st_mtime_ns == mtime, p
    # without the flag the copy is new
    dst2 = os.path.join(lay.cto, n, "fresh.txt")
    check(env.copy(copy_body(src, dst2)), 201, copy_echo(src, dst2))
    assert abs(os.stat(dst2).st_mtime - time.time()) < 60


def test_copy_follows_source_link_inside(env):
    """A symbolic link given as fromFile is followed when it stays inside."""
    lay, n = env.lay, uniq()
    write(os.path.join(lay.cfrom, n, "real.txt"), b"real")
    os.symlink("real.txt", os.path.join(lay.cfrom, n, "link.txt"))
    os.makedirs(os.path.join(lay.cfrom, n, "d"))
    os.symlink("..", os.path.join(lay.cfrom, n, "d", "up"))  # directory link, relative, inside
    src = os.path.join(lay.cfrom, n, "link.txt")
    dst = os.path.join(lay.cto, n, "out.txt")
    check(env.copy(copy_body(src, dst)), 201, copy_echo(src, dst))
    assert read(dst) == b"real" and not os.path.islink(dst)
    src = os.path.join(lay.cfrom, n, "d", "up", "up", "..", "real.txt")
    check(env.copy(copy_body(src, dst + "2")), 201,
          copy_echo(os.path.join(lay.cfrom, n, "d", "up", "real.txt"), dst + "2"))
    assert read(dst + "2") == b"real"


def test_copy_validation(env):
    lay = env.lay
    f = os.path.join(lay.cfrom, "x")
    t = os.path.join(lay.cto, "x")
    check(env.copy({"toFile": t}), 400, MISSING)
    check(env.copy({"fromFile": f}), 400, MISSING)
    check(env.copy({"fromFile": "", "toFile": t}), 400, MISSING)
    check(env.copy({"fromFile": f, "toFile": ""}), 400, MISSING)
    check(env.copy({"fromFile": None, "toFile": t}), 400, MISSING)
    check(env.copy({"fromFile": {"a": 1}, "toFile": t}), 400,
          validation("body/fromFile must be string"))
    check(env.copy({"fromFile": f, "toFile": t, "overwrite": "yes"}), 400,
          validation("body/overwrite must be boolean"))
    check(env.copy({"fromFile": f, "toFile": t, "preserveTimestamp": 2}), 400,
          validation("body/preserveTimestamp must be boolean"))
    check(env.copy([f, t]), 400, validation("body must be object"))
    r = env.request("PUT", "/v4/filecopy")
    check(r, 400, validation("body must be object"))


def test_copy_not_approved(env, outside):
    lay, n = env.lay, uniq()
    src = write(os.path.join(lay.cfrom, n, "f.txt"))
    # destination outside every toDirectory
    check(env.copy(copy_body(src, os.path.join(lay.outside, "f.txt"))), 403, NO_COPY)
    # source outside every fromDirectory (existence is not revealed: 403 first)
    check(env.copy(copy_body(os.path.join(lay.outside, "secret.txt"),
                             os.path.join(lay.cto, n, "s.txt"))), 403, NO_COPY)
    check(env.copy(copy_body(os.path.join(lay.outside, "nope"),
                             os.path.join(lay.cto, n, "s.txt"))), 403, NO_COPY)
    # approved directories of different entries do not combine
    check(env.copy(copy_body(src, os.path.join(lay.cwd, "rel", "to", "f"))), 403, NO_COPY)
    # the approved directory itself is not inside itself as a parent
    check(env.copy(copy_body(lay.cfrom, os.path.join(lay.cto, n, "all"))), 403, NO_COPY)
    # a prefix that is not a whole segment
    check(env.copy(copy_body(src, lay.cto + "x/f.txt")), 403, NO_COPY)
    # the move list does not approve copies
    check(env.copy(copy_body(os.path.join(lay.mfrom, "f"), os.path.join(lay.mto, "f"))), 403,
          NO_COPY)
    assert not os.path.exists(os.path.join(lay.cto, n))


# ------------------------------------------------------------- escapes (copy)

def test_copy_dotdot_escape(env, outside):
    lay, n = env.lay, uniq()
    src = os.path.join(lay.cfrom, "..", "..", "outside", "secret.txt")
    check(env.copy(copy_body(src, os.path.join(lay.cto, n, "s.txt"))), 403, NO_COPY)
    srcok = write(os.path.join(lay.cfrom, n, "f.txt"))
    for dst in (os.path.join(lay.cto, "..", "..", "outside", "new.txt"),
                os.path.join(lay.cto, n, "..", "..", "..", "outside", "secret.txt"),
                "../outside/x.txt"):
        check(env.copy(copy_body(srcok, dst, overwrite=True)), 403, NO_COPY)
    assert not os.path.exists(os.path.join(lay.cto, n))


def test_copy_percent_encoded_is_literal(env, outside):
    """Bodies are not percent-decoded: %2e%2e is a name, not '..'."""
    lay, n = env.lay, uniq()
    src = lay.cfrom + "/%2e%2e/%2e%2e/outside/secret.txt"
    check(env.copy(copy_body(src, os.path.join(lay.cto, n, "s.txt"))), 400, NO_SOURCE)
    srcok = write(os.path.join(lay.cfrom, n, "f.txt"), b"pct")
    dst = lay.cto + "/" + n + "/%2e%2e/%2e%2e/%2E%2E/outside/new.txt"
    check(env.copy(copy_body(srcok, dst)), 201, copy_echo(srcok, dst))
    assert read(os.path.join(lay.cto, n, "%2e%2e", "%2e%2e", "%2E%2E", "outside", "new.txt")) \
        == b"pct"


def test_copy_symlink_source_leading_out(env, outside):
    lay, n = env.lay, uniq()
    os.makedirs(os.path.join(lay.cfrom, n))
    os.symlink(lay.outside, os.path.join(lay.cfrom, n, "absdir"))
    os.symlink("../../../outside", os.path.join(lay.cfrom, n, "reldir"))
    os.symlink(os.path.join(lay.outside, "secret.txt"), os.path.join(lay.cfrom, n, "abs.txt"))
    os.symlink("../../../outside/secret.txt", os.path.join(lay.cfrom, n, "rel.txt"))
    for src in ("absdir/secret.txt", "reldir/secret.txt", "abs.txt", "rel.txt", "absdir",
                "reldir/sub"):
        dst = os.path.join(lay.cto, n, "got")
        r = env.copy(copy_body(os.path.join(lay.cfrom, n, src), dst, overwrite=True))
        check(r, 403, NO_COPY)
        assert not os.path.exists(dst), src
    assert not os.path.exists(os.path.join(lay.cto, n))


def test_copy_absolute_link_inside_is_refused(env):
    """Policy: absolute symbolic links are not followed below an approved
    directory, even when they point inside it (RESOLVE_BENEATH)."""
    lay, n = env.lay, uniq()
    write(os.path.join(lay.cfrom, n, "real.txt"), b"r")
    os.symlink(os.path.join(lay.cfrom, n, "real.txt"), os.path.join(lay.cfrom, n, "abs.txt"))
    check(env.copy(copy_body(os.path.join(lay.cfrom, n, "abs.txt"),
                             os.path.join(lay.cto, n, "x"))), 403, NO_COPY)


def test_copy_destination_link_leading_out(env, outside):
    lay, n = env.lay, uniq()
    src = write(os.path.join(lay.cfrom, n, "evil.txt"), b"evil")
    os.makedirs(os.path.join(lay.cto, n))
    os.symlink(lay.outside, os.path.join(lay.cto, n, "absdir"))
    os.symlink("../../../outside", os.path.join(lay.cto, n, "reldir"))
    for d in ("absdir/new.txt", "reldir/new.txt", "absdir/secret.txt", "reldir/sub/deeper/x"):
        r = env.copy(copy_body(src, os.path.join(lay.cto, n, d), overwrite=True))
        check(r, 403, NO_COPY)


def test_copy_replaces_destination_link_not_target(env, outside):
    """A link as toFile is replaced by the copy; its target outside is untouched."""
    lay, n = env.lay, uniq()
    src = write(os.path.join(lay.cfrom, n, "new.txt"), b"new")
    link = os.path.join(lay.cto, n, "link.txt")
    os.makedirs(os.path.dirname(link))
    os.symlink(os.path.join(lay.outside, "secret.txt"), link)
    check(env.copy(copy_body(src, link)), 409, EXISTS)
    check(env.copy(copy_body(src, link, overwrite=True)), 201, copy_echo(src, link, True))
    assert not os.path.islink(link) and read(link) == b"new"


def test_copy_unc(env):
    lay = env.lay
    t = os.path.join(lay.cto, "x")
    for p in ("\\\\server\\share\\file.txt", "//server/share/file.txt"):
        check(env.copy(copy_body(p, t)), 400, unc("copy", p))
        check(env.copy(copy_body(os.path.join(lay.cfrom, "x"), p)), 400, unc("copy", p))
    # fromFile is checked first
    check(env.copy(copy_body("//a/b", "\\\\c\\d")), 400, unc("copy", "//a/b"))


def test_copy_long_and_nul_paths(env, outside):
    lay, n = env.lay, uniq()
    src = write(os.path.join(lay.cfrom, n, "f.txt"))
    long_name = os.path.join(lay.cto, n, "n" * 256)
    check(env.copy(copy_body(src, long_name)), 400, TOO_LONG)
    long_path = os.path.join(lay.cto, n, *(["d" * 200] * 25))
    check(env.copy(copy_body(src, long_path)), 400, TOO_LONG)
    check(env.copy(copy_body(src + "x" * 4000, os.path.join(lay.cto, n, "a"))), 400, TOO_LONG)
    # the path is within limits as given, but not once made absolute
    rel = "/".join(["r" * 200] * 20 + ["r" * 60])
    assert len(rel) <= 4095
    check(env.copy(copy_body(src, rel)), 400, TOO_LONG)
    # a NUL would cut the path short: refused, not truncated
    check(env.copy(copy_body(src, os.path.join(lay.cto, n, "a\u0000/../../../outside/x"))),
          400, NUL)
    check(env.copy(copy_body(src + "\u0000", os.path.join(lay.cto, n, "b"))), 400, NUL)
    assert not os.path.exists(os.path.join(lay.cto, n))
