"""Shared helpers and fixtures of the key-value store tests (test_kv*.py): the
daemon with a private shared-memory name, request helpers, unique names.

The fixtures kvd, store and shared run each test twice: on the shared-memory
backend ("shm") and on the Redis backend ("redis", a redis-server of
redisfix.py, a fresh key prefix per daemon), with the same assertions.

Every daemon gets its own shared-memory name (/butlerd-t<random hex>); the
daemon creates /dev/shm/<name>.<port>, which is removed after each test."""

import json
import os
import secrets
import urllib.parse

import pytest

import harness
import redisfix
from harness import JSON_CT

# ------------------------------------------------------------------ helpers

REASONS, jdump, err, validation = harness.REASONS, harness.jdump, harness.err, harness.validation


MISSING = err(400, "Required parameter is missing")
NO_KEY_PARAM = validation("querystring must have required property 'key'")
NOT_OBJECT = validation("body must be object")
INVALID_JSON = err(400, "Body is not valid JSON but content-type is set to 'application/json'",
                   "FST_ERR_CTP_INVALID_JSON_BODY")
BAD_MEDIA = err(415, "Unsupported Media Type", "FST_ERR_CTP_INVALID_MEDIA_TYPE")


def ns_not_found(ns):
    return err(400, "Namespace not found: " + ns)


def key_not_found(ns, key):
    return err(400, "Key '%s' not found in namespace: %s" % (key, ns))


def bad_url(raw):
    return err(400, "'%s' is not a valid url component" % raw, "FST_ERR_BAD_URL")


def entry(ns, key, value, ttl=None):
    d = {"namespace": ns, "key": key, "value": value}
    if ttl is not None:
        d["ttl"] = ttl
    return jdump(d)


def exists_body(ns, key, value, ttl=None):
    d = {"namespace": ns, "key": key, "value": value}
    if ttl is not None:
        d["ttl"] = ttl
    return jdump({"keyExists": True, "keyValue": d})


NOT_EXISTS = b'{"keyExists":false,"keyValue":{}}'


def keylist_body(ns, keys):
    return jdump({"namespace": ns, "keys": [{"key": k} for k in keys]})


def q(s):
    """Percent-encode one path segment or query value (everything but
    unreserved characters, so '/' -> %2F, ' ' -> %20, '+' -> %2B)."""
    return urllib.parse.quote(s, safe="")


check = harness.check_reply


check_204 = harness.check_204


# ------------------------------------------------------------------ daemon

kv_overrides = harness.kv_overrides


class KvDaemon(harness.KvDaemonBase):
    """harness.Daemon with the key-value store enabled and a private,
    random shared-memory name."""

    # ---- requests
    def post(self, ns_raw, body, ctype="application/json", headers=None, target=None):
        h = {}
        if ctype is not None:
            h["Content-Type"] = ctype
        h.update(headers or {})
        if body is not None and not isinstance(body, (bytes, str)):
            body = jdump(body)
        if isinstance(body, str):
            body = body.encode("utf-8")
        return self.request("POST", target or "/v4/keyvalues/" + ns_raw, h, body)

    def put_ok(self, ns, key, value, ttl=None):
        """POST one key and assert the 201 echo."""
        body = {"key": key, "value": value}
        if ttl is not None:
            body["ttl"] = ttl
        r = self.post(q(ns), body)
        check(r, 201, entry(ns, key, value, 0 if ttl is None else ttl))
        return r

    def kv_get(self, ns, key):
        return self.get("/v4/keyvalues/%s?key=%s" % (q(ns), q(key)))

    def kv_exists(self, ns, key):
        return self.get("/v4/keyvalues/%s/keyexists?key=%s" % (q(ns), q(key)))

    def keylist(self, ns):
        return self.get("/v4/keylist/" + q(ns))

    def namespaces(self):
        r = self.get("/v4/keyvaluesnamespaces")
        assert r.status == 200, r
        assert r.header("Content-Type") == JSON_CT, r
        return json.loads(r.body)

    def namespaces_status(self):
        return self.get("/v4/keyvaluesnamespaces").status

    def del_key(self, ns, key):
        return self.request("DELETE", "/v4/keyvalues/%s/%s" % (q(ns), q(key)))

    def del_ns(self, ns):
        return self.request("DELETE", "/v4/keyvalues/" + q(ns))


BACKENDS = ["shm", "redis"]


def stop_all(daemons, tail=200):
    """Stops DAEMONS, removes their shared memory and prints their logs' tails."""
    for d in daemons:
        try:
            d.stop()
        finally:
            d.cleanup_shm()
        print(d.log_tail(tail))


def _start(tmpdir, workers=2, redis=None, **kw):
    ov = kv_overrides(**kw)
    if redis is not None:
        # These suites test the store, not Redis outages: a command timeout with room
        # for a loaded CI host (one 1 s timeout gave a 503 once under load 8-10).
        ov = harness.merge(ov, redisfix.redis_overrides(redis, timeout_ms=5000))
    d = KvDaemon(tmpdir, ov, workers)
    d.backend = "shm" if redis is None else "redis"
    os.makedirs(d.tmpdir, exist_ok=True)
    return d


def _redis_for(request):
    """The redis-server of the test's backend parameter, or None for shm."""
    return request.getfixturevalue("redis_server") if request.param == "redis" else None


@pytest.fixture(params=BACKENDS)
def kvd(request, tmp_path):
    """Factory: kvd(workers=2, per_ns=, namespaces=, keys=, key_bytes=,
    value_bytes=, file=, interval=, enable=) -> running KvDaemon."""
    started = []
    redis = _redis_for(request)

    def start(workers=2, **kw):
        d = _start(tmp_path / ("d%d" % len(started)), workers, redis, **kw)
        started.append(d)
        return d.start()

    yield start
    stop_all(started)


@pytest.fixture
def store(kvd):
    """A fresh daemon with an empty store and the default limits."""
    return kvd()


@pytest.fixture(scope="module", params=BACKENDS)
def shared(request, tmp_path_factory):
    """One daemon for the tests that only touch their own namespaces."""
    d = _start(tmp_path_factory.mktemp("kvshared"), redis=_redis_for(request))
    d.start()
    yield d
    stop_all([d])


_ns_seq = iter(range(1, 1 << 30))


def uniq(prefix="ns"):
    return "%s-%d-%s" % (prefix, next(_ns_seq), secrets.token_hex(3))


def head_lines(method, target, headers=(), version="HTTP/1.1"):
    lines = ["%s %s %s" % (method, target, version), "Host: 127.0.0.1"]
    lines += ["%s: %s" % h for h in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def ttl_of(r):
    """ttl member of a GET or keyexists answer (None if absent)."""
    obj = json.loads(r.body)
    if "keyValue" in obj:
        obj = obj["keyValue"]
    return obj.get("ttl")
