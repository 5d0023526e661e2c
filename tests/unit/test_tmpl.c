/* The alert template engine (src/events/tmpl.c, tmpl_render.c, tmpl_fields.c):
 * every construct of the subset, truthiness and lookup, the escaping of each mode,
 * Handlebars' standalone-line and "~" whitespace rules, errors with line:col, the
 * unknown-field warnings and the limits. Expected outputs are written from the
 * rules of butlerd-templates(7) (Handlebars 4.7 semantics). */
#include "tmpl.h"
#include "tmpl_fields.h"
#include "util.h"
#include "unit.h"

#include <json-c/json.h>

#include <stdlib.h>

static const char *CTX =
    "{\"name\":\"Sales\",\"n\":1,\"zero\":0,\"f\":false,\"t\":true,\"empty\":\"\",\"nul\":null,"
    "\"arr\":[],\"obj\":{},\"s0\":\"0\",\"sfalse\":\"false\",\"neg\":-1,"
    "\"list\":[\"x\",\"y\"],\"o\":{\"p\":1,\"q\":2},\"deep\":{\"a\":{\"b\":\"c\"}},"
    "\"urls\":[{\"id\":\"a\",\"url\":\"https://a/\"},{\"id\":\"b\",\"url\":\"https://b/\"}],"
    "\"uni\":\"h\\u00e9llo\\ud83d\\ude00\",\"html\":\"&<>\\\"'`=/\\\\\","
    "\"ctl\":\"q\\\"b\\\\ cr\\r lf\\n tab\\t u1\\u0001 bs\\b ff\\f </pre> {{x}} \\u00e9\","
    "\"mixed\":[1,\"a\",null,[2,3],{}],\"half\":1.5,\"big\":1e21,\"tiny\":1e-7,"
    "\"micro\":0.000001,\"two\":2.0,\"negz\":-0.0,\"long\":123456789012,"
    "\"with\":{\"k\":\"K\",\"in\":[\"i\"]}}";

static json_object *ctx_root;

/* Renders TPL with the test context in MODE and compares. */
static void render_is(const char *tpl, enum tmpl_mode mode, const char *want, int line)
{
    struct tmpl_error err;
    struct tmpl *t = tmpl_compile(tpl, strlen(tpl), &err);
    if (!t) {
        unit_checks++, unit_failures++;
        fprintf(stderr, "%s:%d: compile error %d:%d: %s\n", __FILE__, line, err.line, err.col,
                err.msg);
        return;
    }
    size_t len;
    int cut;
    char *out = tmpl_render(t, ctx_root, mode, &len, &cut);
    unit_checks++;
    if (strcmp(out, want) != 0 || cut) {
        unit_failures++;
        fprintf(stderr, "%s:%d: template \"%.60s\": got \"%.200s\", want \"%.200s\"\n", __FILE__, line, tpl,
                out, want);
    }
    free(out);
    tmpl_free(t);
}

#define H(tpl, want) render_is((tpl), TMPL_HTML, (want), __LINE__)
#define T(tpl, want) render_is((tpl), TMPL_TEXT, (want), __LINE__)
#define J(tpl, want) render_is((tpl), TMPL_JSON, (want), __LINE__)

/* Compiling TPL fails at LINE:COL with MSG. */
static void error_is(const char *tpl, size_t len, int l, int c, const char *msg, int line)
{
    struct tmpl_error err;
    struct tmpl *t = tmpl_compile(tpl, len, &err);
    unit_checks++;
    if (t || err.line != l || err.col != c || strcmp(err.msg, msg) != 0) {
        unit_failures++;
        fprintf(stderr, "%s:%d: template \"%.60s\": got %s %d:%d: %s, want %d:%d: %s\n", __FILE__,
                line, tpl, t ? "success" : "error", err.line, err.col, err.msg, l, c, msg);
    }
    tmpl_free(t);
}

#define E(tpl, l, c, msg) error_is((tpl), strlen(tpl), (l), (c), (msg), __LINE__)

