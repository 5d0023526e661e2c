/* GET /documentation, /documentation/json and /documentation/yaml (butlerd(8),
 * "MONITORING"): the OpenAPI 3 document doc/openapi.json, compiled in (the build
 * turns it into openapi_doc.c), served as it is, as YAML, and as a plain HTML page.
 * tests/blackbox/test_openapi.py keeps the document and the route table in step.
 * Both renderings are made once per process, on first use. */
#include "api.h"
#include "http.h"
#include "util.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

extern const char openapi_json[];
extern const size_t openapi_json_len;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static struct buf yaml, html;

static void put(struct buf *b, const char *s) { buf_append(b, s, strlen(s)); }

/* ------------------------------------------------------------------ YAML */

/* A YAML scalar for any string: a JSON string is a valid YAML double-quoted one. */
static void yaml_str(struct buf *b, const char *s)
{
    json_object *o = json_object_new_string(s);
    put(b, json_object_to_json_string_ext(o, JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
}

static void indent(struct buf *b, int n)
{
    for (int i = 0; i < n; i++)
        put(b, "  ");
}

static int is_empty_container(json_object *v)
{
    return (json_object_is_type(v, json_type_object) && json_object_object_length(v) == 0) ||
           (json_object_is_type(v, json_type_array) && json_object_array_length(v) == 0);
}

static void yaml_value(struct buf *b, json_object *v, int depth);

/* After "key:" or "-": a scalar on the same line, a container below. */
static void yaml_after(struct buf *b, json_object *v, int depth)
{
    if (is_empty_container(v)) {
        put(b, json_object_is_type(v, json_type_object) ? " {}\n" : " []\n");
    } else if (json_object_is_type(v, json_type_object) ||
               json_object_is_type(v, json_type_array)) {
        put(b, "\n");
        yaml_value(b, v, depth + 1);
    } else {
        put(b, " ");
        yaml_value(b, v, depth);
        put(b, "\n");
    }
}

static void yaml_value(struct buf *b, json_object *v, int depth)
{
    switch (json_object_get_type(v)) {
    case json_type_object: {
        json_object_object_foreach(v, k, val) {
            indent(b, depth);
            yaml_str(b, k);
            put(b, ":");
            yaml_after(b, val, depth);
        }
        break;
    }
    case json_type_array:
        for (size_t i = 0, n = json_object_array_length(v); i < n; i++) {
            indent(b, depth);
            put(b, "-");
            yaml_after(b, json_object_array_get_idx(v, i), depth);
        }
        break;
    case json_type_string:
        yaml_str(b, json_object_get_string(v));
        break;
    case json_type_null:
        put(b, "null");
        break;
    default: /* numbers and booleans print alike in both */
        put(b, json_object_to_json_string(v));
    }
}

/* ------------------------------------------------------------------ HTML */

static void esc(struct buf *b, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '<': put(b, "&lt;"); break;
        case '>': put(b, "&gt;"); break;
        case '&': put(b, "&amp;"); break;
        case '"': put(b, "&quot;"); break;
        default: buf_append(b, s, 1);
        }
    }
}

static const char *str_of(json_object *o, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : NULL;
}

/* A schema in one line: its $ref name, or its type with properties/items. */
static void schema_text(struct buf *b, json_object *s, int depth)
{
    const char *r = str_of(s, "$ref");
    if (r) {
        esc(b, strrchr(r, '/') ? strrchr(r, '/') + 1 : r);
        return;
    }
    const char *t = str_of(s, "type");
    esc(b, t ? t : "any");
    json_object *v;
    if (depth < 3 && json_object_object_get_ex(s, "items", &v)) {
        put(b, " of ");
        schema_text(b, v, depth + 1);
    }
    if (depth < 3 && json_object_object_get_ex(s, "properties", &v)) {
        put(b, " {");
        int first = 1;
        json_object_object_foreach(v, k, pv) {
            put(b, first ? " " : ", ");
            first = 0;
            esc(b, k);
            put(b, ": ");
            schema_text(b, pv, depth + 1);
        }
        put(b, " }");
    }
}

