"""File delete (DELETE /v4/filedelete), directory creation (POST /v4/createdir,
/v4/createdirqvd and the /v2 forms) and the enable flags of the file routes."""

import os
import threading

from harness import jdump, not_found, validation
from harness import check_204, check_reply as check
from filesfix import (  # noqa: F401
    DEL_DIR,
    DEL_MISSING,
    FLAGS_ON,
    Layout,
    MISSING,
    MKDIR_FAILED,
    NO_DELETE,
    NUL,
    QVD_ESCAPE,
    TOO_LONG,
    copy_body,
    read,
    unc,
    uniq,
    write)
from filesfix import env, outside  # noqa: F401 (pytest fixtures)


# ==================================================================== delete

def test_delete_file(env):
    lay, n = env.lay, uniq()
    f = write(os.path.join(lay.dele, n, "deleteme.txt"))
    check_204(env.delete({"deleteFile": f}))
    assert not os.path.exists(f) and os.path.isdir(os.path.join(lay.dele, n))


def test_delete_missing_and_directory(env):
    lay, n = env.lay, uniq()
    check(env.delete({"deleteFile": os.path.join(lay.dele, n, "nope")}), 400, DEL_MISSING)
    d = os.path.join(lay.dele, n, "dir")
    write(os.path.join(d, "keep.txt"))
    check(env.delete({"deleteFile": d}), 400, DEL_DIR)
    check(env.delete({"deleteFile": d + "/"}), 400, DEL_DIR)
    assert os.listdir(d) == ["keep.txt"]


def test_delete_symlink_removes_link_only(env, outside):
    lay, n = env.lay, uniq()
    os.makedirs(os.path.join(lay.dele, n))
    link = os.path.join(lay.dele, n, "l")
    os.symlink(os.path.join(lay.outside, "secret.txt"), link)
    dlink = os.path.join(lay.dele, n, "dl")
    os.symlink(lay.outside, dlink)
    check_204(env.delete({"deleteFile": link}))
    check_204(env.delete({"deleteFile": dlink}))
    assert not os.path.lexists(link) and not os.path.lexists(dlink)


def test_delete_escapes(env, outside):
    lay, n = env.lay, uniq()
    os.makedirs(os.path.join(lay.dele, n))
    os.symlink(lay.outside, os.path.join(lay.dele, n, "out"))
    os.symlink("../../outside", os.path.join(lay.dele, n, "relout"))
    for p in (os.path.join(lay.outside, "secret.txt"),
              os.path.join(lay.dele, "..", "outside", "secret.txt"),
              os.path.join(lay.dele, n, "out", "secret.txt"),
              os.path.join(lay.dele, n, "relout", "secret.txt"),
              os.path.join(lay.dele, n, "out", "nope"),
              lay.dele,
              "../outside/secret.txt"):
        check(env.delete({"deleteFile": p}), 403, NO_DELETE)
    # percent-encoded: a literal name, which does not exist
    check(env.delete({"deleteFile": lay.dele + "/%2e%2e/outside/secret.txt"}), 400, DEL_MISSING)


def test_delete_unc_validation_and_override(env):
    lay, n = env.lay, uniq()
    for p in ("\\\\srv\\share\\f", "//srv/share/f"):
        check(env.delete({"deleteFile": p}), 400, unc("delete", p))
    check(env.delete({}), 400, MISSING)
    check(env.delete({"deleteFile": ""}), 400, MISSING)
    check(env.delete({"deleteFile": os.path.join(lay.dele, "x" * 300)}), 400, TOO_LONG)
    check(env.request("DELETE", "/v4/filedelete"), 400, validation("body must be object"))
    # load scripts: POST with X-HTTP-Method-Override: DELETE
    f = write(os.path.join(lay.dele, n, "viapost.txt"))
    r = env.request("POST", "/v4/filedelete", {"Content-Type": "application/json",
                                               "X-HTTP-Method-Override": "delete"},
                    jdump({"deleteFile": f}))
    check_204(r)
    assert not os.path.exists(f)


