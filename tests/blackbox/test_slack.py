"""Slack posts (spec 2.8 and /v2/slackPostMessage): a local HTTP receiver
stands in for Slack's webhook, records every request and answers 200, 2xx
without a body, 404, 500, a long error, or never. butlerd must send the exact
payload (markdown, emoji and UTF-8 untouched, section cut at 3000 characters)
and pass Slack's answer on: the echo on 2xx, 502 otherwise, within its
timeout."""

import json
import time
import urllib.parse

import pytest

import harness
import receiver
from harness import JSON_CT, jdump, not_found, validation, err
from harness import check_reply as check


HOOK_PATH = "/services/T0000/B0000/XXXXXXXXXXXX"

# mode -> (status, body) the receiver answers with
ANSWERS = {
    "ok": (200, b"ok"),
    "nobody": (204, b""),
    "404": (404, b"no_service"),
    "500": (500, b"rollup_error: something broke"),
    # 199 ASCII bytes, then a 2-byte character across the 200-byte cut
    "long": (400, b"x" * 199 + "\u00e9".encode() + b"y" * 100),
    # a redirect (to the receiver itself) must not be followed
    "redirect": (302, b"moved"),
}


class Receiver(receiver.Receiver):
    """Slack's webhook. MODE picks the answer (ANSWERS, or "hang")."""

    def __init__(self):
        self.mode = "ok"
        super().__init__()
        self.url = self.base + HOOK_PATH

    def answer(self, req):
        if self.mode == "hang":
            return receiver.HANG
        status, data = ANSWERS[self.mode]
        headers = []
        if status == 302:
            headers.append(("Location", HOOK_PATH + "/elsewhere"))
        if status != 204:
            headers += [("Content-Type", "text/plain; charset=utf-8"),
                        ("Content-Length", str(len(data)))]
        return status, None, headers, data


def overrides(url, flag=True):
    return {"Butler": {"restServerEndpointsEnable": {"slackPostMessage": flag},
                       "slackNotification": {"restMessage": {"webhookURL": url}}}}


@pytest.fixture(scope="module")
def rec():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def d(rec, tmp_path_factory):
    dm = harness.Daemon(tmp_path_factory.mktemp("slack"), overrides(rec.url))
    try:
        dm.start()
        yield dm
    finally:
        dm.stop()
        print(dm.log_tail(100))


@pytest.fixture
def hook(rec):
    """The receiver, emptied and answering 200 for this test."""
    rec.mode = "ok"
    rec.take()
    return rec


def put(d, body, timeout=10, headers=None):
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    return d.request("PUT", "/v4/slackpostmessage", h,
                     body if isinstance(body, bytes) else jdump(body), timeout=timeout)


def payload(channel, user, msg, icon=None):
    """The webhook body of spec 2.8, as butlerd must send it (compact, raw UTF-8)."""
    p = {"channel": channel, "username": user}
    if icon is not None:
        p["icon_emoji"] = icon
    p["text"] = msg
    p["blocks"] = [{"type": "section", "text": {"type": "mrkdwn", "text": msg[:3000]}}]
    return jdump(p)


def one_post(rec):
    got = rec.take()
    assert len(got) == 1, got
    g = got[0]
    assert g["method"] == "POST" and g["path"] == HOOK_PATH, g
    assert g["headers"].get("Content-Type") == "application/json; charset=utf-8", g
    return g["body"]


# ------------------------------------------------------------------ success

def test_post_spec_example(d, hook):
    body = {"channel": "#reload-notification", "from_user": "Butler the Bot",
            "msg": "Reload of *Sales* finished :tada:", "emoji": "thumbsup"}
    check(put(d, body), 201, jdump(body))
    assert one_post(hook) == (
        b'{"channel":"#reload-notification","username":"Butler the Bot","icon_emoji":'
        b'":thumbsup:","text":"Reload of *Sales* finished :tada:","blocks":[{"type":"section",'
        b'"text":{"type":"mrkdwn","text":"Reload of *Sales* finished :tada:"}}]}')


def test_markdown_utf8_and_emoji_untouched(d, hook):
    msg = ("*bold* _it_ ~strike~ `code` ```block```\n> quote\n<https://x.example/a?b=1&c=2|link> "
           "<@U123> :white_check_mark: \u00c5ngstr\u00f6m \u65e5\u672c \U0001F389 \"q\" \\ / \t")
    body = {"channel": "#r\u00e9sum\u00e9", "from_user": "B\u00fctler \U0001F916", "msg": msg,
            "emoji": ":robot_face:"}
    check(put(d, body), 201, jdump(body))
    got = one_post(hook)
    assert got == payload("#r\u00e9sum\u00e9", "B\u00fctler \U0001F916", msg, ":robot_face:")
    assert json.loads(got.decode("utf-8"))["text"] == msg


@pytest.mark.parametrize("given,icon", [
    ("thumbsup", ":thumbsup:"), (":thumbsup:", ":thumbsup:"), (":x", ":x:"), ("x:", ":x:"),
    ("+1", ":+1:"), ("", None), (None, None)])
