#!/usr/bin/env python3
"""Writes the hand-made seed inputs of tests/fuzz/corpus/ (run from anywhere).
Seeds found by fuzzing (crash-*, regression inputs) are kept as files beside them
and are not written by this script."""
import base64
import hashlib
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
GUID = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
GUID2 = "7552d9fc-d1bb-4975-9a38-18357de531ea"


def put(harness, name, data):
    d = os.path.join(CORPUS, harness)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def seeds_qs():
    for i, q in enumerate([
        "key=k1", "namespace=a&key=b&key=c", "base62=0X96HlegVXzQfJVIBWC31",
        "a=%41%42+c&b=%zz&%=&=v&&x", "n=%C3%A9%E2%82%AC%F0%9F%98%80", "n=%C0%AF%ED%A0%80%FF",
        "allTaskIdsMustExist=true&allTaskIdsMustExist=false", "%00=1&k=%00", "dir%2F..%2Fx",
        "a%2", "%"]):
        put("qs", "seed%02d" % i, q)


def seeds_schema():
    bodies = [
        (0, '{"key":"k1","value":"v1","ttl":60000}'), (0, '{"key":1,"value":true,"ttl":"1.5e3"}'),
        (1, '{"topic":"qliksense/test","message":"hi","qos":1,"retain":"true"}'),
        (1, '{"topic":["t"],"message":null,"qos":"2"}'),
        (2, '{"fromFile":"/a/b","toFile":"c","overwrite":1,"preserveTimestamp":"false"}'),
        (3, '{"reloadMode":0,"partialReload":false,"startQSEoWTaskOnSuccess":["x"],'
            '"startQSEoWTaskOnFailure":"y"}'),
        (4, '{"channel":"#c","from_user":"b","msg":"m","emoji":":x:"}'),
        (5, '{"type":"starttaskid","payload":{},"name":"\\u00e9\\u00e9\\u00e9\\u00e9"}'),
        (0, '{"ttl":-0.0}'), (0, '{"ttl":1e308}'), (3, '{"reloadMode":[1]}'),
        (0x86, "allTaskIdsMustExist=true"), (0x87, "key=a&key=b"), (0x80, "ttl=12&key=%C3%A9"),
    ]
    for i, (sel, b) in enumerate(bodies):
        put("schema", "seed%02d" % i, bytes([sel]) + b.encode())


def start_bodies():
    return [
        [{"type": "starttaskid", "payload": {"taskId": GUID}}],
        [{"type": "starttasktag", "payload": {"tag": "tag1"}},
         {"type": "starttasktag", "payload": {"tag": "it's \\ here"}}],
        [{"type": "starttaskcustomproperty",
          "payload": {"customPropertyName": "cp1", "customPropertyValue": "v1"}}],
        [{"type": "keyvaluestore", "payload": {"namespace": "ns", "key": "k", "value": 1,
                                               "ttl": 100}}],
        [{"payload": {}}, {"type": "starttaskid", "payload": {"taskId": "bad"}}],
        {"type": "starttaskid", "payload": {"taskId": GUID}},
    ]


def seeds_task_body():
    for i, b in enumerate(start_bodies()):
        put("task_body", "seed%02d" % i, json.dumps(b))
    put("task_body", "seed-id", GUID)
    put("task_body", "seed-scalar", "42")
    put("task_body", "seed-bad", '[{"type":null,"payload":{"taskId":[1]}}]')


def seeds_qrs_filter():
    answer = json.dumps([{"id": GUID2.upper(), "name": "Reload"}, {"id": GUID, "name": None},
                         {"name": "no id"}])
    for i, b in enumerate(start_bodies()):
        for flags in (0, 1, 6):
            data = bytes([flags]) + json.dumps(b).encode() + b"\0"
            data += b"\0" + answer.encode() + b"\0" + b"\x01" + b"\0" + b"\x04"
            put("qrs_filter", "seed%02d-%d" % (i, flags), data)
    kv = [{"type": "keyvaluestore", "payload": {"namespace": "ns", "key": "k", "value": [1],
                                                "ttl": "1e3"}},
          {"type": "keyvaluestore", "payload": {"namespace": "ns", "key": "k2", "value": "v",
                                                "ttl": -5}}]
    put("qrs_filter", "seed-kv", b"\x10" + json.dumps(kv).encode() + b"\0")
    put("qrs_filter", "seed-mqtt", b"\x30 " + json.dumps(start_bodies()[2] + kv).encode()
        + b"\n\0\0" + answer.encode())
    put("qrs_filter", "seed-mqtt-inf", b"\x30" + json.dumps(kv).replace("-5", "-Infinity")
        .encode() + b"\0")
    put("qrs_filter", "seed-bad-answer",
        b"\x02" + json.dumps(start_bodies()[1]).encode() + b"\0\x00{\"x\":1}\0\x02<html>")