# ================================================================= createdir

def test_createdir(env):
    lay, n = env.lay, uniq()
    p = os.path.join(lay.top, "made", n, "a", "b")
    check(env.mkdir({"directory": p}), 201, jdump({"directory": p}))
    assert os.path.isdir(p)
    check(env.mkdir({"directory": p}), 201, jdump({"directory": p}))  # exists: fine
    # relative to the working directory; echoed as given
    check(env.mkdir({"directory": "rel-made/%s//c/./" % n}), 201,
          jdump({"directory": "rel-made/%s//c/./" % n}))
    assert os.path.isdir(os.path.join(lay.cwd, "rel-made", n, "c"))


def test_createdir_errors(env):
    lay, n = env.lay, uniq()
    check(env.mkdir({}), 400, MISSING)
    check(env.mkdir({"directory": ""}), 400, MISSING)
    f = write(os.path.join(lay.top, "made", n, "file"))
    check(env.mkdir({"directory": f}), 500, MKDIR_FAILED)
    check(env.mkdir({"directory": f + "/below"}), 500, MKDIR_FAILED)
    check(env.mkdir({"directory": os.path.join(lay.top, "made", "n" * 256)}), 400, TOO_LONG)
    assert read(f) == b"data"


def test_v2_createdir(env):
    lay, n = env.lay, uniq()
    r = env.get("/v2/createDir?directory=d:/abc/" + n)
    check(r, 200, jdump({"directory": "d:/abc/" + n}))
    assert os.path.isdir(os.path.join(lay.cwd, "d:", "abc", n))
    p = os.path.join(lay.top, "made", n, "v2 dir")
    r = env.get("/V2/CREATEDIR?directory=" + p.replace(" ", "+"))
    check(r, 200, jdump({"directory": p}))
    assert os.path.isdir(p)
    check(env.get("/v2/createDir"), 400,
          validation("querystring must have required property 'directory'"))
    check(env.get("/v2/createDir?directory="), 400, MISSING)
    check(env.get("/v2/createDir?directory=a&directory=b"), 400,
          validation("querystring/directory must be string"))
    # HEAD runs the GET handler in full (spec 1.3)
    h = os.path.join(lay.top, "made", n, "by-head")
    r = env.request("HEAD", "/v2/createDir?directory=" + h)
    assert r.status == 200 and r.body == b"", r
    assert os.path.isdir(h)


# ============================================================== createdirqvd

def test_createdirqvd(env):
    lay, n = env.lay, uniq()
    check(env.mkdir_qvd({"directory": n + "/sub1/sub2"}), 201,
          jdump({"directory": n + "/sub1/sub2"}))
    assert os.path.isdir(os.path.join(lay.qvd, n, "sub1", "sub2"))
    # a leading / or \ is still relative to the QVD folder, \ is a separator
    check(env.mkdir_qvd({"directory": "/" + n + "/lead"}), 201,
          jdump({"directory": "/" + n + "/lead"}))
    check(env.mkdir_qvd({"directory": "\\" + n + "\\win\\dir"}), 201,
          jdump({"directory": "\\" + n + "\\win\\dir"}))
    assert os.path.isdir(os.path.join(lay.qvd, n, "lead"))
    assert os.path.isdir(os.path.join(lay.qvd, n, "win", "dir"))
    # "" is the QVD folder itself; ".." that stays inside is fine
    check(env.mkdir_qvd({"directory": ""}), 201, b'{"directory":""}')
    check(env.mkdir_qvd({"directory": n + "/x/../y"}), 201, jdump({"directory": n + "/x/../y"}))
    assert os.path.isdir(os.path.join(lay.qvd, n, "y"))
    assert not os.path.exists(os.path.join(lay.qvd, n, "x"))
    # a relative link that stays inside is followed
    os.symlink("sub1", os.path.join(lay.qvd, n, "alias"))
    check(env.mkdir_qvd({"directory": n + "/alias/via-link"}), 201,
          jdump({"directory": n + "/alias/via-link"}))
    assert os.path.isdir(os.path.join(lay.qvd, n, "sub1", "via-link"))


