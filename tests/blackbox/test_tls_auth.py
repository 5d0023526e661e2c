"""REST over TLS (butlerd-api(7), "Authentication"; butlerd.conf(5), REST server and
butlerd.http.clientCertCa): TLS 1.2 and 1.3 only; client certificates valid, missing
and from another CA, a certificate subject standing in for a token, and SIGHUP
rotating the server certificate and the tokens under load with no failed request."""

import hashlib
import http.client
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time

import pytest

import harness
from harness import Raw
from qlik_sim import make_certs

SUBJECT = "CN=%s,O=butlerd tests" % harness.CLIENT_CN   # RFC 4514 order, as make_certs makes it


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_certs(str(tmp_path_factory.mktemp("pki")))


def token_entry(name, token, scopes):
    return '{ name = "%s"; sha256 = "%s"; scopes = [ %s ]; }' % (
        name, hashlib.sha256(token.encode()).hexdigest(), ", ".join('"%s"' % s for s in scopes))


def tls_config(cert, key, client_ca=None, require=False, tokens=(), certs=(), auth=True):
    http_ = {}
    if client_ca:
        http_["clientCertCa"] = client_ca
    if require:
        http_["requireClientCert"] = True
    ov = {"Butler": {"restServerConfig": {"tls": {"enable": True, "cert": cert, "key": key}}},
          "butlerd": {"http": http_}}
    if auth:
        ov["butlerd"]["auth"] = {"enable": True, "tokens": Raw("( %s )" % ", ".join(tokens)),
                                 "certificates": Raw("( %s )" % ", ".join(certs))}
    return ov


def context(client=None, version=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if version:
        ctx.minimum_version = ctx.maximum_version = version
    if client:
        ctx.load_cert_chain(client[0], client[1])
    return ctx


def get(port, target="/v4/butlerping", client=None, token=None):
    c = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context(client))
    try:
        return harness.conn_request(c, "GET", target,
                                    {"Authorization": "Bearer " + token} if token else {})
    finally:
        c.close()


