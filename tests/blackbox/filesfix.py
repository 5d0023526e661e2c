"""Shared layout, helpers and fixtures of the file and directory endpoint tests
(test_files*.py): real directories under pytest's temporary root, approved
pairs, a daemon whose working directory is its own subdirectory (relative paths
resolve there), and the snapshot of the directory outside the approved ones
that escape tests compare before and after."""

import os
import secrets
import shutil
import stat
import tempfile

import pytest

import harness
from harness import jdump, err

MISSING = err(400, "Required parameter missing")
TOO_LONG = err(400, "Path too long (max 4095 bytes, 255 bytes per name)")
NUL = err(400, "Path must not contain a NUL character")
NO_COPY = err(403, "No approved fromDir/toDir for file copy")
NO_MOVE = err(403, "No approved fromDir/toDir for file move")
NO_DELETE = err(403, "No approved directory for file delete")
NO_SOURCE = err(400, "fromFile does not exist")
SAME = err(400, "Source and destination must not be the same")
EXISTS = err(409, "toFile already exists and overwrite is false")
IS_DIR = err(409, "toFile is an existing directory")
NOT_DIR = err(409, "toFile exists and is not a directory")
INSIDE = err(400, "toFile must not be inside fromFile")
DEL_MISSING = err(400, "Delete failed, file does not exist")
DEL_DIR = err(400, "Delete failed, path is a directory")
MKDIR_FAILED = err(500, "Failed to create directory")
QVD_ESCAPE = err(403, "Directory must be within the QVD folder")


def unc(op, path):
    return err(400, "UNC paths not supported for file %s operations when running Butler on "
                    "non-Windows OS. Path: %s" % (op, path))


def write(path, data=b"data", mode=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
    if mode is not None:
        os.chmod(path, mode)
    return path


def read(path):
    with open(path, "rb") as f:
        return f.read()


def tree(top):
    """Everything under TOP: relative path -> (kind, content or link target,
    mode, mtime_ns). Directories' mtimes too, so a created or removed entry shows."""
    out = {}
    st = os.lstat(top)
    out["."] = ("dir", None, stat.S_IMODE(st.st_mode), st.st_mtime_ns)
    for dirpath, dirnames, filenames in os.walk(top):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, top)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p), 0, 0)
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", None, stat.S_IMODE(st.st_mode), st.st_mtime_ns)
            elif stat.S_ISREG(st.st_mode):
                out[rel] = ("file", read(p), stat.S_IMODE(st.st_mode), st.st_mtime_ns)
            else:  # never opened: a FIFO would block
                out[rel] = ("special", stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), 0)
    return out


def no_temp_left(top):
    for dirpath, dirnames, filenames in os.walk(top):
        for n in dirnames + filenames:
            assert not n.startswith(".butlerd-"), os.path.join(dirpath, n)


def libconfig_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def pairs(*entries):
    return harness.Raw("( %s )" % ", ".join(
        "{ fromDirectory = %s; toDirectory = %s; }" % (libconfig_str(a), libconfig_str(b))
        for a, b in entries))


FLAGS_ON = {"fileCopy": True, "fileMove": True, "fileDelete": True, "createDir": True,
            "createDirQVD": True}


class Layout:
    """The directories of one daemon: approved pairs, a delete directory, the QVD
    folder, an outside directory that must never change, and a second file
    system (/dev/shm) for moves when it is one."""

    def __init__(self, top):
        self.top = str(top)
        j = lambda *p: os.path.join(self.top, *p)  # noqa: E731
        self.cfrom, self.cto = j("copy", "from"), j("copy", "to")
        self.mfrom, self.mto = j("move", "from"), j("move", "to")
        self.dele = j("del")
        self.qvd = j("qvd")
        self.outside = j("outside")
        self.cwd = j("d")
        for p in (self.cfrom, self.cto, self.mfrom, self.mto, self.dele, self.qvd,
                  self.outside, self.cwd):
            os.makedirs(p, exist_ok=True)
        write(os.path.join(self.outside, "secret.txt"), b"outside secret")
        os.makedirs(os.path.join(self.outside, "sub"), exist_ok=True)
        self.shm = None
        if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
            self.shm = tempfile.mkdtemp(prefix="butlerd-files-", dir="/dev/shm")

    def cleanup(self):
        if self.shm:
            shutil.rmtree(self.shm, ignore_errors=True)

    def overrides(self, flags=None):
        move = [(self.mfrom, self.mto)]
        if self.shm:
            move.append((self.mfrom, self.shm))
            move.append((self.shm, self.mto))
        return {"Butler": {
            "restServerEndpointsEnable": dict(FLAGS_ON, **(flags or {})),
            # the second copy entry is relative: resolved against the working directory
            "fileCopyApprovedDirectories": pairs((self.cfrom, self.cto), ("rel/from", "rel/to")),
            "fileMoveApprovedDirectories": pairs(*move),
            "fileDeleteApprovedDirectories": [self.dele],
            "configDirectories": {"qvdPath": self.qvd},
        }}


def call(d, method, target, body):
    """METHOD TARGET with BODY (an object is sent as JSON) on daemon D."""
    if not isinstance(body, (bytes, str)):
        body = jdump(body)
    if isinstance(body, str):
        body = body.encode()
    return d.request(method, target, {"Content-Type": "application/json"}, body)


class FilesDaemon(harness.Daemon):
    def call(self, method, target, body):
        return call(self, method, target, body)

    def copy(self, body):
        return self.call("PUT", "/v4/filecopy", body)

    def move(self, body):
        return self.call("PUT", "/v4/filemove", body)

    def delete(self, body):
        return self.call("DELETE", "/v4/filedelete", body)

    def mkdir(self, body):
        return self.call("POST", "/v4/createdir", body)

    def mkdir_qvd(self, body):
        return self.call("POST", "/v4/createdirqvd", body)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    lay = Layout(tmp_path_factory.mktemp("files"))
    d = FilesDaemon(lay.cwd, lay.overrides())
    d.lay = lay
    try:
        d.start()
        yield d
    finally:
        d.stop()
        lay.cleanup()
        print(d.log_tail(200))


def uniq(prefix="t"):
    return "%s-%s" % (prefix, secrets.token_hex(4))


@pytest.fixture
def outside(env):
    """Asserts after the test that nothing outside the approved directories changed."""
    before = tree(env.lay.outside)
    yield env.lay.outside
    assert tree(env.lay.outside) == before


def copy_body(src, dst, **kw):
    b = {"fromFile": src, "toFile": dst}
    b.update(kw)
    return b


def copy_echo(src, dst, overwrite=False, preserve=False):
    return jdump({"fromFile": src, "toFile": dst, "overwrite": overwrite,
                  "preserveTimestamp": preserve})


def move_echo(src, dst, overwrite=False):
    return jdump({"fromFile": src, "toFile": dst, "overwrite": overwrite})