static void constructs(void)
{
    /* text, escaped tags */
    H("plain text\n", "plain text\n");
    H("\\{{name}}", "{{name}}");
    H("\\\\{{name}}", "\\Sales");
    H("a\\{{name}} {{name}}", "a{{name}} Sales");
    H("\\{{name}}\\{{name}}", "{{name}}{{name}}");
    H("\\{{name}}\\\\{{name}}", "{{name}}\\Sales");
    H("{ {name} } {name}}", "{ {name} } {name}}");
    /* variables, spaces inside, paths */
    H("{{name}}|{{ name }}|{{{ name }}}", "Sales|Sales|Sales");
    H("{{deep.a.b}}|{{deep.x.b}}|{{name.b}}|{{nope}}", "c|||");
    H("{{list.length}} {{uni.length}} {{arr.length}} [{{list.1}}]", "2 6 0 []");
    /* raw */
    H("{{{html}}}|{{&html}}", "&<>\"'`=/\\|&<>\"'`=/\\");
    /* this, ., ../, @root */
    H("{{this}}", "[object Object]");
    H("{{#each list}}{{.}}{{this}}{{/each}}", "xxyy");
    H("{{#each urls}}{{this.url}} {{/each}}", "https://a/ https://b/ ");
    H("{{#each list}}{{../name}}{{@root.n}}{{/each}}", "Sales1Sales1");
    H("{{#with with}}{{#each in}}{{../k}}{{../../name}}{{this}}{{/each}}{{/with}}", "KSalesi");
    /* ../ counts context changes: #if keeps the context */
    H("{{#each list}}{{#if ../t}}{{../name}}{{/if}}{{/each}}", "SalesSales");
    H("{{../name}}|{{../../x}}", "|");
    /* loop data, also through a nested #if and #with */
    H("{{#each list}}{{@index}}{{@key}}{{@first}}{{@last}} {{/each}}",
      "00truefalse 11falsetrue ");
    H("{{#each o}}{{@index}}{{@key}}{{@first}}{{@last}}={{this}} {{/each}}",
      "0ptruefalse=1 1qfalsetrue=2 ");
    H("{{#each list}}{{#if t}}{{@index}}{{/if}}{{/each}}|{{@index}}", "|");
    H("{{#each list}}{{#if @first}}[{{/if}}{{this}}{{#if @last}}]{{else}},{{/if}}{{/each}}",
      "[x,y]");
    /* #if, else, else if, else unless, #unless */
    H("{{#if t}}A{{else}}B{{/if}}{{#if f}}A{{else}}B{{/if}}", "AB");
    H("{{#if f}}1{{else if zero}}2{{else if n}}3{{else}}4{{/if}}", "3");
    H("{{#if f}}1{{else if zero}}2{{else}}4{{/if}}", "4");
    H("{{#if f}}1{{else unless zero}}2{{/if}}", "2");
    H("{{#unless f}}A{{/unless}}{{#unless t}}A{{else}}B{{/unless}}", "AB");
    /* #each: array, object, else on empty or not iterable */
    H("{{#each urls}}{{id}}{{/each}}", "ab");
    H("{{#each arr}}x{{else}}none{{/each}}|{{#each obj}}x{{else}}none{{/each}}",
      "none|none");
    H("{{#each name}}x{{else}}str{{/each}}|{{#each nope}}x{{else}}abs{{/each}}", "str|abs");
    /* #with: absent, null, false, "" and [] go to else; 0 and {} do not */
    H("{{#with deep}}{{a.b}}{{/with}}", "c");
    H("{{#with nope}}x{{else}}1{{/with}}{{#with nul}}x{{else}}2{{/with}}"
      "{{#with f}}x{{else}}3{{/with}}{{#with empty}}x{{else}}4{{/with}}"
      "{{#with arr}}x{{else}}5{{/with}}",
      "12345");
    H("{{#with zero}}[{{this}}]{{/with}}{{#with obj}}[obj]{{/with}}", "[0][obj]");
    /* eq, as a subexpression and as a variable */
    H("{{#if (eq name \"Sales\")}}y{{else}}n{{/if}}", "y");
    H("{{eq name 'Sales'}} {{eq n 1}} {{eq n 1.0}} {{eq s0 0}} {{eq t true}}",
      "true true true false true");
    H("{{eq nope nada}} {{eq nul null}} {{eq nul undefined}} {{eq nope undefined}}",
      "true true false true");
    H("{{eq list list}} {{eq obj obj}} {{eq neg -1}} {{eq half 1.5}}", "false false true true");
    H("{{eq (eq n 1) true}} {{#if (eq (eq n 2) false)}}nested{{/if}}", "true nested");
    H("{{eq \"a\\\"b\" 'a\"b'}} {{eq 'it\\'s' \"it's\"}}", "true true");
    /* comments */
    H("a{{! short }}b{{!-- long {{name}} }} --}}c", "abc");
    H("{{! ends at the first }} b}}", " b}}");
    H("{{!-- -- } }} --}}x", "x");
    /* ~ on every kind of tag */
    H("a  {{~name~}}  b", "aSalesb");
    H("a \n {{~#if t~}} \n b \n {{~/if~}} \n c", "abc");
    H("{{#if f}}x{{~else~}}  y  {{/if}}", "y  ");
    H("a {{~!-- c --~}} b", "ab");
    H("{{name~}}\n\n  {{~name}}", "SalesSales");
}

