"""Shared constants and helpers of the simulator's self-tests (test_sim*.py):
the fixture's task and app IDs, raw HTTPS and WebSocket clients, and a
simulator started per test. Loopback only; every wait is bounded."""

import http.client
import json
import os
import ssl
import sys
import urllib.parse

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import qlik_sim  # noqa: E402
from qlik_sim import QlikSim  # noqa: E402

USER = "UserDirectory=Internal;UserId=sa_repository"
KEY = "Ab3dEf6hIj9lMn0p"
APP1_TASK = "e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e"
APP2_TASK = "7552d9fc-d1bb-4975-9a38-18357de531ea"
APP3_TASK = "fb0f317d-da91-4b86-aafa-0174ae1e8c8f"
APP4_TASK = "a4b0c6d2-3e1f-4a5b-9c8d-7e6f5a4b3c2d"
DENIED_TASK = "16cd2478-6cf2-4133-8fc7-7e9b97a92337"
OBRIEN_TASK = "3c1d2e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f"
BACKSLASH_TASK = "5d6e7f80-9a1b-4c2d-9e3f-4a5b6c7d8e9f"
TASKS1_TASK = "0fd6b2b1-8a7c-4d5e-a6f7-b8c9d0e1f2a3"
EXTERNAL_TASK = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
USERSYNC_TASK = "2b3c4d5e-6f70-4182-a394-b5c6d7e8f901"


def enc(s):
    """butlerd's encoding: RFC 3986 unreserved stay, the rest %XX."""
    return urllib.parse.quote(s, safe="-._~")


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return qlik_sim.make_certs(str(tmp_path_factory.mktemp("certs")))


@pytest.fixture(scope="module")
def sim(certs):
    s = QlikSim(os.path.join(HERE, "fixture.json"), certs_dir=os.path.dirname(certs["root.pem"]))
    s.start()
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def fresh(request):
    if "sim" in request.fixturenames:
        s = request.getfixturevalue("sim")
        s.clear_behaviours()
        s.clear()
    yield


def ctx_for(certs, cert="client", verify=True):
    ctx = ssl.create_default_context(cafile=certs["root.pem"])
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert:
        ctx.load_cert_chain(certs[cert + ".pem"], certs[cert + "_key.pem"])
    return ctx


def conn(sim, certs, cert="client", timeout=5.0):
    return http.client.HTTPSConnection("127.0.0.1", sim.qrs_port, context=ctx_for(certs, cert),
                                       timeout=timeout)


def call(sim, certs, method, path, filter=None, key=KEY, header_key=None, user=USER, body=None,
         query_extra="", c=None, timeout=5.0):
    """One QRS request as butlerd sends it; returns (status, body bytes, response)."""
    q = []
    if filter is not None:
        q.append("filter=" + enc(filter))
    if query_extra:
        q.append(query_extra)
    if key is not None:
        q.append("xrfkey=" + key)
    url = path + ("?" + "&".join(q) if q else "")
    h = {"Content-Type": "application/json"}
    hk = key if header_key is None else header_key
    if hk is not False and hk is not None:
        h["X-Qlik-Xrfkey"] = hk
    if user is not None:
        h["X-Qlik-User"] = user
    own = c is None
    c = c or conn(sim, certs, timeout=timeout)
    try:
        c.request(method, url, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        return r.status, data, r
    finally:
        if own:
            c.close()


def ids(data):
    return [t["id"] for t in json.loads(data)]
