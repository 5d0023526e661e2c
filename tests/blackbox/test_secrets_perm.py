"""Permission warnings for secrets on disk (butlerd.conf(5), "STARTUP CHECKS"): the
configuration file when it holds a secret, and the private keys it names, are
reported when other users can read or write them - by butlerd -t and at start."""

import os

import harness
from harness import Raw

TOKENS = {"butlerd": {"auth": {"enable": True, "tokens": Raw(
    '( { name = "a"; sha256 = "%s"; scopes = [ "ping" ]; } )' % ("a" * 64))}}}


def write(tmp_path, overrides, mode):
    p = tmp_path / "t.conf"
    harness.write_file(p, harness.config_text(harness.free_port(), tmp_path, overrides))
    os.chmod(p, mode)
    return p


def configtest(p):
    return harness.run_cli(["-t", "-c", str(p)])


def test_world_readable_config_with_secrets(tmp_path):
    p = write(tmp_path, TOKENS, 0o644)
    cp = configtest(p)
    assert cp.returncode == 0, cp.stderr
    want = "the configuration file %s is readable by other users (mode 0644): chmod o-rwx %s" % (p, p)
    assert want in cp.stderr, cp.stderr
    os.chmod(p, 0o640)
    assert "configuration file" not in configtest(p).stderr


def test_world_writable_config(tmp_path):
    p = write(tmp_path, {"butlerd": {"mqtt": {"password": "s3cret"}}}, 0o606)
    assert "is writable by other users (mode 0606)" in configtest(p).stderr


def test_config_without_secrets_is_not_reported(tmp_path):
    p = write(tmp_path, {}, 0o644)
    cp = configtest(p)
    assert cp.returncode == 0 and "other users" not in cp.stderr, cp.stderr


def test_private_keys(tmp_path):
    key = tmp_path / "client_key.pem"
    key.write_text("-----BEGIN PRIVATE KEY-----\n")
    os.chmod(key, 0o644)
    p = write(tmp_path, {"Butler": {"cert": {"clientCertKey": str(key)}}}, 0o600)
    cp = configtest(p)
    assert ("Butler.cert.clientCertKey file %s is readable by other users (mode 0644)"
            % key) in cp.stderr, cp.stderr
    os.chmod(key, 0o600)
    assert "clientCertKey file" not in configtest(p).stderr


def test_warning_at_start_and_reload(start_daemon):
    old = os.umask(0o022)   # the harness writes the file: 0644
    try:
        d = start_daemon(TOKENS)
    finally:
        os.umask(old)
    assert oct(os.stat(d.config_path).st_mode & 0o777) == "0o644"
    d.wait_log("the configuration file %s is readable by other users" % d.config_path, 10)
    mark = d.mark()
    d.signal(__import__("signal").SIGHUP)
    d.wait_log("is readable by other users", 10, start=mark)