static void html_operation(struct buf *b, const char *path, const char *method, json_object *op)
{
    char up[16];
    size_t i;
    for (i = 0; method[i] && i < sizeof up - 1; i++)
        up[i] = (char)(method[i] >= 'a' && method[i] <= 'z' ? method[i] - 32 : method[i]);
    up[i] = '\0';
    put(b, "<h3 id=\"");
    esc(b, str_of(op, "operationId"));
    put(b, "\"><code>");
    esc(b, up);
    put(b, " ");
    esc(b, path);
    put(b, "</code></h3>\n<p><b>");
    esc(b, str_of(op, "summary"));
    put(b, "</b>. ");
    esc(b, str_of(op, "description"));
    put(b, "</p>\n");
    const char *scope = str_of(op, "x-butlerd-scope");
    put(b, "<p>Token scope: ");
    esc(b, scope ? scope : "none needed");
    put(b, "</p>\n");
    json_object *v;
    if (json_object_object_get_ex(op, "parameters", &v) && json_object_array_length(v)) {
        put(b, "<table><tr><th>Parameter</th><th>In</th><th>Required</th><th>Schema</th></tr>\n");
        for (size_t k = 0, n = json_object_array_length(v); k < n; k++) {
            json_object *p = json_object_array_get_idx(v, k), *req, *sch;
            put(b, "<tr><td>");
            esc(b, str_of(p, "name"));
            put(b, "</td><td>");
            esc(b, str_of(p, "in"));
            put(b, "</td><td>");
            put(b, json_object_object_get_ex(p, "required", &req) && json_object_get_boolean(req)
                       ? "yes" : "no");
            put(b, "</td><td>");
            if (json_object_object_get_ex(p, "schema", &sch))
                schema_text(b, sch, 0);
            put(b, "</td></tr>\n");
        }
        put(b, "</table>\n");
    }
    json_object *content, *media;
    if (json_object_object_get_ex(op, "requestBody", &v) &&
        json_object_object_get_ex(v, "content", &content)) {
        json_object_object_foreach(content, type, m) {
            put(b, "<p>Request body (");
            esc(b, type);
            put(b, "): <code>");
            if (json_object_object_get_ex(m, "schema", &media))
                schema_text(b, media, 0);
            put(b, "</code></p>\n");
        }
    }
    if (json_object_object_get_ex(op, "responses", &v)) {
        put(b, "<table><tr><th>Status</th><th>Description</th><th>Body</th></tr>\n");
        json_object_object_foreach(v, code, resp) {
            put(b, "<tr><td>");
            esc(b, code);
            put(b, "</td><td>");
            const char *r = str_of(resp, "$ref");
            if (r) {
                esc(b, strrchr(r, '/') + 1);
                put(b, "</td><td>Error");
            } else {
                esc(b, str_of(resp, "description"));
                put(b, "</td><td>");
                if (json_object_object_get_ex(resp, "content", &content)) {
                    json_object_object_foreach(content, type, m) {
                        esc(b, type);
                        put(b, ": <code>");
                        if (json_object_object_get_ex(m, "schema", &media))
                            schema_text(b, media, 0);
                        put(b, "</code>");
                    }
                }
            }
            put(b, "</td></tr>\n");
        }
        put(b, "</table>\n");
    }
}

static void make_html(struct buf *b, json_object *doc)
{
    json_object *info = NULL, *paths = NULL;
    json_object_object_get_ex(doc, "info", &info);
    json_object_object_get_ex(doc, "paths", &paths);
    put(b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>");
    esc(b, str_of(info, "title"));
    put(b, "</title>\n<style>body{font-family:sans-serif;max-width:60em;margin:auto;padding:1em}"
           "table{border-collapse:collapse}td,th{border:1px solid #999;padding:.2em .5em;"
           "text-align:left;vertical-align:top}h3{margin-top:2em}</style></head><body>\n<h1>");
    esc(b, str_of(info, "title"));
    put(b, "</h1>\n<p>");
    esc(b, str_of(info, "description"));
    put(b, "</p>\n<p>Machine-readable: <a href=\"/documentation/json\">JSON</a>, "
           "<a href=\"/documentation/yaml\">YAML</a> (OpenAPI ");
    esc(b, str_of(doc, "openapi"));
    put(b, ").</p>\n<h2>Routes</h2>\n<ul>\n");
    json_object_object_foreach(paths, p1, ops1) {
        json_object_object_foreach(ops1, m1, op1) {
            put(b, "<li><a href=\"#");
            esc(b, str_of(op1, "operationId"));
            put(b, "\"><code>");
            esc(b, m1);
            put(b, " ");
            esc(b, p1);
            put(b, "</code></a> ");
            esc(b, str_of(op1, "summary"));
            put(b, "</li>\n");
        }
    }
    put(b, "</ul>\n<h2>Reference</h2>\n");
    json_object_object_foreach(paths, p2, ops2) {
        json_object_object_foreach(ops2, m2, op2) html_operation(b, p2, m2, op2);
    }
    put(b, "</body></html>\n");
}

static void render(void)
{
    json_object *doc = json_tokener_parse(openapi_json);
    if (!doc) { /* the build checks the document; this would be a broken build */
        put(&yaml, "{}\n");
        put(&html, "<!DOCTYPE html><title>error</title><p>no document</p>\n");
        return;
    }
    put(&yaml, "# butlerd REST API, from doc/openapi.json\n");
    yaml_value(&yaml, doc, 0);
    make_html(&html, doc);
    json_object_put(doc);
}

void api_docs_json(struct req *r)
{
    http_reply_typed(r, 200, "application/json; charset=utf-8", openapi_json, openapi_json_len);
}

void api_docs_yaml(struct req *r)
{
    pthread_once(&once, render);
    http_reply_typed(r, 200, "application/yaml; charset=utf-8", yaml.p, yaml.len);
}

void api_docs_html(struct req *r)
{
    pthread_once(&once, render);
    http_reply_typed(r, 200, "text/html; charset=utf-8", html.p, html.len);
}