def seeds_udp():
    task = ("/scheduler-reloadtask-failed/;sense1;Reload of app;sa_scheduler;INTERNAL;"
            + GUID + ";" + GUID2 + ";2026-01-01 10:00:00;ERROR;" + "exec-1" + ";Message: failed")
    for i, (flag, msg) in enumerate([
        (0, task), (0, task.replace("failed", "aborted", 1)),
        (0, "/scheduler-task-success/;s;t;u;d;" + GUID + ";;x;INFO;e2;ok"),
        (0, "/engine-reload-failed/;sense1;" + GUID + ";a;b;c;d;e;failed hard"),
        (1, "/proxy-session/;sense1;Start session;ACME;joe;x;y;z"),
        (1, "/proxy-session/;sense1;Stop session;ACME;joe;x;y;z"),
        (1, "/proxy-connection/;sense2;Open connection;LAB;j\u00e9;x;y"),
        (1, "/proxy-connection/;sense2;Close connection;LAB;\x01\x7f;x;y"),
        (3, "/proxy-session/;evil;Start session;A;b;c;d"),
        (0, "/Scheduler-Task-Failed/;\xff\xfe;;;;;;;;;"),
    ]):
        data = msg.encode("utf-8", "surrogateescape") if isinstance(msg, str) else msg
        put("udp", "seed%02d" % i, bytes([flag]) + data)
    put("udp", "seed-cut-utf8", b"\x01/proxy-session/;h;Start session;D;" + b"\xe2\x82" * 40)


def seeds_base62():
    for i, s in enumerate(["0X96HlegVXzQfJVIBWC31", "1f5848b5f8ba4e85a57c7ca55a9e", "0", "",
                           "000000", "zzzzzzzzzzzzzzzzzzzz", "ZZZZZZZZZZ" * 8, "FFff00",
                           "g!", "a" * 300]):
        put("base62", "seed%02d" % i, s)


def seeds_fspath():
    for i, (p, d) in enumerate([
        ("/srv/qvd/a/b.qvd", "/srv/qvd"), ("/srv/qvd/../etc/passwd", "/srv/qvd"),
        ("\\\\server\\share\\x", "/srv"), ("a/./b//c/../../..", "/"), ("", ""),
        ("/srv/qvdx/y", "/srv/qvd"), ("..\\..\\x", "/srv/qvd/"), ("/", "/"),
        ("x" * 300 + "/y", "/tmp"), ("/srv/qvd/.", "/srv/qvd/.."),
    ]):
        put("fspath", "seed%02d" % i, p + "\0" + d)


def seeds_cfg():
    top = os.path.dirname(os.path.dirname(HERE))
    # the sample configuration without its comments (every key, a quarter of the size)
    with open(os.path.join(top, "etc", "butlerd.conf")) as f:
        lines = [l.rstrip() for l in f if l.strip() and not l.lstrip().startswith(("#", "//"))]
    put("cfg", "etc-butlerd.conf", "\n".join(lines) + "\n")
    put("cfg", "seed-small", 'Butler = { logLevel = "debug"; restServerConfig = { enable = true; '
        'serverHost = "127.0.0.1"; serverPort = 8080; }; };\n'
        'butlerd = { workers = 2; http = { maxBodyBytes = 1048576; }; };\n')
    put("cfg", "seed-types", 'Butler = { logLevel = 7; fileCopyApprovedDirectories = '
        '( { fromDirectory = "/a"; toDirectory = "/b"; } ); startTaskFilter = { enable = true; '
        'allowed = { taskId = [ "x" ]; tag = [ "t" ]; customProperty = ( { name = "n"; '
        'value = "v"; } ); }; }; };\nbutlerd = { workers = 100000; unknown = 1L; };\n')
    put("cfg", "seed-syntax", 'Butler = { logLevel = "info" ; mqttConfig = { enable = true; }')


def frame(payload, opcode=1, fin=True):
    if isinstance(payload, str):
        payload = payload.encode()
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        head = bytes([b0, n])
    elif n < 65536:
        head = bytes([b0, 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, 127]) + struct.pack(">Q", n)
    return head + payload


