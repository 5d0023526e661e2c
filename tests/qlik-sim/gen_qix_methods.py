#!/usr/bin/python3
"""Rebuilds qix_methods.json, the Qlik engine's method table that the simulator
checks every JSON-RPC call against, from Qlik's QIX schema (the JSON file that
the enigma.js npm package ships as schemas/<version>.json).

    python3 tests/qlik-sim/gen_qix_methods.py SCHEMA.json [-o tests/qlik-sim/qix_methods.json]

For each object type the simulator hands out a handle for (Global, Doc and the
Generic* types, and Field), every method with its parameters in order: name and
whether it is optional. The values of the schema (defaults, results) are left
out: the simulator only needs the names. The simulator reads the generated file,
never the schema, so the tests do not depend on where the schema lives."""

import argparse
import json
import os
import sys

TYPES = ["Global", "Doc", "GenericObject", "GenericDimension", "GenericMeasure",
         "GenericBookmark", "GenericVariable", "Field"]
DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "qix_methods.json")


def build(schema, source, types=TYPES):
    structs = schema["structs"]
    missing = [t for t in types if t not in structs]
    if missing:
        raise SystemExit("the schema has no object type %s" % ", ".join(missing))
    out = {"source": source,
           "generator": "tests/qlik-sim/gen_qix_methods.py",
           "types": {}}
    for t in types:
        out["types"][t] = {
            name: [{"name": p["Name"], "optional": bool(p.get("Optional", False))}
                   for p in m.get("In", [])]
            for name, m in sorted(structs[t].items()) if isinstance(m, dict)}
    return out


def dumps(table):
    """JSON with one method a line, so a diff after a schema update reads well."""
    lines = ['{"source": %s,' % json.dumps(table["source"]),
             ' "generator": %s,' % json.dumps(table["generator"]),
             ' "types": {']
    types = list(table["types"].items())
    for i, (t, methods) in enumerate(types):
        lines.append('  %s: {' % json.dumps(t))
        items = list(methods.items())
        for j, (name, params) in enumerate(items):
            lines.append('   %s: %s%s' % (json.dumps(name), json.dumps(params),
                                          "," if j < len(items) - 1 else ""))
        lines.append('  }%s' % ("," if i < len(types) - 1 else ""))
    lines.append(' }}')
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("schema", help="the QIX schema JSON file")
    ap.add_argument("-o", "--output", default=DEFAULT_OUT, help="default: %(default)s")
    a = ap.parse_args(argv)
    with open(a.schema, encoding="utf-8") as f:
        table = build(json.load(f), os.path.basename(a.schema))
    tmp = a.output + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(dumps(table))
    os.replace(tmp, a.output)
    n = sum(len(m) for m in table["types"].values())
    print("%s: %d methods of %d object types" % (a.output, n, len(table["types"])),
          file=sys.stderr)


if __name__ == "__main__":
    main()
