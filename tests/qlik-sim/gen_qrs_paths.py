#!/usr/bin/python3
"""Rebuilds qrs_paths.json, the table of the Repository Service's paths that the
simulator checks every QRS request against, from Qlik's QRS OpenAPI (Swagger 2.0)
description, as a QSEoW server serves it at /qrs/about/openapi/main.

    python3 tests/qlik-sim/gen_qrs_paths.py OPENAPI.json [-o tests/qlik-sim/qrs_paths.json]

For each path template (below the base path, "/task/{id}/start"), its methods and,
for each, the names of its query parameters. Bodies, results and descriptions are
left out. The simulator reads the generated file, never the OpenAPI file, so the
tests do not depend on where that lives."""

import argparse
import json
import os
import sys

DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "qrs_paths.json")
METHODS = ("get", "put", "post", "delete", "head", "patch", "options")


def build(api, source):
    if not isinstance(api.get("paths"), dict) or not api["paths"]:
        raise SystemExit("%s has no paths" % source)
    paths = {}
    for path, item in sorted(api["paths"].items()):
        common = [p for p in item.get("parameters", []) if p.get("in") == "query"]
        ops = {}
        for m in METHODS:
            if m in item:
                q = common + [p for p in item[m].get("parameters", []) if p.get("in") == "query"]
                ops[m.upper()] = sorted({p["name"] for p in q})
        paths[path] = ops
    return {"source": source, "generator": "tests/qlik-sim/gen_qrs_paths.py",
            "basePath": api.get("basePath", "/qrs"), "paths": paths}


def dumps(table):
    """JSON with one path a line, so a diff after an update reads well."""
    lines = ['{"source": %s,' % json.dumps(table["source"]),
             ' "generator": %s,' % json.dumps(table["generator"]),
             ' "basePath": %s,' % json.dumps(table["basePath"]),
             ' "paths": {']
    items = list(table["paths"].items())
    for i, (path, ops) in enumerate(items):
        lines.append('  %s: %s%s' % (json.dumps(path), json.dumps(ops),
                                     "," if i < len(items) - 1 else ""))
    lines.append(' }}')
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("openapi", help="the QRS OpenAPI JSON file")
    ap.add_argument("-o", "--output", default=DEFAULT_OUT, help="default: %(default)s")
    a = ap.parse_args(argv)
    with open(a.openapi, encoding="utf-8") as f:
        table = build(json.load(f), os.path.basename(a.openapi))
    tmp = a.output + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(dumps(table))
    os.replace(tmp, a.output)
    n = sum(len(ops) for ops in table["paths"].values())
    print("%s: %d paths, %d operations" % (a.output, len(table["paths"]), n), file=sys.stderr)


if __name__ == "__main__":
    main()