static void values(void)
{
    /* falsy: absent, null, false, "", 0, []; everything else truthy */
    H("{{#if nope}}1{{/if}}{{#if nul}}2{{/if}}{{#if f}}3{{/if}}{{#if empty}}4{{/if}}"
      "{{#if zero}}5{{/if}}{{#if arr}}6{{/if}}{{#if negz}}7{{/if}}",
      "");
    H("{{#if obj}}1{{/if}}{{#if s0}}2{{/if}}{{#if sfalse}}3{{/if}}{{#if neg}}4{{/if}}"
      "{{#if list}}5{{/if}}{{#if half}}6{{/if}}",
      "123456");
    /* a plain name does not fall back to outer contexts */
    H("{{#each list}}[{{name}}]{{/each}}", "[][]");
    /* text of values */
    T("{{t}} {{f}} {{nul}}|{{obj}} {{mixed}}", "true false |[object Object] 1,a,,2,3,[object Object]");
    T("{{n}} {{half}} {{big}} {{tiny}} {{micro}} {{two}} {{negz}} {{long}} {{neg}}",
      "1 1.5 1e+21 1e-7 0.000001 2 0 123456789012 -1");
}

static void escaping(void)
{
    /* html: Handlebars' seven characters, nothing else (not / or \) */
    H("{{html}}", "&amp;&lt;&gt;&quot;&#x27;&#x60;&#x3D;/\\");
    H("{{{html}}}", "&<>\"'`=/\\");
    /* text: nothing escaped */
    T("{{html}}|{{{html}}}", "&<>\"'`=/\\|&<>\"'`=/\\");
    T("{{ctl}}", "q\"b\\ cr\r lf\n tab\t u1\x01 bs\b ff\f </pre> {{x}} \xC3\xA9");
    /* json: html-escaped then json-escaped; raw: json-escaped only */
    J("{\"a\":\"{{html}}\"}", "{\"a\":\"&amp;&lt;&gt;&quot;&#x27;&#x60;&#x3D;/\\\\\"}");
    J("{\"a\":\"{{{html}}}\"}", "{\"a\":\"&<>\\\"'`=/\\\\\"}");
    J("{\"a\":\"{{{ctl}}}\"}",
      "{\"a\":\"q\\\"b\\\\ cr\\r lf\\n tab\\t u1\\u0001 bs\\b ff\\f </pre> {{x}} \xC3\xA9\"}");
    J("{\"a\":\"{{ctl}}\"}",
      "{\"a\":\"q&quot;b\\\\ cr\\r lf\\n tab\\t u1\\u0001 bs\\b ff\\f &lt;/pre&gt; {{x}} "
      "\xC3\xA9\"}");
    /* outside a string literal: numbers and booleans as they are */
    J("{\"n\":{{n}},\"t\":{{t}},\"h\":{{half}} }", "{\"n\":1,\"t\":true,\"h\":1.5 }");
    /* every rendering of a hostile value parses as JSON */
    static const char *const tpls[] = {"{\"a\":\"{{ctl}}\",\"b\":\"{{{ctl}}}\",\"c\":\"{{html}}\"}",
                                       "{\"a\":\"{{{html}}} {{mixed}} {{{uni}}}\"}"};
    for (size_t i = 0; i < 2; i++) {
        struct tmpl_error err;
        struct tmpl *t = tmpl_compile(tpls[i], strlen(tpls[i]), &err);
        CHECK(t != NULL);
        size_t len;
        char *out = t ? tmpl_render(t, ctx_root, TMPL_JSON, &len, NULL) : NULL;
        json_object *o = out ? json_tokener_parse(out) : NULL;
        CHECK(o && json_object_is_type(o, json_type_object));
        if (o && i == 0) {
            json_object *a;
            CHECK(json_object_object_get_ex(o, "b", &a));
            CHECK_STR(json_object_get_string(a),
                      "q\"b\\ cr\r lf\n tab\t u1\x01 bs\b ff\f </pre> {{x}} \xC3\xA9");
        }
        json_object_put(o);
        free(out);
        tmpl_free(t);
    }
}

