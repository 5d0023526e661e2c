"""The e-mail destination against a real SMTP server (Debian's python3-aiosmtpd):
tests/unit/mail_send builds an alert message with mail_message() and delivers it with
mail_setup_easy() on a curl multi handle, as butlerd's delivery does, and prints the
outcome of mail_classify(). The server records what it received, which is compared
byte for byte with a message written by hand. butlerd(8), "E-mail"."""

import email
import os
import ssl
import subprocess

import pytest

from harness import free_port

aiosmtpd = pytest.importorskip("aiosmtpd")
from aiosmtpd.controller import Controller  # noqa: E402
from aiosmtpd.smtp import AuthResult, LoginPassword  # noqa: E402

USER, PASSWORD = "butler", "s3cret"
WHEN = "1795387793"  # 2026-11-22T22:49:53Z
FROM = "Qlik Sense (no-reply) <qliksense-noreply@acme.local>"
SUBJECT = "Qlik Sense reload failed: \"F\u00f6rs\u00e4ljning\""
HTML = ("<html><body>\n"
        "<p>Task <b>F\u00f6rs\u00e4ljning</b> failed at 2026-11-22 23:48:10.</p>\n"
        ".a line that starts with a dot\n"
        "<table style=\"width:100%\"><tr><td>" + "x" * 70 + "</td></tr></table>\n"
        "</body></html>\n")

# What the server must hold after the dot-unstuffing of DATA: written by hand from
# butlerd(8) "E-mail" (headers in order, RFC 2047 subject, quoted-printable body).
EXPECTED = (
    b"From: \"Qlik Sense (no-reply)\" <qliksense-noreply@acme.local>\r\n"
    b"To: ops@acme.local\r\n"
    b"Subject: =?UTF-8?B?UWxpayBTZW5zZSByZWxvYWQgZmFpbGVkOiAiRsO2cnPDpGxqbmluZyI=?=\r\n"
    b"Date: Sun, 22 Nov 2026 22:49:53 +0000\r\n"
    b"Message-ID: <0123456789abcdef@acme.local>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"X-Priority: 1 (Highest)\r\n"
    b"X-MSMail-Priority: High\r\n"
    b"Importance: High\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"<html><body>\r\n"
    b"<p>Task <b>F=C3=B6rs=C3=A4ljning</b> failed at 2026-11-22 23:48:10.</p>\r\n"
    b".a line that starts with a dot\r\n"
    b"<table style=3D\"width:100%\"><tr><td>" + b"x" * 39 + b"=\r\n" +  # 75 + "="
    b"x" * 31 + b"</td></tr></table>\r\n"
    b"</body></html>\r\n")


def mail_send_binary():
    butlerd = os.environ.get("BUTLERD", "src/butlerd")
    top = os.path.dirname(os.path.dirname(os.path.abspath(butlerd)))
    return os.path.join(top, "tests", "unit", "mail_send")


class Recorder:
    """aiosmtpd handler: keeps every accepted message; recipients starting with
    reject, busy or spam get 550 and 421 to RCPT TO and 554 to the end of DATA."""

    def __init__(self):
        self.got, self.mechanisms = [], []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("reject"):
            return "550 5.1.1 no such user"
        if address.startswith("busy"):
            return "421 4.3.2 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if any(r.startswith("spam") for r in envelope.rcpt_tos):
            return "554 5.7.1 message refused"
        self.got.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                         "content": envelope.original_content,
                         "tls": server.transport.get_extra_info("ssl_object") is not None,
                         "auth": bool(session.authenticated)})
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        self.mechanisms.append(mechanism)
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login == USER.encode()
              and auth_data.password == PASSWORD.encode())
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535


def self_signed(dirpath, name, san):
    cert, key = os.path.join(dirpath, name + ".pem"), os.path.join(dirpath, name + "_key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert, "-days",
                    "2", "-subj", "/CN=" + name, "-addext", "subjectAltName=" + san],
                   check=True, capture_output=True, timeout=30)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return cert, ctx


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("smtp-pki"))
    return {"ip": self_signed(d, "localhost", "IP:127.0.0.1"),
            "named": self_signed(d, "mail.test", "DNS:mail.test")}