def test_emoji_colons(d, hook, given, icon):
    body = {"channel": "c", "from_user": "u", "msg": "m"}
    if given is not None:
        body["emoji"] = given
    check(put(d, body), 201, jdump(body))  # echoed as given, only if given
    assert one_post(hook) == payload("c", "u", "m", icon)


def test_section_cut_at_3000_characters(d, hook):
    msg = "\u00e9" * 2999 + "\U0001F389" + "z" * 500
    check(put(d, {"channel": "c", "from_user": "u", "msg": msg}), 201,
          jdump({"channel": "c", "from_user": "u", "msg": msg}))
    got = json.loads(one_post(hook).decode("utf-8"))
    assert got["text"] == msg
    assert got["blocks"][0]["text"]["text"] == "\u00e9" * 2999 + "\U0001F389"


def test_quoted_and_coerced_values(d, hook):
    """Load scripts quote everything; numbers and booleans become strings."""
    check(put(d, {"channel": 42, "from_user": True, "msg": 1.5}), 201,
          b'{"channel":"42","from_user":"true","msg":"1.5"}')
    assert one_post(hook) == payload("42", "true", "1.5")


def test_v4_ignores_unknown_members(d, hook):
    """The seed's "emoij" spelling is a /v2 alias only; in a /v4 body it is an
    unknown member and ignored, whatever its type."""
    body = {"channel": "c", "from_user": "u", "msg": "m", "emoij": {"x": 1}, "extra": [1]}
    check(put(d, body), 201, b'{"channel":"c","from_user":"u","msg":"m"}')
    assert one_post(hook) == payload("c", "u", "m")


def test_slack_2xx_without_body(d, hook):
    hook.mode = "nobody"
    check(put(d, {"channel": "c", "from_user": "u", "msg": "m"}), 201,
          b'{"channel":"c","from_user":"u","msg":"m"}')
    assert len(hook.take()) == 1


def test_method_override(d, hook):
    r = d.request("POST", "/v4/slackpostmessage",
                  {"Content-Type": "application/json", "X-HTTP-Method-Override": "PUT"},
                  jdump({"channel": "c", "from_user": "u", "msg": "via override"}))
    check(r, 201, b'{"channel":"c","from_user":"u","msg":"via override"}')
    assert one_post(hook) == payload("c", "u", "via override")


# -------------------------------------------------------------- Slack errors

@pytest.mark.parametrize("mode,message", [
    ("404", "Slack returned HTTP 404: no_service"),
    ("500", "Slack returned HTTP 500: rollup_error: something broke"),
    ("long", "Slack returned HTTP 400: " + "x" * 199),
])
def test_slack_error_is_502(d, hook, mode, message):
    hook.mode = mode
    check(put(d, {"channel": "c", "from_user": "u", "msg": "m"}), 502, err(502, message))
    assert one_post(hook) == payload("c", "u", "m")


def test_redirect_not_followed(d, hook):
    """A 3xx is Slack's answer, passed on as 502; the Location is not followed, so
    the payload is posted once, to the configured URL only."""
    hook.mode = "redirect"
    check(put(d, {"channel": "c", "from_user": "u", "msg": "m"}), 502,
          err(502, "Slack returned HTTP 302: moved"))
    assert one_post(hook) == payload("c", "u", "m")


def test_only_http_and_https(start_daemon, tmp_path):
    """A webhook URL of another scheme is refused by libcurl: nothing is read or
    sent, the answer is 502 without the URL."""
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    for url in ("file://" + str(secret), "ftp://127.0.0.1:1/x", "gopher://127.0.0.1:1/x"):
        dm = start_daemon(overrides(url))
        r = put(dm, {"channel": "c", "from_user": "u", "msg": "m"})
        assert r.status == 502, r
        msg = json.loads(r.body)["message"]
        assert msg.startswith("Failed sending Slack message: "), msg
        assert "not supported" in msg, msg  # libcurl: Protocol "file" not supported...
        assert "top secret" not in msg and str(secret) not in msg and "/x" not in msg, msg
    assert secret.read_text() == "top secret"


def test_slack_never_answers(d, hook):
    hook.mode = "hang"
    hook.release.clear()
    t0 = time.monotonic()
    try:
        r = put(d, {"channel": "c", "from_user": "u", "msg": "m"}, timeout=30)
    finally:
        hook.release.set()
    elapsed = time.monotonic() - t0
    assert r.status == 502, r
    msg = json.loads(r.body)["message"]
    assert msg.startswith("Failed sending Slack message: "), msg
    assert "timed out" in msg.lower(), msg
    assert HOOK_PATH not in msg  # the webhook URL is a secret
    assert 9.0 <= elapsed < 15.0, elapsed
    # the worker is fine afterwards
    hook.mode = "ok"
    hook.take()
    check(put(d, {"channel": "c", "from_user": "u", "msg": "again"}), 201,
          b'{"channel":"c","from_user":"u","msg":"again"}')