static void whitespace(void)
{
    /* the e-mail example: block tags alone on their lines vanish with their line */
    H("<p>\n        {{#each list}}\n          {{this}}<br>\n        {{/each}}\n</p>\n",
      "<p>\n          x<br>\n          y<br>\n</p>\n");
    /* standalone is decided before ~ strips: both apply */
    H("a\n  {{~#if t}}\nb\n{{/if}}\n", "ab\n");
    /* CRLF, tabs, else lines, the end of the template without a line break */
    H("{{#if t}}\r\nx\r\n{{/if}}\r\n", "x\r\n");
    H("\t{{#if f}}\n1\n\t{{else}}\t\n2\n\t{{/if}}\n", "2\n");
    H("{{#if t}}\n1\n{{else}}\n2\n{{/if}}\n", "1\n");
    H("x\n{{#if t}}\ny\n{{/if}}", "x\ny\n");
    H("{{#if f}}\n1\n{{else if t}}\n2\n{{else}}\n3\n{{/if}}\n", "2\n");
    /* comments alone on a line vanish too; variables never do */
    H("a\n  {{! c }}  \nb", "a\nb");
    H("a\n  {{!-- c\n more --}}\nb\n", "a\nb\n");
    H("  {{name}}\n", "  Sales\n");
    /* not alone: text after the tag, or before it */
    H("{{#if t}} x\n{{/if}}", " x\n");
    H("a {{#if t}}\nx{{/if}}", "a \nx");
    /* an empty block body is not standalone material */
    H("x\n{{#if t}}{{/if}}\ny", "x\n\ny");
    /* a leading BOM is ignored */
    H("\xEF\xBB\xBF{{name}}", "Sales");
}