class Server:
    def __init__(self, **kw):
        self.rec = Recorder()
        self.port = free_port()
        if kw.pop("auth", False):
            kw["authenticator"] = self.rec.authenticate
        self.ctl = Controller(self.rec, hostname="127.0.0.1", port=self.port,
                              ready_timeout=10, **kw)
        self.ctl.start()

    def stop(self):
        self.ctl.stop()


@pytest.fixture(scope="module")
def servers(certs):
    ip_ctx, named_ctx = certs["ip"][1], certs["named"][1]
    s = {"starttls": Server(tls_context=ip_ctx, require_starttls=True, auth=True),
         "login": Server(tls_context=ip_ctx, require_starttls=True, auth=True,
                         auth_exclude_mechanism=["PLAIN"]),
         # aiosmtpd counts only STARTTLS as TLS for auth_require_tls
         "smtps": Server(ssl_context=ip_ctx, auth=True, auth_require_tls=False),
         "plain": Server(),
         # AUTH required but, without TLS, not advertised: 530 to MAIL FROM
         "noauth": Server(auth=True, auth_required=True),
         "named": Server(tls_context=named_ctx, require_starttls=True)}
    yield s
    for srv in s.values():
        srv.stop()


def send(tmp_path, port, *opts, to="ops@acme.local", subject=SUBJECT, html=HTML):
    page = tmp_path / "body.html"
    page.write_text(html, encoding="utf-8")
    args = [mail_send_binary(), "-T", WHEN, "-I", "0123456789abcdef", "-P", "high", "-t", "10",
            *opts, "127.0.0.1", str(port), FROM, to, subject, str(page)]
    env = dict(os.environ, TZ="UTC")
    r = subprocess.run(args, capture_output=True, text=True, timeout=30, env=env)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def check_received(rec, tls, auth):
    assert len(rec.got) == 1
    got = rec.got[0]
    assert got["from"] == "qliksense-noreply@acme.local"
    assert got["to"] == ["ops@acme.local"]
    assert got["tls"] is tls and got["auth"] is auth
    assert got["content"] == EXPECTED
    msg = email.message_from_bytes(got["content"])
    assert str(email.header.make_header(email.header.decode_header(msg["Subject"]))) == SUBJECT
    assert msg.get_payload(decode=True).decode("utf-8") == HTML.replace("\n", "\r\n")


def test_starttls_with_auth_delivers_the_message_byte_for_byte(servers, certs, tmp_path):
    srv = servers["starttls"]
    out = send(tmp_path, srv.port, "-u", USER, "-p", PASSWORD, "-C", certs["ip"][0])
    assert out == "accepted: accepted (SMTP 250)"
    check_received(srv.rec, tls=True, auth=True)
    assert srv.rec.mechanisms[-1] in ("PLAIN", "LOGIN")


def test_auth_login_when_plain_is_not_offered(servers, certs, tmp_path):
    srv = servers["login"]
    out = send(tmp_path, srv.port, "-u", USER, "-p", PASSWORD, "-C", certs["ip"][0])
    assert out.startswith("accepted")
    assert srv.rec.mechanisms == ["LOGIN"]
    check_received(srv.rec, tls=True, auth=True)


def test_implicit_tls(servers, certs, tmp_path):
    srv = servers["smtps"]
    out = send(tmp_path, srv.port, "-s", "-u", USER, "-p", PASSWORD, "-C", certs["ip"][0])
    assert out.startswith("accepted")
    check_received(srv.rec, tls=True, auth=True)


def test_auth_failure_535_is_transient(servers, certs, tmp_path):
    srv = servers["smtps"]
    before = len(srv.rec.got)
    out = send(tmp_path, srv.port, "-s", "-u", USER, "-p", "wrong", "-C", certs["ip"][0])
    assert out.startswith("transient:") and "(SMTP 535)" in out
    assert len(srv.rec.got) == before