def test_createdirqvd_escapes(env, outside):
    lay, n = env.lay, uniq()
    for d in ("../../etc", "..\\..\\Windows", "sub/../../x", "..", "../outside/new",
              "a/b/../../../outside"):
        check(env.mkdir_qvd({"directory": d}), 403, QVD_ESCAPE)
    # an absolute path where a relative one is expected stays inside
    absd = os.path.join(lay.outside, "made-" + n)
    check(env.mkdir_qvd({"directory": absd}), 201, jdump({"directory": absd}))
    assert os.path.isdir(lay.qvd + absd)
    # percent-encoded dots in a body are names
    check(env.mkdir_qvd({"directory": n + "/%2e%2e/%2e%2e/outside"}), 201,
          jdump({"directory": n + "/%2e%2e/%2e%2e/outside"}))
    assert os.path.isdir(os.path.join(lay.qvd, n, "%2e%2e", "%2e%2e", "outside"))
    # symbolic links in the QVD folder that lead out
    os.symlink(lay.outside, os.path.join(lay.qvd, n, "abs-out"))
    os.symlink("../../outside", os.path.join(lay.qvd, n, "rel-out"))
    for d in ("abs-out/new", "rel-out/new", "rel-out/sub/new/deeper", "abs-out"):
        check(env.mkdir_qvd({"directory": n + "/" + d}), 403, QVD_ESCAPE)
    # the link itself exists, so creating "rel-out" is a no-op... through the link: refused
    # UNC-looking input is just a path below the QVD folder
    check(env.mkdir_qvd({"directory": "\\\\server\\share\\" + n}), 201,
          jdump({"directory": "\\\\server\\share\\" + n}))
    assert os.path.isdir(os.path.join(lay.qvd, "server", "share", n))
    check(env.mkdir_qvd({"directory": n + "/" + "q" * 256}), 400, TOO_LONG)
    check(env.mkdir_qvd({"directory": n + "\u0000/../../.."}), 400, NUL)


def test_v2_createdirqvd(env, outside):
    lay, n = env.lay, uniq()
    check(env.get("/v2/createDirQVD?directory=%s/abc/def" % n), 200,
          jdump({"directory": n + "/abc/def"}))
    assert os.path.isdir(os.path.join(lay.qvd, n, "abc", "def"))
    # query values are percent-decoded once: %2e%2e is "..", and is caught
    check(env.get("/v2/createDirQVD?directory=%2e%2e%2f%2e%2e%2foutside%2fx"), 403, QVD_ESCAPE)
    check(env.get("/v2/createdirqvd?directory=..%5C..%5Cx"), 403, QVD_ESCAPE)
    # decoded once only: %252e stays %2e
    check(env.get("/v2/createDirQVD?directory=%s/%%252e%%252e" % n), 200,
          jdump({"directory": n + "/%2e%2e"}))
    assert os.path.isdir(os.path.join(lay.qvd, n, "%2e%2e"))
    check(env.get("/v2/createDirQVD?directory="), 200, b'{"directory":""}')
    check(env.get("/v2/createDirQVD"), 400,
          validation("querystring must have required property 'directory'"))


def test_createdirqvd_missing_parameter(env):
    check(env.mkdir_qvd({}), 400, MISSING)
    check(env.mkdir_qvd({"dir": "x"}), 400, MISSING)
    check(env.request("POST", "/v4/createdirqvd"), 400, validation("body must be object"))