static void errors(void)
{
    E("ab\n  {{name", 2, 3, "unterminated tag");
    E("{{name \"abc", 1, 1, "unterminated tag");
    E("x{{!-- never closed }}", 1, 2, "unterminated comment");
    E("{{! no end", 1, 1, "unterminated comment");
    E("{{#each list}}\n{{/if}}", 2, 1, "{{/if}} does not close {{#each}} opened at 1:1");
    E("{{/if}}", 1, 1, "{{/if}} closes no open block");
    E("x\n{{#each list}}\n", 2, 1, "{{#each}} opened here is never closed");
    E("{{#if t}}{{else if n}}", 1, 1, "{{#if}} opened here is never closed");
    E("{{else}}", 1, 1, "{{else}} outside a block");
    E("{{#if t}}{{else}}{{else}}{{/if}}", 1, 18, "second {{else}} in {{#if}} opened at 1:1");
    E("{{}}", 1, 3, "invalid expression");
    E("{{ }}", 1, 4, "invalid expression");
    E("{{a..b}}", 1, 4, "invalid expression");
    E("{{a/b}}", 1, 4, "invalid expression");
    E("{{this.this}}", 1, 12, "invalid expression");
    E("{{\"lit\"}}", 1, 3, "invalid expression");
    E("{{lookup a b}}", 1, 3, "unknown helper 'lookup'");
    E("{{#if (concat a b)}}{{/if}}", 1, 8, "unknown helper 'concat'");
    E("{{eq a}}", 1, 3, "helper 'eq' needs exactly two arguments");
    E("{{eq a b c}}", 1, 3, "helper 'eq' needs exactly two arguments");
    E("{{#appTags}}x{{/appTags}}", 1, 1, "unknown block helper 'appTags'");
    E("{{#if}}x{{/if}}", 1, 1, "{{#if}} needs exactly one argument");
    E("{{#each a b}}x{{/each}}", 1, 1, "{{#each}} needs exactly one argument");
    E("{{> footer}}", 1, 1, "unsupported construct 'partial'");
    E("{{#> layout}}x{{/layout}}", 1, 1, "unsupported construct 'partial block'");
    E("{{#*inline \"p\"}}x{{/inline}}", 1, 1, "unsupported construct 'inline partial'");
    E("{{*deco}}", 1, 1, "unsupported construct 'decorator'");
    E("{{{{raw}}}}x{{{{/raw}}}}", 1, 1, "unsupported construct 'raw block'");
    E("{{#each list as |x|}}{{/each}}", 1, 17, "unsupported construct 'block parameters'");
    E("{{name key=1}}", 1, 11, "unsupported construct 'hash argument'");
    E("{{[a b]}}", 1, 3, "unsupported construct 'segment literal'");
    E("{{^if t}}x{{/if}}", 1, 1, "unsupported construct 'inverse section'");
    /* braces: {{{ closes with }}} or }~}}; }}} does not close {{ (but after a plain
     * {{else}} the third brace is text, as in Handlebars' lexer) */
    H("{{{name}~}}  x|{{#if f}}{{else}}}{{/if}}|{{{name}~}}}", "Salesx|}|Sales}");
    E("{{name}}}", 1, 7, "'}}}' closes a tag opened with '{{'");
    E("{{{name~}}}", 1, 8, "a tag opened with '{{{' closes with '}}}' or '}~}}'");
    E("{{{name}}}}", 1, 9, "invalid expression");
    E("{{#if t}}{{else if f}}}{{/if}}", 1, 21, "'}}}' closes a tag opened with '{{'");
    /* columns count characters, not bytes */
    E("\xC3\xA9\xE2\x82\xAC{{x", 1, 3, "unterminated tag");
    E("ok\n\xC3\xA9\xFF", 2, 2, "invalid UTF-8");
    error_is("a\0b", 3, 1, 2, "NUL character in template", __LINE__);
    /* nesting: TMPL_MAX_DEPTH blocks are fine, one more is refused */
    struct buf b = {0};
    for (int i = 0; i < TMPL_MAX_DEPTH; i++)
        buf_append(&b, "{{#if t}}", 9);
    buf_append(&b, "x", 1);
    for (int i = 0; i < TMPL_MAX_DEPTH; i++)
        buf_append(&b, "{{/if}}", 7);
    render_is(b.p, TMPL_HTML, "x", __LINE__);
    b.len = 0;
    for (int i = 0; i <= TMPL_MAX_DEPTH; i++)
        buf_append(&b, "{{#if t}}", 9);
    error_is(b.p, b.len, 1, 9 * TMPL_MAX_DEPTH + 1, "blocks nested deeper than 64", __LINE__);
    render_is("{{eq (eq (eq (eq (eq (eq (eq (eq (eq a a) b) b) b) b) b) b) b) b}}", TMPL_TEXT,
              "false", __LINE__);
    /* size: at most TMPL_MAX_SOURCE bytes and TMPL_MAX_PARTS tags and texts */
    b.len = 0;
    for (int i = 0; i <= TMPL_MAX_PARTS; i++)
        buf_append(&b, "{{t}}", 5);
    error_is(b.p, b.len, 1, 5 * TMPL_MAX_PARTS + 1, "more than 100000 tags and texts", __LINE__);
    b.len = 0;
    while (b.len <= TMPL_MAX_SOURCE)
        buf_append(&b, "aaaaaaaaaaaaaaaa", 16);
    error_is(b.p, b.len, 1, 1, "template larger than 1048576 bytes", __LINE__);
    buf_free(&b);
    E("{{eq (eq (eq (eq (eq (eq (eq (eq (eq (eq a a) b) b) b) b) b) b) b) b) b}}", 1, 38,
      "subexpressions nested deeper than 8");
}

