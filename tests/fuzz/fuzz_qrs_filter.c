/* The QRS filter builder and the QRS answers of a task start (src/qlik/task.c
 * task_start_run, src/qrs.c qrs_quote and the URL encoding of qrs_call). The real
 * qrs.c is compiled into this harness, but qrs_call and qrs_get_list are replaced
 * by stubs that build the filter part of the URL with qrs.c's own encode(), check
 * it, and answer from the fuzz input instead of a Repository Service; the list
 * stub hands a 200 body over in pieces of 1 to 7 bytes, as a reply arrives, so
 * the lookups' incremental reading (jsonarr_feed) meets every cut.
 *
 * Input: one flag byte, a start-task body, then NUL-separated QRS answers (first
 * byte: status class, rest: the body) used in the order the calls come. Flags:
 * bit 0 the start-task filter is on, bit 1 allTaskIdsMustExist, bits 2-3 the URL
 * task ID (none, a GUID, "-"), bit 4 the key-value store is on (keyvaluestore items
 * are stored in a private shared-memory region), bit 5 the body is parsed as the
 * MQTT start topic parses it (events_jobs.c: json-c's default, lenient mode)
 * instead of as an HTTP body (strict). The filter must always be made of the three
 * forms task.c builds, joined by " or ", with every quoted string properly escaped:
 * no task-start body can inject filter syntax. */
#define qrs_call qrs_call_real
#define qrs_get_list qrs_get_list_real
#include "qrs.c"
#undef qrs_call
#undef qrs_get_list

#include "cfg.h"
#include "kv.h"
#include "shm.h"
#include "task.h"
#include "fuzz.h"

#include <ctype.h>
#include <strings.h>
#include <unistd.h>

int qrs_call(const struct cfg *c, const char *method, const char *path, const char *filter,
             const char *body, struct qrs_resp *out);
int qrs_get_list(const struct cfg *c, const char *path, const char *filter, qrs_chunk_fn fn,
                 void *arg, struct qrs_resp *out);

static const uint8_t *ans;
static size_t ans_left;
static unsigned calls;

/* After the opening quote: a quoted string with \-escapes; returns the byte after
 * the closing quote or NULL. */
static const char *quoted(const char *p)
{
    for (; *p; p++) {
        if (*p == '\\') {
            if (p[1] != '\\' && p[1] != '\'')
                return NULL; /* qrs_quote escapes only these two */
            p++;
        } else if (*p == '\'') {
            return p + 1;
        }
    }
    return NULL;
}

/* One term of a lookup filter: the ID, tag or custom-property comparison task.c
 * builds; returns the byte after it or NULL. */
static const char *term(const char *f)
{
    static const char idp[] = "id eq ", tagp[] = "tags.name eq '",
                      cp1[] = "(customProperties.definition.name eq '",
                      cp2[] = ") and (customProperties.value eq '";
    char id[37];
    if (!strncmp(f, idp, sizeof idp - 1)) {
        f += sizeof idp - 1;
        size_t n = strcspn(f, " ");
        if (n > 36)
            return NULL;
        memcpy(id, f, n);
        id[n] = '\0';
        return task_loose_id(id, id) ? f + n : NULL;
    }
    if (!strncmp(f, tagp, sizeof tagp - 1))
        return quoted(f + sizeof tagp - 1);
    int wrapped = f[0] == '(' && !strncmp(f + 1, cp1, sizeof cp1 - 1);
    if (wrapped || !strncmp(f, cp1, sizeof cp1 - 1)) {
        const char *e = quoted(f + wrapped + sizeof cp1 - 1);
        if (!e || strncmp(e, cp2, sizeof cp2 - 1))
            return NULL;
        e = quoted(e + sizeof cp2 - 1);
        if (!e || *e != ')')
            return NULL;
        e++;
        if (wrapped && *e++ != ')')
            return NULL;
        return e;
    }
    return NULL;
}

/* A lookup filter: terms of one kind joined by " or " (several values in one QRS
 * call, see task.c). */
static int filter_ok(const char *f)
{
    for (;;) {
        f = term(f);
        if (!f)
            return 0;
        if (*f == '\0')
            return 1;
        if (strncmp(f, " or ", 4))
            return 0;
        f += 4;
    }
}

static int unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