def peer_cert(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        with context().wrap_socket(s) as t:
            return t.getpeercert(binary_form=True)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_tls_versions(start_daemon, pki):
    d = start_daemon(tls_config(pki["server.pem"], pki["server_key.pem"], auth=False))
    for v in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        with socket.create_connection(("127.0.0.1", d.port), timeout=10) as s:
            with context(version=v).wrap_socket(s) as t:
                assert t.version() == {ssl.TLSVersion.TLSv1_2: "TLSv1.2",
                                       ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[v]
    for v in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
        ctx = context(version=v)
        try:
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        except ssl.SSLError:
            pass
        with socket.create_connection(("127.0.0.1", d.port), timeout=10) as s:
            with pytest.raises((ssl.SSLError, ConnectionResetError, OSError)):
                ctx.wrap_socket(s).do_handshake()
    assert get(d.port).status == 200


@pytest.fixture(scope="module")
def certd(tmp_path_factory, pki):
    ov = tls_config(pki["server.pem"], pki["server_key.pem"], client_ca=pki["root.pem"],
                    tokens=[token_entry("etl", "tok-etl", ["convert"])],
                    certs=['{ subject = "%s"; scopes = [ "ping", "keyvalues:write" ]; }' % SUBJECT])
    ov["Butler"]["restServerEndpointsEnable"] = {"keyValueStore": True}
    audit = tmp_path_factory.mktemp("audit") / "audit.log"
    ov["butlerd"]["audit"] = {"destination": "file", "file": str(audit)}
    ov["butlerd"]["logging"] = {"destination": "stderr", "level": "debug"}
    d = harness.Daemon(tmp_path_factory.mktemp("certd"), ov)
    d.audit = audit
    d.start()
    yield d
    d.stop()
    print(d.log_tail(100))


def test_valid_client_certificate_stands_in_for_a_token(certd, pki):
    client = (pki["client.pem"], pki["client_key.pem"])
    r = get(certd.port, client=client)
    assert r.status == 200, r
    r = get(certd.port, "/v4/base16tobase62?base16=ff", client=client)
    assert r.status == 403, r
    assert b"This client certificate lacks the scope convert" in r.body
    # a token wins over the certificate when both are there
    assert get(certd.port, "/v4/base16tobase62?base16=ff", client=client,
               token="tok-etl").status == 200
    # the subject goes to the audit trail
    c = http.client.HTTPSConnection("127.0.0.1", certd.port, timeout=10, context=context(client))
    r = harness.conn_request(c, "POST", "/v4/keyvalues/ns", {"Content-Type": "application/json"},
                             b'{"key":"k","value":"v"}')
    c.close()
    assert r.status == 201, r
    assert harness.wait_until(lambda: os.path.exists(certd.audit) and
                              'who="%s"' % SUBJECT in open(certd.audit).read(), 10)


def test_missing_client_certificate(certd):
    r = get(certd.port)
    assert r.status == 401, r
    assert b"An API token is required" in r.body
    assert get(certd.port, "/v4/base16tobase62?base16=ff", token="tok-etl").status == 200


def test_certificate_from_another_ca(certd, pki):
    r = get(certd.port, client=(pki["other_client.pem"], pki["other_client_key.pem"]))
    assert r.status == 401, r
    assert b"Client certificate not trusted" in r.body
    # not even with a good token: the connection's certificate is bad
    r = get(certd.port, "/v4/base16tobase62?base16=ff",
            client=(pki["other_client.pem"], pki["other_client_key.pem"]), token="tok-etl")
    assert r.status == 401, r


def test_require_client_certificate(start_daemon, pki):
    d = start_daemon(tls_config(pki["server.pem"], pki["server_key.pem"], client_ca=pki["root.pem"],
                                require=True, auth=False))
    assert get(d.port, client=(pki["client.pem"], pki["client_key.pem"])).status == 200
    r = get(d.port)
    assert r.status == 401 and b"A client certificate is required" in r.body, r
    r = get(d.port, client=(pki["other_client.pem"], pki["other_client_key.pem"]))
    assert r.status == 401 and b"Client certificate not trusted" in r.body, r


def test_client_ca_config_errors(tmp_path, pki):
    p = tmp_path / "t.conf"
    harness.write_file(p, harness.config_text(harness.free_port(), tmp_path, {
        "butlerd": {"http": {"clientCertCa": pki["root.pem"]}}}))
    cp = harness.run_cli(["-t", "-c", str(p)])
    assert cp.returncode != 0 and "need Butler.restServerConfig.tls.enable" in cp.stderr


# ---------------------------------------------------------------- rotation under load

def new_server_cert(dirpath, name):
    cert, key = os.path.join(dirpath, name + ".pem"), os.path.join(dirpath, name + "_key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert, "-days",
                    "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


def der(pem_path):
    with open(pem_path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


class Load:
    """Keep-alive HTTPS clients pinging with the current token; a request that gets
    anything but 200 is a failure. A reused connection the server closed while idle
    is reopened and the request sent again (what every HTTP client does for an
    idempotent request that never reached the server)."""

    def __init__(self, port, token, n=4):
        self.port, self.token = port, token
        self.ok = 0
        self.failures = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(n)]
        for t in self.threads:
            t.start()

    def run(self):
        c, used = None, False
        while not self.stop.is_set():
            if c is None:
                c = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=10,
                                                context=context())
                used = False
            tok = self.token
            try:
                r = harness.conn_request(c, "GET", "/v4/butlerping",
                                         {"Authorization": "Bearer " + tok})
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                    ssl.SSLEOFError, ssl.SSLZeroReturnError) as e:
                c.close()
                c = None
                if not used:
                    self.failures.append(repr(e))
                continue
            except Exception as e:  # noqa: BLE001
                self.failures.append(repr(e))
                c.close()
                c = None
                continue
            used = True
            if r.status != 200:
                self.failures.append((tok, r.status, r.body))
            else:
                self.ok += 1
            if (r.header("Connection") or "").lower() == "close":
                c.close()
                c = None
        if c:
            c.close()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(20)


def test_sighup_rotates_certificate_and_tokens_under_load(start_daemon, tmp_path):
    live = tmp_path / "live"
    live.mkdir()
    a_cert, a_key = new_server_cert(str(tmp_path), "a")
    b_cert, b_key = new_server_cert(str(tmp_path), "b")
    cert, key = str(live / "cert.pem"), str(live / "key.pem")
    shutil.copy(a_cert, cert)
    shutil.copy(a_key, key)
    one = [token_entry("one", "token-one", ["ping"])]
    both = one + [token_entry("two", "token-two", ["ping"])]
    d = start_daemon(tls_config(cert, key, tokens=one), workers=2)
    assert peer_cert(d.port) == der(a_cert)
    load = Load(d.port, "token-one")
    try:
        assert harness.wait_until(lambda: load.ok > 20, 20)
        # 1. new certificate and a second token
        for src, dst in ((b_cert, cert), (b_key, key)):
            shutil.copy(src, dst + ".new")
            os.replace(dst + ".new", dst)
        mark = d.mark()
        d.write_config(d.config(tls_config(cert, key, tokens=both)))
        d.signal(signal.SIGHUP)
        d.wait_log(re.compile(r"gen 2 ready|ready.*gen 2"), 20, start=mark)
        assert harness.wait_until(lambda: peer_cert(d.port) == der(b_cert), 20)
        n = load.ok
        assert harness.wait_until(lambda: load.ok > n + 20, 20)
        # 2. the clients move to the new token, then the old one is removed
        load.token = "token-two"
        time.sleep(0.5)
        mark = d.mark()
        d.write_config(d.config(tls_config(cert, key, tokens=both[1:])))
        d.signal(signal.SIGHUP)
        d.wait_log(re.compile(r"gen 3 ready|ready.*gen 3"), 20, start=mark)
        assert harness.wait_until(lambda: get(d.port, token="token-one").status == 401, 20)
        n = load.ok
        assert harness.wait_until(lambda: load.ok > n + 20, 20)
    finally:
        load.finish()
    assert load.failures == [], load.failures[:10]
    assert get(d.port, token="token-two").status == 200


def test_bad_new_certificate_keeps_the_old_one(start_daemon, tmp_path):
    a_cert, a_key = new_server_cert(str(tmp_path), "a")
    b_cert, b_key = new_server_cert(str(tmp_path), "b")
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    shutil.copy(a_cert, cert)
    shutil.copy(a_key, key)
    d = start_daemon(tls_config(cert, key, auth=False))
    shutil.copy(b_cert, cert)          # the key no longer matches
    mark = d.mark()
    d.signal(signal.SIGHUP)
    d.wait_log("TLS files not reloaded", 10, start=mark)
    d.wait_log(re.compile(r"gen 2 ready|ready.*gen 2"), 20, start=mark)
    assert peer_cert(d.port) == der(a_cert)
    assert get(d.port).status == 200


def test_certificate_allow_from(start_daemon, pki):
    d = start_daemon(tls_config(
        pki["server.pem"], pki["server_key.pem"], client_ca=pki["root.pem"],
        certs=['{ subject = "%s"; scopes = [ "ping" ]; allowFrom = [ "127.0.0.2/32" ]; }'
               % SUBJECT]))

    def from_(src):
        c = http.client.HTTPSConnection("127.0.0.1", d.port, timeout=10, source_address=(src, 0),
                                        context=context((pki["client.pem"], pki["client_key.pem"])))
        try:
            return harness.conn_request(c, "GET", "/v4/butlerping")
        finally:
            c.close()
    r = from_("127.0.0.1")
    assert r.status == 403 and b"This client certificate may not be used from this address" in r.body, r
    assert from_("127.0.0.2").status == 200
