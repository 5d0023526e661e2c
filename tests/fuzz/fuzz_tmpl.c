/* Alert templates (src/events/tmpl.c, tmpl_render.c, tmpl_fields.c), as the
 * configuration or butlerd -T hands them over. The input is a template, then
 * optionally a NUL byte and a JSON context (the example context when there is none
 * or it does not parse). Checked: a refused template has a message and a position
 * inside it; an accepted one renders in each mode within TMPL_MAX_OUTPUT, twice
 * the same; the unknown-field walk and the warning list agree; and in json mode a
 * value inserted in a string literal ({"v":"{{{x}}}"} for each top-level field x)
 * always yields one JSON object whose member decodes back to the text of x. */
#include "fuzz.h"
#include "tmpl.h"
#include "tmpl_fields.h"
#include "util.h"

#include <json-c/json.h>

static json_object *example;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_quiet_log();
    example = json_tokener_parse(tmpl_fields_example);
    if (!example)
        abort();
    return 0;
}

static int count_lines(const char *s, size_t n)
{
    int k = 1;
    for (size_t i = 0; i < n; i++)
        k += s[i] == '\n';
    return k;
}

static void render_all(const struct tmpl *t, json_object *ctx)
{
    for (int m = TMPL_HTML; m <= TMPL_JSON; m++) {
        size_t a, b;
        int cut1, cut2;
        char *x = tmpl_render(t, ctx, (enum tmpl_mode)m, &a, &cut1);
        FUZZ_ASSERT(a <= TMPL_MAX_OUTPUT && x[a] == '\0');
        char *y = tmpl_render(t, ctx, (enum tmpl_mode)m, &b, &cut2);
        FUZZ_ASSERT(a == b && cut1 == cut2 && memcmp(x, y, a) == 0);
        free(x);
        free(y);
    }
}

static void count_ref(void *arg, int line, int col, const char *scope, const char *name,
                      const char *member)
{
    FUZZ_ASSERT(line >= 1 && col >= 1 && name && *name);
    (*(int *)arg)++;
}

/* KEY is looked up as itself by {{{KEY}}} (letters, digits, _ $ - and non-ASCII). */
static int is_name(const char *key)
{
    if (!*key || strcmp(key, "this") == 0)
        return 0;
    for (const unsigned char *k = (const unsigned char *)key; *k; k++)
        if (!((*k >= 'a' && *k <= 'z') || (*k >= 'A' && *k <= 'Z') || (*k >= '0' && *k <= '9') ||
              *k == '_' || *k == '$' || *k == '-' || *k >= 0x80))
            return 0;
    return 1;
}

/* Every string field inserted raw into a JSON string literal comes back intact. */
static void json_round_trip(json_object *ctx)
{
    if (!json_object_is_type(ctx, json_type_object))
        return;
    json_object_object_foreach(ctx, key, val)
    {
        if (!json_object_is_type(val, json_type_string) || !is_name(key))
            continue;
        char *src = xasprintf("{\"v\":\"{{{%s}}}\"}", key);
        struct tmpl_error err;
        struct tmpl *t = tmpl_compile(src, strlen(src), &err);
        free(src);
        if (!t)
            continue; /* a key that is not a name, or a keyword */
        size_t len;
        char *out = tmpl_render(t, ctx, TMPL_JSON, &len, NULL);
        json_tokener *tok = json_tokener_new();
        json_object *o = json_tokener_parse_ex(tok, out, (int)len);
        FUZZ_ASSERT(o && json_tokener_get_parse_end(tok) == len);
        json_object *v;
        FUZZ_ASSERT(json_object_object_get_ex(o, "v", &v));
        FUZZ_ASSERT(json_object_get_string_len(v) == json_object_get_string_len(val));
        FUZZ_ASSERT(memcmp(json_object_get_string(v), json_object_get_string(val),
                           (size_t)json_object_get_string_len(val)) == 0);
        json_object_put(o);
        json_tokener_free(tok);
        free(out);
        tmpl_free(t);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536)
        return 0;
    const uint8_t *nul = memchr(data, '\0', size);
    size_t tlen = nul ? (size_t)(nul - data) : size;
    json_object *ctx = NULL;
    if (nul) {
        char *j = fuzz_str(nul + 1, size - tlen - 1);
        ctx = json_tokener_parse(j);
        free(j);
    }
    json_object *use = ctx ? ctx : example;
    struct tmpl_error err;
    struct tmpl *t = tmpl_compile((const char *)data, tlen, &err);
    if (!t) {
        FUZZ_ASSERT(err.msg[0] != '\0');
        FUZZ_ASSERT(err.line >= 1 && err.col >= 1);
        FUZZ_ASSERT(err.line <= count_lines((const char *)data, tlen));
    } else {
        render_all(t, use);
        int refs = 0;
        tmpl_refs(t, count_ref, &refs);
        struct strlist w = {0};
        FUZZ_ASSERT(tmpl_fields_check(t, &w) == (int)w.n && (int)w.n <= refs);
        strlist_free(&w);
        tmpl_free(t);
    }
    json_round_trip(use);
    json_object_put(ctx);
    return 0;
}