def seeds_engine():
    ok1 = '{"jsonrpc":"2.0","id":1,"result":{"qReturn":{"qType":"Doc","qHandle":1}}}'
    ok2 = '{"jsonrpc":"2.0","id":2,"result":{}}'
    ok3 = '{"jsonrpc":"2.0","id":3,"error":{"code":1002,"message":"App already open"}}'
    note = '{"jsonrpc":"2.0","method":"OnConnected","params":{"qSessionState":"SESSION_CREATED"}}'
    put("engine", "seed-one", b"\x00" + frame(note) + frame(ok1))
    put("engine", "seed-three", b"\x06" + frame(ok2) + frame(ok1) + frame(ok3)
        + frame('{"id":3}'))
    put("engine", "seed-post", b"\x0e" + frame(ok1) + frame(ok2) + frame(ok3))
    put("engine", "seed-fragments", b"\x00" + frame(ok1[:10], fin=False)
        + frame(b"", opcode=9) + frame(ok1[10:], opcode=0))
    put("engine", "seed-close", b"\x00" + frame(struct.pack(">H", 1000) + b"bye", opcode=8))
    put("engine", "seed-big", b"\x10" + frame('{"id":1,"result":"' + "x" * 400 + '"}'))
    put("engine", "seed-notjson", b"\x00" + frame("[1,2]") + frame("{"))
    head = ("HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\n"
            "Connection: keep-alive, Upgrade\r\nSec-WebSocket-Accept:  @ACCEPT@ \r\n\r\n")
    put("engine", "seed-head", b"\x01" + head.encode() + frame(ok1))
    put("engine", "seed-head-refused", b"\x01HTTP/1.1 403 Forbidden\r\n\r\n")
    put("engine", "seed-head-badaccept", b"\x01HTTP/1.1 101 OK\r\nUpgrade: websocket\r\n"
        b"Connection: upgrade\r\nSec-WebSocket-Accept: xyz\r\n\r\n")


def seeds_cron():
    # mode byte (zone in the low 3 bits), 4-byte start offset (units of 59 s), expression
    exprs = ["30 2 * * *", "*/15 * * * *", "* * * * * *", "0 0 29 2 *", "0 0 31 2 *",
             "0 9 * jan,jul mon-fri", "0 0 13 * 5", "0 0 */2 * 1", "5/15 8-18 1,15 * *",
             "10-40/10 */20 * * * 0-7", "0 0 L * *", "@daily", "*/0 * * * *", "1,,2 * * * *"]
    for i, e in enumerate(exprs):
        put("cron", "seed%02d" % i, bytes([i & 7]) + struct.pack(">i", i * 123457) + e.encode())
    # the Stockholm spring-forward night and fall-back night (starts in 2026)
    put("cron", "seed-gap", b"\x01" + struct.pack(">i", (1774745000 - 1767225600) // 59) + b"* * * * * *")
    put("cron", "seed-fold", b"\x01" + struct.pack(">i", (1792888000 - 1767225600) // 59) + b"*/20 2 * * *")
    for name in ("Europe/Stockholm", "America/New_York"):
        with open("/usr/share/zoneinfo/" + name, "rb") as f:
            put("cron", "seed-tzif-" + name.split("/")[1], b"\x80" + f.read())
    for i, n in enumerate(["UTC", "Europe/Stockholm", "../../etc/passwd", "/etc/passwd", "Europe/..",
                           "zone.tab", "Europe"]):
        put("cron", "seed-name%d" % i, b"\xc0" + n.encode())


def seeds_tmpl():
    # a template, optionally NUL and a JSON context; the shipped samples first
    tdir = os.path.join(HERE, "..", "..", "contrib", "templates")
    for kind in sorted(os.listdir(tdir)):
        for name in sorted(os.listdir(os.path.join(tdir, kind))):
            with open(os.path.join(tdir, kind, name), "rb") as f:
                put("tmpl", "seed-%s-%s" % (kind, name.split(".")[0]), f.read())
    ctx = json.dumps({"a": "q\"b\\ \r\n\t\u0001 </pre> {{x}}", "n": 1.5, "l": [1, None, [2]],
                      "o": {"k": "v"}, "e": "", "z": 0})
    for i, t in enumerate([
            "{{#each l}}{{@index}}{{this}}{{else}}-{{/each}}{{#with o}}{{k}}{{../n}}{{/with}}",
            "\\{{a}}\\{{a}} {{{a}}} {{&a}} {{!-- {{x}} --}}{{! c }}",
            "a\n  {{~#if e}}\nb\n{{else if (eq z 0)}}\nc\n{{else}}\nd\n{{/if}}\n",
            "{{#unless z}}{{eq n 1.5}} {{eq 'x' \"x\"}} {{l.length}}{{/unless}}",
            "{{#if a}}{{#each o}}{{@key}}={{this}}{{/each}}", "{{> p}}", "{{a k=1}}", "{{a"]):
        put("tmpl", "seed%02d" % i, t.encode() + b"\0" + ctx.encode())


if __name__ == "__main__":
    for f in (seeds_qs, seeds_schema, seeds_task_body, seeds_qrs_filter, seeds_udp,
              seeds_base62, seeds_fspath, seeds_cfg, seeds_engine, seeds_cron, seeds_tmpl):
        f()
