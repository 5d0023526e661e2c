"""The OpenAPI 3 document (butlerd(8), "MONITORING"; doc/openapi.json): served at
/documentation/json, /documentation/yaml and as plain HTML at /documentation;
checked against the OpenAPI 3.0 rules by a checker of our own (Debian has no
validator package); and kept in step with the route table: a route missing
from the document, or documented but absent from src/http/router.c, fails."""

import html.parser
import json
import os
import re

import pytest
import yaml

import harness
from harness import Raw

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DOC_FILE = os.path.join(ROOT, "doc", "openapi.json")
ROUTER = os.path.join(ROOT, "src", "http", "router.c")
METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
PARAM_IN = {"query", "header", "path", "cookie"}


def route_table(text):
    """(METHOD, pattern) of every entry of the route table in router.c's text."""
    body = text[text.index("static const struct route routes[] = {"):]
    body = body[:body.index("\n};")]
    return set(re.findall(r'^\s*\{"([A-Z]+)", "(/[^"]*)"', body, re.M))


def documented(doc):
    return {(m.upper(), re.sub(r"\{([^}/]+)\}", r":\1", p))
            for p, ops in doc["paths"].items() for m in ops if m in METHODS}


def coverage_problems(routes, doc):
    missing = sorted(routes - documented(doc))
    extra = sorted(documented(doc) - routes)
    return ["route %s %s is not documented" % r for r in missing] + \
           ["%s %s is documented but not in the route table" % r for r in extra]


def resolve(doc, ref, problems, where):
    if not ref.startswith("#/"):
        problems.append("%s: external $ref %s" % (where, ref))
        return None
    node = doc
    for part in ref[2:].split("/"):
        if not isinstance(node, dict) or part not in node:
            problems.append("%s: $ref %s does not resolve" % (where, ref))
            return None
        node = node[part]
    return node


def check_schema(doc, s, problems, where):
    if not isinstance(s, dict):
        problems.append("%s: schema is not an object" % where)
        return
    if "$ref" in s:
        resolve(doc, s["$ref"], problems, where)
        return
    t = s.get("type")
    if t is not None and t not in ("string", "number", "integer", "boolean", "array", "object"):
        problems.append("%s: bad type %r" % (where, t))
    if t == "array" and "items" not in s:
        problems.append("%s: array without items" % where)
    for k, v in s.get("properties", {}).items():
        check_schema(doc, v, problems, where + "." + k)
    if "items" in s:
        check_schema(doc, s["items"], problems, where + "[]")
    req = s.get("required", [])
    if req and (not isinstance(req, list) or not set(req) <= set(s.get("properties", {}))):
        problems.append("%s: required names unknown properties" % where)
    if "enum" in s and (not isinstance(s["enum"], list) or not s["enum"]):
        problems.append("%s: empty enum" % where)


def check_content(doc, content, problems, where):
    if not isinstance(content, dict) or not content:
        problems.append("%s: content must be a non-empty map" % where)
        return
    for mt, m in content.items():
        if not re.fullmatch(r"[a-z]+/[a-z0-9.+-]+", mt):
            problems.append("%s: bad media type %r" % (where, mt))
        if "schema" in m:
            check_schema(doc, m["schema"], problems, "%s %s" % (where, mt))


def openapi_problems(doc):
    """The OpenAPI 3.0 rules that matter for this document."""
    p = []
    if not re.fullmatch(r"3\.0\.\d+", str(doc.get("openapi", ""))):
        p.append("openapi must be 3.0.x")
    info = doc.get("info", {})
    if not info.get("title") or not info.get("version"):
        p.append("info needs title and version")
    allowed_top = {"openapi", "info", "servers", "paths", "components", "security", "tags",
                   "externalDocs"}
    p += ["unknown top-level field %s" % k for k in doc if k not in allowed_top
          and not k.startswith("x-")]
    schemes = doc.get("components", {}).get("securitySchemes", {})
    op_ids = set()
    tags = {t["name"] for t in doc.get("tags", [])}
    for path, ops in doc.get("paths", {}).items():
        if not path.startswith("/"):
            p.append("path %s must start with /" % path)
        templ = re.findall(r"\{([^}/]+)\}", path)
        for m, op in ops.items():
            where = "%s %s" % (m, path)
            if m not in METHODS:
                p.append("%s: unknown method" % where)
                continue
            if not isinstance(op.get("responses"), dict) or not op["responses"]:
                p.append("%s: no responses" % where)
            for code, r in op.get("responses", {}).items():
                if not re.fullmatch(r"[1-5](\d\d|XX)|default", code):
                    p.append("%s: bad status %s" % (where, code))
                if "$ref" in r:
                    r = resolve(doc, r["$ref"], p, where) or {}
                if not r.get("description"):
                    p.append("%s %s: response needs a description" % (where, code))
                if "content" in r:
                    check_content(doc, r["content"], p, "%s %s" % (where, code))
            oid = op.get("operationId")
            if not oid or oid in op_ids:
                p.append("%s: operationId missing or not unique" % where)
            op_ids.add(oid)
            for t in op.get("tags", []):
                if t not in tags:
                    p.append("%s: tag %s not declared" % (where, t))
            seen, path_params = set(), set()
            for prm in op.get("parameters", []):
                if "$ref" in prm:
                    prm = resolve(doc, prm["$ref"], p, where) or {}
                key = (prm.get("name"), prm.get("in"))
                if not prm.get("name") or prm.get("in") not in PARAM_IN or key in seen:
                    p.append("%s: bad or duplicate parameter %r" % (where, key))
                seen.add(key)
                if prm.get("in") == "path":
                    path_params.add(prm["name"])
                    if prm.get("required") is not True:
                        p.append("%s: path parameter %s must be required" % (where, prm["name"]))
                if "schema" not in prm and "content" not in prm:
                    p.append("%s: parameter %s needs a schema" % (where, prm.get("name")))
                else:
                    check_schema(doc, prm.get("schema", {}), p, where + " " + str(prm["name"]))
            if path_params != set(templ):
                p.append("%s: path parameters %s vs template %s" % (where, sorted(path_params),
                                                                   templ))
            if "requestBody" in op:
                check_content(doc, op["requestBody"].get("content"), p, where + " body")
            for req in op.get("security", doc.get("security", [])):
                for name in req:
                    if name not in schemes:
                        p.append("%s: unknown security scheme %s" % (where, name))
    for name, s in doc.get("components", {}).get("schemas", {}).items():
        check_schema(doc, s, p, "components.schemas." + name)
    return p