def test_certificate_checks(servers, certs, tmp_path):
    srv = servers["starttls"]
    before = len(srv.rec.got)
    # the system store does not know the test certificate ...
    out = send(tmp_path, srv.port, "-u", USER, "-p", PASSWORD)
    assert out.startswith("transient:")
    assert len(srv.rec.got) == before
    # ... unless rejectUnauthorized is false
    out = send(tmp_path, srv.port, "-k", "-u", USER, "-p", PASSWORD)
    assert out.startswith("accepted")
    assert len(srv.rec.got) == before + 1


def test_server_name_is_used_for_verification(servers, certs, tmp_path):
    srv = servers["named"]
    # the certificate names mail.test only: 127.0.0.1 does not match it
    out = send(tmp_path, srv.port, "-C", certs["named"][0])
    assert out.startswith("transient:")
    assert srv.rec.got == []
    out = send(tmp_path, srv.port, "-n", "mail.test", "-C", certs["named"][0])
    assert out.startswith("accepted")
    check_received(srv.rec, tls=True, auth=False)


def test_no_starttls_offered(servers, tmp_path):
    srv = servers["plain"]
    # requireTLS: the server offers no STARTTLS, nothing is sent
    out = send(tmp_path, srv.port, "-r")
    assert out.startswith("transient:")
    assert srv.rec.got == []
    # by default butlerd goes on without TLS
    out = send(tmp_path, srv.port)
    assert out.startswith("accepted")
    check_received(srv.rec, tls=False, auth=False)
    srv.rec.got.clear()


@pytest.mark.parametrize("to,outcome,code", [
    ("reject@acme.local", "permanent", 550),   # RCPT TO refused for good
    ("busy@acme.local", "transient", 421),     # RCPT TO: try later
    ("spam@acme.local", "permanent", 554),     # end of DATA refused
])
def test_refusals(servers, tmp_path, to, outcome, code):
    srv = servers["plain"]
    before = len(srv.rec.got)
    out = send(tmp_path, srv.port, "-i", to=to)
    assert out.startswith(outcome + ":") and "(SMTP %d)" % code in out, out
    assert len(srv.rec.got) == before


def test_auth_required_but_not_offered_is_transient(servers, tmp_path):
    srv = servers["noauth"]
    out = send(tmp_path, srv.port, "-u", USER, "-p", PASSWORD)
    assert out.startswith("transient:") and "(SMTP 530)" in out, out
    assert srv.rec.got == [] and srv.rec.mechanisms == []


def test_nothing_listening_is_transient(tmp_path):
    out = send(tmp_path, free_port())
    assert out.startswith("transient:")


BAD_CONF = """Butler = {
  emailNotification = {
    enable = true;
    smtp = { host = ""; tls = { ignoreTLS = true; requireTLS = true; }; };
    reloadTaskFailure = {
      enable = true;
      fromAddress = "<Email address 1>";
      recipients = [ "qlik-admins@acme.local", "<Email address 2>" ];
      priority = "urgent";
      bodyFileDirectory = "templates"; htmlTemplateFile = "failed-reload";
    };
    reloadTaskSuccess = { enable = false; fromAddress = "<Email address 1>"; };
  };
};
"""


def test_configuration_test_lists_every_email_problem(tmp_path):
    from harness import run_cli
    conf = tmp_path / "butlerd.conf"
    conf.write_text(BAD_CONF)
    cp = run_cli(["-t", "-c", str(conf)])
    assert cp.returncode == 1, cp
    k = "Butler.emailNotification.reloadTaskFailure."
    for line, text in ((4, "Butler.emailNotification.smtp.host is empty"),
                       (4, "Butler.emailNotification.smtp.tls.ignoreTLS and smtp.tls.requireTLS are both "
                        "true"),
                       (7, k + "fromAddress \"<Email address 1>\" is not a mailbox"),
                       (8, k + "recipients \"<Email address 2>\" entry is not a valid e-mail"),
                       (9, k + "priority \"urgent\" is not one of high, normal, low")):
        assert "%s:%d: %s" % (conf, line, text) in cp.stderr, cp.stderr
    assert "qlik-admins" not in cp.stderr and "reloadTaskSuccess" not in cp.stderr