static void warnings(void)
{
    const char *tpl = "{{tasId}} {{#each genericUrls}}{{url}}\n{{urll}}{{../taskName}}{{/each}}"
                      "{{#each appTags}}{{whatever}}{{/each}}{{executionDuration.hours}}"
                      "{{executionDuration.hourz}} {{@root.nope}}{{#with executionStartTime}}"
                      "{{startTimeUTC}}{{stopTimeUTC}}{{/with}}{{#if (eq logLevel x)}}{{/if}}";
    struct tmpl_error err;
    struct tmpl *t = tmpl_compile(tpl, strlen(tpl), &err);
    CHECK(t != NULL);
    struct strlist w = {0};
    CHECK(t && tmpl_fields_check(t, &w) == 6);
    CHECK(w.n == 6);
    if (w.n == 6) {
        CHECK_STR(w.v[0], "1:3: warning: unknown field 'tasId'");
        CHECK_STR(w.v[1], "2:3: warning: unknown field 'urll'");
        CHECK_STR(w.v[2], "2:100: warning: unknown field 'executionDuration.hourz'");
        CHECK_STR(w.v[3], "2:128: warning: unknown field 'nope'");
        CHECK_STR(w.v[4], "2:186: warning: unknown field 'stopTimeUTC'");
        CHECK_STR(w.v[5], "2:227: warning: unknown field 'x'");
    }
    strlist_free(&w);
    tmpl_free(t);
    /* every field of the example context is known */
    json_object *ex = json_tokener_parse(tmpl_fields_example);
    CHECK(ex != NULL);
    struct buf b = {0};
    json_object_object_foreach(ex, key, val)
    {
        (void)val;
        buf_append(&b, "{{", 2);
        buf_append(&b, key, strlen(key));
        buf_append(&b, "}}", 2);
    }
    t = tmpl_compile(b.p, b.len, &err);
    CHECK(t && tmpl_fields_check(t, &w) == 0);
    CHECK(json_object_object_length(ex) == 53);
    tmpl_free(t);
    buf_free(&b);
    json_object_put(ex);
}

static void limits(void)
{
    /* output: 40^4 copies of a 1 KiB value is far past the cap: cut, never past it */
    json_object *c = json_object_new_object(), *a = json_object_new_array();
    for (int i = 0; i < 40; i++)
        json_object_array_add(a, json_object_new_int(i));
    json_object_object_add(c, "a", a);
    char big[1025];
    memset(big, 'x', 1024);
    big[1024] = '\0';
    json_object_object_add(c, "big", json_object_new_string(big));
    const char *tpl = "{{#each a}}{{#each @root.a}}{{#each @root.a}}{{#each @root.a}}"
                      "{{@root.big}}{{/each}}{{/each}}{{/each}}{{/each}}";
    struct tmpl_error err;
    struct tmpl *t = tmpl_compile(tpl, strlen(tpl), &err);
    size_t len;
    int cut = 0;
    char *out = tmpl_render(t, c, TMPL_HTML, &len, &cut);
    CHECK(cut && len <= TMPL_MAX_OUTPUT && len > TMPL_MAX_OUTPUT / 2);
    free(out);
    tmpl_free(t);
    /* work: nested loops with no output stop at the step limit */
    tpl = "{{#each a}}{{#each @root.a}}{{#each @root.a}}{{#each @root.a}}{{#each @root.a}}"
          "{{#if x}}{{/if}}{{/each}}{{/each}}{{/each}}{{/each}}{{/each}}";
    t = tmpl_compile(tpl, strlen(tpl), &err);
    cut = 0;
    out = tmpl_render(t, c, TMPL_HTML, &len, &cut);
    CHECK(cut && len == 0);
    free(out);
    /* a NULL context is JSON null: everything is absent */
    out = tmpl_render(t, NULL, TMPL_TEXT, &len, &cut);
    CHECK(!cut && len == 0);
    free(out);
    tmpl_free(t);
    json_object_put(c);
    enum tmpl_mode m;
    CHECK(tmpl_mode_parse("json", &m) == 0 && m == TMPL_JSON);
    CHECK(tmpl_mode_parse("HTML", &m) < 0);
}

int main(void)
{
    ctx_root = json_tokener_parse(CTX);
    if (!ctx_root) {
        fprintf(stderr, "test context does not parse\n");
        return 1;
    }
    constructs();
    values();
    escaping();
    whitespace();
    errors();
    warnings();
    limits();
    json_object_put(ctx_root);
    return UNIT_DONE();
}