int qrs_call(const struct cfg *c, const char *method, const char *path, const char *filter,
             const char *body, struct qrs_resp *out)
{
    memset(out, 0, sizeof *out);
    calls++;
    if (filter) {
        FUZZ_ASSERT(!strcmp(method, "GET"));
        if (!filter_ok(filter)) {
            fprintf(stderr, "bad QRS filter: %s\n", filter);
            abort();
        }
        /* the query part as qrs_call builds it: only unreserved bytes and %XX, and
         * it decodes back to the filter */
        struct buf url = {0};
        encode(&url, filter);
        buf_append(&url, "", 0);
        size_t o = 0, fl = strlen(filter);
        for (size_t i = 0; i < url.len; i++) {
            unsigned char ch = (unsigned char)url.p[i];
            if (ch == '%') {
                FUZZ_ASSERT(i + 2 < url.len + 1 && isxdigit((unsigned char)url.p[i + 1]) &&
                            isxdigit((unsigned char)url.p[i + 2]));
                unsigned v;
                sscanf(url.p + i + 1, "%2x", &v);
                FUZZ_ASSERT(o < fl && (unsigned char)filter[o] == v && !unreserved(v));
                i += 2;
            } else {
                FUZZ_ASSERT(unreserved(ch) && o < fl && filter[o] == (char)ch);
            }
            o++;
        }
        FUZZ_ASSERT(o == fl);
        buf_free(&url);
    }
    /* the next answer from the input */
    const uint8_t *a = ans;
    size_t alen = 0;
    while (alen < ans_left && a[alen])
        alen++;
    ans += alen < ans_left ? alen + 1 : alen;
    ans_left -= alen < ans_left ? alen + 1 : alen;
    unsigned cls = alen ? a[0] % 5 : 0;
    if (alen)
        a++, alen--;
    if (cls == 4) {
        snprintf(out->error, sizeof out->error, "connection refused");
        return -1;
    }
    static const long st[] = {200, 204, 404, 500};
    out->status = strcmp(method, "GET") ? (cls == 0 ? 204 : st[cls]) : st[cls];
    if (!strcmp(method, "GET") && alen == 0 && cls == 0)
        buf_append(&out->body, "[]", 2);
    else
        buf_append(&out->body, a, alen);
    buf_append(&out->body, "", 0); /* NUL-terminated, as on_data leaves it */
    return 0;
}

int qrs_get_list(const struct cfg *c, const char *path, const char *filter, qrs_chunk_fn fn,
                 void *arg, struct qrs_resp *out)
{
    if (qrs_call(c, "GET", path, filter, NULL, out) < 0)
        return -1;
    if (out->status != 200)
        return 0; /* kept, as on_stream keeps a body that is not a 200's */
    struct buf b = out->body;
    out->body = (struct buf){0};
    size_t len = b.len ? b.len - 1 : 0; /* without the NUL qrs_call added */
    int rc = 0;
    for (size_t off = 0, piece = 1 + calls % 7; off < len; off += piece) {
        size_t n = len - off < piece ? len - off : piece;
        if (fn(arg, b.p + off, n) != 0) {
            snprintf(out->error, sizeof out->error, "the reader stopped the transfer");
            rc = -1;
            break;
        }
    }
    buf_free(&b);
    return rc;
}

static struct cfg cfg;
static char *tags[] = {"tag1", "Tag 2"};
static char *ids[] = {"3fa85f64-5717-4562-b3fc-2c963f66afa6"};
static struct tuple cps[] = {{{"cp1", "v1", NULL}}, {{"Group", "a'b", NULL}}};

static char shm_name[64];

static void cleanup(void) { shm_unlink_region(); }

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_quiet_log();
    snprintf(shm_name, sizeof shm_name, "/butlerd-fuzz-task-%ld", (long)getpid());
    cfg.shm.name = shm_name;
    cfg.rest.serverPort = 1;
    cfg.shm.kvMaxKeys = 64;
    cfg.shm.kvMaxKeyBytes = 64;
    cfg.shm.kvMaxValueBytes = 256;
    cfg.shm.kvMaxNamespaces = 8;
    cfg.shm.maxActiveUsers = 4;
    if (shm_open_region(&cfg) != 0) {
        fprintf(stderr, "cannot create the shared-memory region\n");
        abort();
    }
    atexit(cleanup);
    kv_set_limits(16);
    cfg.qrs.host = "qrs.invalid";
    cfg.startTaskFilter.tag = (struct strlist){2, tags};
    cfg.startTaskFilter.taskId = (struct strlist){1, ids};
    cfg.startTaskFilter.customProperty = (struct tuplelist){2, cps};
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536)
        return 0;
    unsigned flags = data[0];
    const uint8_t *b = data + 1;
    size_t blen = 0;
    while (1 + blen < size && b[blen])
        blen++;
    ans = b + blen + (1 + blen < size ? 1 : 0);
    ans_left = size - (size_t)(ans - data);
    calls = 0;
    cfg.startTaskFilter.enable = flags & 1;
    cfg.ep.keyValueStore = flags & 16;

    char *in = fuzz_str(b, blen);
    json_tokener *tok = json_tokener_new_ex(64);
    json_object *body;
    if (flags & 32) { /* events.c start_from_mqtt */
        body = json_tokener_parse_ex(tok, in, (int)strlen(in));
        if (json_tokener_get_error(tok) != json_tokener_success ||
            tok->char_offset != (int)strlen(in)) {
            json_object_put(body);
            body = NULL;
        }
    } else { /* http.c */
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
        body = json_tokener_parse_ex(tok, in, (int)blen + 1);
    }
    json_tokener_free(tok);
    char *err = NULL;
    json_object *items = body ? task_items_validate(body, 1000, &err) : NULL;
    free(err);
    if (items) {
        char ebuf[128] = "";
        const char *url_id = flags & 4 ? (flags & 8 ? "-" : ids[0]) : NULL;
        json_object *r = task_start_run(&cfg, url_id, items, flags & 2, NULL, ebuf, sizeof ebuf);
        if (r) {
            FUZZ_ASSERT(json_object_is_type(r, json_type_object));
            (void)json_object_to_json_string(r);
        } else {
            FUZZ_ASSERT(*ebuf);
        }
        json_object_put(r);
        json_object_put(items);
    }
    json_object_put(body);
    free(in);
    return 0;
}
