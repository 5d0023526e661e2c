"""butlerd -T TEMPLATE [-x CONTEXT.json] [-m html|text|json]: offline rendering of
alert templates (butlerd(8) "RENDERING A TEMPLATE"): each mode, the example
context, errors with file:line:col and their exit codes, and the sample templates
shipped in contrib/templates rendered with the example context."""

import json
import os

import pytest

from harness import run_cli

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.environ.get("BUTLERD_SRCDIR") or os.path.dirname(os.path.dirname(HERE))
EXAMPLE = os.path.join(HERE, "tmpl", "context-example.json")
TEMPLATES = os.path.join(SRCDIR, "contrib", "templates")

# A context whose values would break JSON or HTML if inserted unescaped.
HOSTILE_NAME = 'Say "hi" \\ C:\\new\\table\r\n\t<b>&amp;</b> </pre> {{x}} \u00e9\u20ac \u0001 end'


def write(tmp_path, name, text, mode="w"):
    p = tmp_path / name
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text, encoding="utf-8")
    return str(p)


def render(*args):
    return run_cli(["-T"] + list(args))


def test_html_mode_with_the_example_context(tmp_path):
    t = write(tmp_path, "t.handlebars", "{{taskName}}: {{appDescription}} {{{appDescription}}}")
    cp = render(t)
    assert cp.returncode == 0, cp.stderr
    assert cp.stderr == ""
    # written exactly as rendered: no line break added
    assert cp.stdout == "Reload of Sales: Sales &amp; margin &lt;Q4&gt; Sales & margin <Q4>"


def test_text_mode_escapes_nothing(tmp_path):
    t = write(tmp_path, "subject.txt", 'Reload failed: "{{taskName}}" {{appDescription}}')
    cp = render(t, "-m", "text")
    assert cp.returncode == 0
    assert cp.stdout == 'Reload failed: "Reload of Sales" Sales & margin <Q4>'


def test_default_context_is_the_example_file(tmp_path):
    with open(EXAMPLE, encoding="utf-8") as f:
        keys = list(json.load(f))
    t = write(tmp_path, "all.handlebars", "".join("%s={{%s}}\n" % (k, k) for k in keys))
    a, b = render(t), render(t, "-x", EXAMPLE)
    assert a.returncode == b.returncode == 0
    assert a.stderr == b.stderr == ""
    assert a.stdout == b.stdout
    assert "executionDuration=[object Object]\n" in a.stdout
    assert "appTags=Finance,Nightly\n" in a.stdout


def test_json_mode_keeps_hostile_values_inside_strings(tmp_path):
    ctx = write(tmp_path, "ctx.json", json.dumps({"taskName": HOSTILE_NAME, "appFileSize": 7}))
    t = write(tmp_path, "t.handlebars",
              '{"raw":"{{{taskName}}}","esc":"{{taskName}}","size":{{appFileSize}} }')
    cp = render(t, "-x", ctx, "-m", "json")
    assert cp.returncode == 0, cp.stderr
    out = json.loads(cp.stdout)
    assert out["raw"] == HOSTILE_NAME
    assert out["esc"] == (HOSTILE_NAME.replace("&", "&amp;").replace("<", "&lt;")
                          .replace(">", "&gt;").replace('"', "&quot;"))
    assert out["size"] == 7


def test_json_mode_output_not_an_object(tmp_path):
    t = write(tmp_path, "t.handlebars", '{"a":"{{taskName}}"} and more')
    cp = render(t, "-m", "json")
    assert cp.returncode == 3
    assert cp.stdout == ""
    assert cp.stderr == "%s: rendered output:1:25: unexpected character\n" % t
    t2 = write(tmp_path, "t2.handlebars", '\n["{{taskName}}"]')
    cp = render(t2, "-m", "json")
    assert cp.returncode == 3
    assert cp.stderr == "%s: rendered output:2:1: not a JSON object\n" % t2


def test_syntax_error_names_file_line_col(tmp_path):
    t = write(tmp_path, "bad.handlebars", "<p>\n  {{#each appTags}}\n  {{this}}\n  {{/if}}\n")
    cp = render(t)
    assert cp.returncode == 1
    assert cp.stdout == ""
    assert cp.stderr == "%s:4:3: {{/if}} does not close {{#each}} opened at 2:3\n" % t
    t = write(tmp_path, "open.handlebars", "Reload failed: \u00e9 {{taskName")
    cp = render(t)
    assert cp.returncode == 1
    assert cp.stderr == "%s:1:18: unterminated tag\n" % t
    # as in Handlebars, }}} does not close {{ (a JSON object ending in a value)
    t = write(tmp_path, "size.handlebars", '{"size": {{appFileSize}}}')
    cp = render(t, "-m", "json")
    assert (cp.returncode, cp.stderr) == (1, "%s:1:23: '}}}' closes a tag opened with '{{'\n" % t)
    t = write(tmp_path, "partial.handlebars", "x\n{{> footer}}")
    cp = render(t)
    assert (cp.returncode, cp.stderr) == (1, "%s:2:1: unsupported construct 'partial'\n" % t)


def test_unknown_fields_are_warnings(tmp_path):
    t = write(tmp_path, "t.handlebars",
              "{{tasId}}\n{{#each genericUrls}}{{linkText}} {{link}}{{/each}}")
    cp = render(t)
    assert cp.returncode == 0
    assert cp.stdout == "\nRunbook "
    assert cp.stderr == ("%s:1:3: warning: unknown field 'tasId'\n"
                         "%s:2:37: warning: unknown field 'link'\n" % (t, t))