def test_connection_refused(start_daemon):
    port = harness.free_port()  # nothing listens there
    dm = start_daemon(overrides("http://127.0.0.1:%d/hook" % port))
    t0 = time.monotonic()
    r = put(dm, {"channel": "c", "from_user": "u", "msg": "m"})
    assert time.monotonic() - t0 < 6
    assert r.status == 502, r
    assert r.header("Content-Type") == JSON_CT
    msg = json.loads(r.body)["message"]
    assert msg.startswith("Failed sending Slack message: "), msg
    assert "/hook" not in msg
    r = dm.get("/v2/slackPostMessage?channel=c&from_user=u&msg=m")
    assert r.status == 502 and json.loads(r.body)["message"].startswith(
        "Failed sending Slack message: "), r


def test_not_configured_503(start_daemon, rec):
    dm = start_daemon(overrides(""))
    rec.take()
    check(put(dm, {"channel": "c", "from_user": "u", "msg": "m"}), 503,
          err(503, "Slack webhook URL is not configured"))
    check(dm.get("/v2/slackPostMessage?channel=c&from_user=u&msg=m"), 503,
          err(503, "Slack webhook URL is not configured"))
    # validation still comes first
    check(put(dm, {"channel": "c"}), 400,
          validation("body must have required property 'from_user'"))
    assert rec.take() == []


# -------------------------------------------------------------- validation

def test_validation(d, hook):
    check(put(d, {}), 400, validation("body must have required property 'channel'"))
    check(put(d, {"msg": "m", "from_user": "u"}), 400,
          validation("body must have required property 'channel'"))
    check(put(d, {"channel": "c", "msg": "m"}), 400,
          validation("body must have required property 'from_user'"))
    check(put(d, {"channel": "c", "from_user": "u"}), 400,
          validation("body must have required property 'msg'"))
    check(put(d, {"channel": "c", "from_user": "u", "msg": {"a": 1}}), 400,
          validation("body/msg must be string"))
    check(put(d, {"channel": "c", "from_user": "u", "msg": "m", "emoji": ["a", "b"]}), 400,
          validation("body/emoji must be string"))
    check(put(d, b"[1]"), 400, validation("body must be object"))
    check(d.request("PUT", "/v4/slackpostmessage"), 400, validation("body must be object"))
    assert hook.take() == []


# ---------------------------------------------------------------------- /v2

def q(s):
    return urllib.parse.quote(s, safe="")


def test_v2_seed_example(d, hook):
    r = d.get("/v2/slackPostMessage?channel=%23sense-test-slack&msg=Butler+posting+to+*Slack*"
              "&from_user=sa_scheduler&emoji=:test:")
    check(r, 200, b'{"channel":"#sense-test-slack","msg":"Butler posting to *Slack*",'
                  b'"from_user":"sa_scheduler","emoji":":test:"}')
    assert one_post(hook) == payload("#sense-test-slack", "sa_scheduler",
                                     "Butler posting to *Slack*", ":test:")


def test_v2_utf8_alias_and_case(d, hook):
    msg = "Fertig \u2705 *ok* \U0001F680"
    r = d.get("/V2/SLACKPOSTMESSAGE?channel=%s&from_user=%s&msg=%s&emoij=rocket"
              % (q("#c"), q("\u00fc"), q(msg)))
    check(r, 200, jdump({"channel": "#c", "msg": msg, "from_user": "\u00fc", "emoji": "rocket"}))
    assert one_post(hook) == payload("#c", "\u00fc", msg, ":rocket:")
    # emoji wins over the seed's spelling
    r = d.get("/v2/slackPostMessage?channel=c&from_user=u&msg=m&emoij=a&emoji=b")
    check(r, 200, b'{"channel":"c","msg":"m","from_user":"u","emoji":"b"}')
    assert one_post(hook) == payload("c", "u", "m", ":b:")


def test_v2_errors(d, hook):
    check(d.get("/v2/slackPostMessage"), 400,
          validation("querystring must have required property 'channel'"))
    check(d.get("/v2/slackPostMessage?channel=c&msg=m"), 400,
          validation("querystring must have required property 'from_user'"))
    check(d.get("/v2/slackPostMessage?channel=c&from_user=u"), 400,
          validation("querystring must have required property 'msg'"))
    check(d.get("/v2/slackPostMessage?channel=c&channel=d&from_user=u&msg=m"), 400,
          validation("querystring/channel must be string"))
    assert hook.take() == []
    hook.mode = "404"
    check(d.get("/v2/slackPostMessage?channel=c&from_user=u&msg=m"), 502,
          err(502, "Slack returned HTTP 404: no_service"))
    assert len(hook.take()) == 1


# ------------------------------------------------------------------ disabled

def test_disabled_404(start_daemon, rec):
    dm = start_daemon(overrides(rec.url, flag=False))
    rec.take()
    check(put(dm, {"channel": "c", "from_user": "u", "msg": "m"}), 404,
          not_found("PUT", "/v4/slackpostmessage"))
    t = "/v2/slackPostMessage?channel=c&from_user=u&msg=m"
    check(dm.get(t), 404, not_found("GET", t))
    assert rec.take() == []
