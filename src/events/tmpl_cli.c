/* butlerd -T TEMPLATE [-x CONTEXT.json] [-m html|text|json]: compile, check the
 * field names, render and print, as butlerd(8) "RENDERING A TEMPLATE" says. Reads
 * no configuration, contacts nothing, writes no file. */
#include "tmpl_cli.h"
#include "tmpl.h"
#include "tmpl_fields.h"
#include "util.h"

#include <json-c/json.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FILE (16u << 20)

/* The whole file, NUL-terminated; NULL with errno set. */
static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    struct buf b = {0};
    char chunk[65536];
    size_t n;
    buf_append(&b, "", 0);
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (b.len + n > MAX_FILE) {
            fclose(f);
            buf_free(&b);
            errno = EFBIG;
            return NULL;
        }
        buf_append(&b, chunk, n);
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        buf_free(&b);
        errno = EIO;
        return NULL;
    }
    *len = b.len;
    return b.p;
}

/* Line and column (characters) of byte OFF of S. */
static void position(const char *s, size_t off, int *line, int *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off; i++) {
        if (s[i] == '\n')
            (*line)++, *col = 1;
        else if (((unsigned char)s[i] & 0xC0) != 0x80)
            (*col)++;
    }
}

/* Parses one JSON object filling all of S (whitespace around it allowed). On
 * error: NULL, *WHAT and the byte offset of the problem in *OFF. */
static json_object *parse_object(const char *s, size_t len, const char **what, size_t *off)
{
    json_tokener *tok = json_tokener_new_ex(64);
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    json_object *o = json_tokener_parse_ex(tok, s, (int)len);
    enum json_tokener_error e = json_tokener_get_error(tok);
    *off = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (e == json_tokener_continue || (!o && e == json_tokener_success)) {
        *what = "unexpected end of input";
        *off = len;
        json_object_put(o);
        return NULL;
    }
    if (e != json_tokener_success) {
        *what = json_tokener_error_desc(e);
        return NULL;
    }
    size_t k = *off;
    while (k < len && strchr(" \t\r\n", s[k]))
        k++;
    if (k < len) {
        *what = "text after the JSON value";
        *off = k;
        json_object_put(o);
        return NULL;
    }
    if (!json_object_is_type(o, json_type_object)) {
        *what = "not a JSON object";
        *off = 0;
        while (*off < len && strchr(" \t\r\n", s[*off]))
            (*off)++;
        json_object_put(o);
        return NULL;
    }
    return o;
}

static json_object *load_context(const char *file)
{
    size_t len = strlen(tmpl_fields_example);
    char *text = file ? read_file(file, &len) : NULL;
    if (file && !text) {
        fprintf(stderr, "%s: %s\n", file, strerror(errno));
        return NULL;
    }
    const char *what;
    size_t off;
    json_object *o = parse_object(text ? text : tmpl_fields_example, len, &what, &off);
    if (!o) {
        int line, col;
        position(text ? text : tmpl_fields_example, off, &line, &col);
        fprintf(stderr, "%s:%d:%d: %s\n", file ? file : "(example context)", line, col, what);
    }
    free(text);
    return o;
}

static struct tmpl *load_template(const char *file)
{
    size_t len;
    char *text = read_file(file, &len);
    if (!text) {
        fprintf(stderr, "%s: %s\n", file, strerror(errno));
        return NULL;
    }
    struct tmpl_error err;
    struct tmpl *t = tmpl_compile(text, len, &err);
    free(text);
    if (!t) {
        fprintf(stderr, "%s:%d:%d: %s\n", file, err.line, err.col, err.msg);
        return NULL;
    }
    struct strlist w = {0};
    tmpl_fields_check(t, &w);
    for (size_t i = 0; i < w.n; i++)
        fprintf(stderr, "%s:%s\n", file, w.v[i]);
    strlist_free(&w);
    return t;
}

int tmpl_cli_run(const char *template_file, const char *context_file, const char *mode_name)
{
    enum tmpl_mode mode = TMPL_HTML;
    if (mode_name && tmpl_mode_parse(mode_name, &mode) < 0) {
        fprintf(stderr, "butlerd: -m %s: the mode is html, text or json\n", mode_name);
        return TMPL_CLI_USAGE;
    }
    struct tmpl *t = load_template(template_file);
    if (!t)
        return TMPL_CLI_SYNTAX;
    json_object *ctx = load_context(context_file);
    if (!ctx) {
        tmpl_free(t);
        return TMPL_CLI_CONTEXT;
    }
    size_t len;
    int cut;
    char *out = tmpl_render(t, ctx, mode, &len, &cut);
    json_object_put(ctx);
    tmpl_free(t);
    if (cut)
        fprintf(stderr, "%s: warning: rendering stopped at a limit (%u bytes of output, %ld "
                        "steps)\n", template_file, TMPL_MAX_OUTPUT, TMPL_MAX_STEPS);
    int rc = TMPL_CLI_OK;
    if (mode == TMPL_JSON) {
        const char *what;
        size_t off;
        json_object *o = parse_object(out, len, &what, &off);
        if (!o) {
            int line, col;
            position(out, off, &line, &col);
            fprintf(stderr, "%s: rendered output:%d:%d: %s\n", template_file, line, col, what);
            rc = TMPL_CLI_NOT_JSON;
        }
        json_object_put(o);
    }
    if (rc == TMPL_CLI_OK && fwrite(out, 1, len, stdout) != len)
        rc = TMPL_CLI_SYNTAX;
    free(out);
    return rc;
}