def test_missing_template_file(tmp_path):
    missing = str(tmp_path / "nope.handlebars")
    cp = render(missing)
    assert cp.returncode == 1
    assert cp.stderr == "%s: No such file or directory\n" % missing


def test_missing_context_file(tmp_path):
    t = write(tmp_path, "t.handlebars", "{{taskName}}")
    missing = str(tmp_path / "nope.json")
    cp = render(t, "-x", missing)
    assert cp.returncode == 2
    assert cp.stdout == ""
    assert cp.stderr == "%s: No such file or directory\n" % missing


@pytest.mark.parametrize("text,pos,msg", [
    ('{\n  "taskName": "x",\n  oops\n}', "3:3", None),
    ('["not", "an", "object"]', "1:1", "not a JSON object"),
    ('  {"a": 1} {"b": 2}', "1:12", "unexpected character"),
    ('', "1:1", "unexpected end of input"),
    ('{"a": "\xff"}', None, None),
])
def test_bad_context(tmp_path, text, pos, msg):
    t = write(tmp_path, "t.handlebars", "{{taskName}}")
    data = text.encode("latin-1") if "\xff" in text else text.encode()
    ctx = write(tmp_path, "ctx.json", data)
    cp = render(t, "-x", ctx)
    assert cp.returncode == 2
    assert cp.stdout == ""
    assert cp.stderr.startswith(ctx + ":")
    if pos:
        assert cp.stderr.startswith("%s:%s: " % (ctx, pos))
    if msg:
        assert cp.stderr == "%s:%s: %s\n" % (ctx, pos, msg)


@pytest.mark.parametrize("args", [
    ["-T", "t.handlebars", "-m", "xml"],
    ["-T", "t.handlebars", "-t"],
    ["-T", "t.handlebars", "extra"],
    ["-T", "t.handlebars", "-q"],
])
def test_usage_errors(tmp_path, args):
    write(tmp_path, "t.handlebars", "x")
    args = [str(tmp_path / a) if a == "t.handlebars" else a for a in args]
    cp = run_cli(args)
    assert cp.returncode == 64
    assert cp.stdout == ""
    assert "usage" in cp.stderr or "-m xml" in cp.stderr


SAMPLES = [("email", "failed-reload", "html"), ("email", "aborted-reload", "html"),
           ("email", "success-reload", "html"), ("slack", "failed-reload", "json"),
           ("slack", "aborted-reload", "json"), ("teams", "failed-reload", "json"),
           ("teams", "aborted-reload", "json")]


def sample(kind, name):
    return os.path.join(TEMPLATES, kind, name + ".handlebars")


@pytest.mark.parametrize("kind,name,mode", SAMPLES)
def test_sample_templates_render(kind, name, mode):
    cp = render(sample(kind, name), "-m", mode)
    assert cp.returncode == 0, cp.stderr
    assert cp.stderr == ""  # compiles, and every field name is known
    assert "{{" not in cp.stdout
    word = {"failed": "failed", "aborted": "aborted", "success": "succeeded"}[name.split("-")[0]]
    if mode == "html":
        assert cp.stdout.startswith("<!DOCTYPE html>\n")
        assert "Reload %s: Reload of Sales</h2>" % word in cp.stdout
        # the script log is HTML-escaped, line breaks kept
        assert "Error: Cannot open file &#x27;lib://Data/sales.qvd&#x27;\n" in cp.stdout
        return
    msg = json.loads(cp.stdout)
    assert isinstance(msg, dict)
    text = json.dumps(msg)
    assert "Reload %s: Reload of Sales" % word in text
    assert "https://wiki.acme.local/qlik/runbook" in text
    assert "https://sense.acme.local/qmc" in text and "https://sense.acme.local/hub" in text
    if kind == "teams":
        card = msg["attachments"][0]["content"]
        assert card["type"] == "AdaptiveCard" and card["version"] == "1.3"
        with open(EXAMPLE, encoding="utf-8") as f:
            tail = json.load(f)["scriptLogTail"]
        assert card["body"][-1]["text"] == tail


@pytest.mark.parametrize("kind,name,mode", [s for s in SAMPLES if s[2] == "json"])
def test_sample_json_templates_survive_hostile_values(tmp_path, kind, name, mode):
    with open(EXAMPLE, encoding="utf-8") as f:
        ctx = json.load(f)
    for k in ("taskName", "appName", "user", "scriptLogTail", "appOwnerName", "hostName"):
        ctx[k] = HOSTILE_NAME
    ctx["genericUrls"][0]["linkText"] = HOSTILE_NAME
    path = write(tmp_path, "ctx.json", json.dumps(ctx))
    cp = render(sample(kind, name), "-x", path, "-m", mode)
    assert cp.returncode == 0, cp.stderr
    msg = json.loads(cp.stdout)
    if kind == "slack":
        assert msg["blocks"][0]["text"]["text"].endswith(HOSTILE_NAME)
    else:
        assert msg["attachments"][0]["content"]["body"][-1]["text"] == HOSTILE_NAME


def test_context_and_mode_need_T(tmp_path):
    cp = run_cli(["-x", str(tmp_path / "c.json")])
    assert cp.returncode == 2  # the daemon's usage error
    assert cp.stderr.startswith("butlerd: -x and -m go with -T\n")