def test_createdirqvd_without_qvdpath(start_daemon, tmp_path):
    d = start_daemon({"Butler": {"restServerEndpointsEnable": {"createDirQVD": True}}})
    r = d.request("POST", "/v4/createdirqvd", {"Content-Type": "application/json"},
                  b'{"directory":"x"}')
    check(r, 500, MKDIR_FAILED)
    check(d.get("/v2/createDirQVD?directory=x"), 500, MKDIR_FAILED)
    assert "qvdPath" in d.log()


def test_createdirqvd_creates_missing_qvd_folder(start_daemon, tmp_path):
    qvd = str(tmp_path / "not" / "yet" / "qvd")
    d = start_daemon({"Butler": {"restServerEndpointsEnable": {"createDirQVD": True},
                                 "configDirectories": {"qvdPath": qvd}}})
    r = d.request("POST", "/v4/createdirqvd", {"Content-Type": "application/json"},
                  b'{"directory":"a/b"}')
    check(r, 201, b'{"directory":"a/b"}')
    assert os.path.isdir(os.path.join(qvd, "a", "b"))


# ============================================================ enable flags

ROUTES = [("PUT", "/v4/filecopy", "fileCopy"), ("PUT", "/v4/filemove", "fileMove"),
          ("DELETE", "/v4/filedelete", "fileDelete"), ("POST", "/v4/createdir", "createDir"),
          ("POST", "/v4/createdirqvd", "createDirQVD"),
          ("GET", "/v2/createDir?directory=x", "createDir"),
          ("GET", "/v2/createDirQVD?directory=x", "createDirQVD")]


def test_disabled_routes_404(start_daemon, tmp_path):
    lay = Layout(tmp_path / "off")
    try:
        d = start_daemon(lay.overrides({k: False for k in FLAGS_ON}))
        for method, target, _ in ROUTES:
            body = b'{"directory":"x","fromFile":"a","toFile":"b","deleteFile":"c"}'
            r = d.request(method, target, {"Content-Type": "application/json"},
                          None if method == "GET" else body)
            check(r, 404, not_found(method, target))
        assert not os.path.exists(os.path.join(d.tmpdir, "x"))
    finally:
        lay.cleanup()


def test_one_flag_enables_one_route(start_daemon, tmp_path):
    lay = Layout(tmp_path / "one")
    try:
        off = {k: False for k in FLAGS_ON}
        off["createDir"] = True
        d = start_daemon(lay.overrides(off))
        r = d.request("POST", "/v4/createdir", {"Content-Type": "application/json"},
                      b'{"directory":"made"}')
        check(r, 201, b'{"directory":"made"}')
        check(d.request("POST", "/v4/createdirqvd", {"Content-Type": "application/json"},
                        b'{"directory":"x"}'), 404, not_found("POST", "/v4/createdirqvd"))
    finally:
        lay.cleanup()


def test_v2_disabled(start_daemon, tmp_path):
    lay = Layout(tmp_path / "v2off")
    try:
        ov = lay.overrides()
        ov["butlerd"] = {"v2Api": {"enable": False}}
        d = start_daemon(ov)
        for t in ("/v2/createDir?directory=x", "/v2/createDirQVD?directory=x"):
            check(d.get(t), 404, not_found("GET", t))
        assert not os.path.exists(os.path.join(d.tmpdir, "x"))
        assert not os.path.exists(os.path.join(lay.qvd, "x"))
    finally:
        lay.cleanup()


def test_parallel_copies(env):
    """Copies run on job threads, several at once, each to its own temporary name."""
    lay, n = env.lay, uniq()
    data = os.urandom(8 * 1024 * 1024)
    src = write(os.path.join(lay.cfrom, n, "big"), data)
    results = []

    def run(i):
        results.append(env.copy(copy_body(src, os.path.join(lay.cto, n, "c%d" % i))).status)

    ts = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert results == [201] * 4
    for i in range(4):
        assert os.path.getsize(os.path.join(lay.cto, n, "c%d" % i)) == len(data)