@pytest.fixture(scope="module")
def doc():
    with open(DOC_FILE, encoding="utf-8") as f:
        return json.load(f)


def test_document_follows_openapi_3(doc):
    assert openapi_problems(doc) == []


def test_every_route_is_documented_and_nothing_else(doc):
    with open(ROUTER, encoding="utf-8") as f:
        routes = route_table(f.read())
    assert len(routes) > 50
    assert coverage_problems(routes, doc) == []


def test_coverage_check_catches_an_undocumented_route(doc):
    with open(ROUTER, encoding="utf-8") as f:
        text = f.read()
    added = text.replace("static const struct route routes[] = {\n",
                         "static const struct route routes[] = {\n"
                         '    {"GET", "/v4/newthing/:id", api_ping, F(butlerping), 0, JP_NONE, '
                         '"ping"},\n', 1)
    assert coverage_problems(route_table(added), doc) == [
        "route GET /v4/newthing/:id is not documented"]
    removed = re.sub(r'^\s*\{"GET", "/metrics".*\n', "", text, flags=re.M)
    assert coverage_problems(route_table(removed), doc) == [
        "GET /metrics is documented but not in the route table"]


def test_checker_catches_broken_documents(doc):
    bad = json.loads(json.dumps(doc))
    bad["paths"]["/v4/keyvalues/{namespace}"]["get"]["parameters"] = []
    bad["paths"]["/v4/butlerping"]["get"]["responses"]["200"]["content"][
        "application/json"]["schema"] = {"$ref": "#/components/schemas/Nope"}
    del bad["info"]["version"]
    probs = openapi_problems(bad)
    assert len(probs) == 3, probs


class _Html(html.parser.HTMLParser):
    VOID = {"meta", "br", "hr", "img", "link", "input"}

    def __init__(self):
        super().__init__()
        self.stack, self.errors, self.tags, self.text = [], [], set(), []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        for k, v in attrs:
            if k in ("src", "href") and v and not v.startswith(("/", "#")):
                self.errors.append("external %s=%s" % (k, v))
            if k.startswith("on"):
                self.errors.append("event handler %s" % k)
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append("unbalanced </%s> (open: %s)" % (tag, self.stack[-3:]))
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def test_served_forms(start_daemon, doc):
    d = start_daemon()
    r = d.get("/documentation/json")
    assert r.status == 200 and r.header("Content-Type") == harness.JSON_CT
    with open(DOC_FILE, "rb") as f:
        assert r.body == f.read()
    r = d.get("/documentation/yaml")
    assert r.status == 200 and r.header("Content-Type") == "application/yaml; charset=utf-8"
    assert yaml.safe_load(r.body) == doc
    r = d.get("/documentation")
    assert r.status == 200 and r.header("Content-Type") == "text/html; charset=utf-8"
    p = _Html()
    p.feed(r.text)
    p.close()
    assert p.errors == [] and p.stack == []
    assert "script" not in p.tags and "iframe" not in p.tags
    assert "http://" not in r.text and "https://" not in r.text
    text = "".join(p.text)
    for path, ops in doc["paths"].items():
        for m in ops:
            assert "%s %s" % (m.upper(), path) in text, (m, path)


def test_open_with_tokens_and_can_be_turned_off(start_daemon):
    d = start_daemon({"butlerd": {"auth": {"enable": True, "tokens": Raw(
        '( { name = "x"; sha256 = "%s"; scopes = [ "ping" ]; } )' % ("0" * 64))}}})
    for p in ("/documentation", "/documentation/json", "/documentation/yaml"):
        assert d.get(p).status == 200, p
    d = start_daemon({"butlerd": {"documentation": {"enable": False}}})
    for p in ("/documentation", "/documentation/json", "/documentation/yaml"):
        assert d.get(p).status == 404, p
