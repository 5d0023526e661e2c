/* The e-mail destination (butlerd(8) "E-mail"): recipient rules, the RFC 5322
 * message with RFC 2047 headers and a quoted-printable HTML body, and one SMTP
 * transaction on a libcurl easy handle with its outcome. */
#include "mail.h"
#include "mailaddr.h"
#include "utf8.h"
#include "util.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* ------------------------------------------------------------ recipients */

static void add_unique(struct strlist *l, const char *s, size_t n)
{
    while (n && isspace((unsigned char)*s))
        s++, n--;
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    if (n == 0)
        return;
    for (size_t i = 0; i < l->n; i++)
        if (strlen(l->v[i]) == n && strncasecmp(l->v[i], s, n) == 0)
            return;
    char *c = xmalloc(n + 1);
    memcpy(c, s, n);
    c[n] = 0;
    strlist_add(l, c);
}

/* Name and value of custom property I of CPS, or 0 if it is not {name, value} strings. */
static int cp_at(json_object *cps, size_t i, const char **name, const char **value)
{
    json_object *e = json_object_array_get_idx(cps, i), *n, *v;
    if (!json_object_object_get_ex(e, "name", &n) || !json_object_object_get_ex(e, "value", &v) ||
        !json_object_is_type(n, json_type_string) || !json_object_is_type(v, json_type_string))
        return 0;
    *name = json_object_get_string(n);
    *value = json_object_get_string(v);
    return 1;
}

static int common_enabled(const struct cfg_email_kind *k, json_object *cps)
{
    if (!k->cpEnable)
        return 1;
    size_t n = json_object_is_type(cps, json_type_array) ? json_object_array_length(cps) : 0;
    const char *name, *value;
    for (size_t i = 0; i < n; i++)
        if (cp_at(cps, i, &name, &value) && !strcasecmp(name, k->cpName) &&
            !strcasecmp(value, k->cpValue))
            return 1;
    return 0;
}

static int owner_in(const struct tuplelist *l, const struct mail_owner *o)
{
    for (size_t i = 0; i < l->n; i++)
        if (!strcasecmp(l->v[i].m[0], o->directory ? o->directory : "") &&
            !strcasecmp(l->v[i].m[1], o->userId ? o->userId : ""))
            return 1;
    return 0;
}

void mail_recipients(const struct cfg_email_kind *k, json_object *cps,
                     const struct mail_owner *owner, struct strlist *to, struct strlist *bad)
{
    struct strlist all = {0};
    size_t n = json_object_is_type(cps, json_type_array) ? json_object_array_length(cps) : 0;
    const char *name, *value;
    for (size_t i = 0; *k->addrCpName && i < n; i++)
        if (cp_at(cps, i, &name, &value) && !strcmp(name, k->addrCpName))
            add_unique(&all, value, strlen(value));
    if (common_enabled(k, cps))
        for (size_t i = 0; i < k->recipients.n; i++)
            add_unique(&all, k->recipients.v[i], strlen(k->recipients.v[i]));
    if (k->ownerEnable && owner && owner->known && owner->nemails &&
        (k->ownerIncludeAll || owner_in(&k->ownerInclude, owner)) &&
        !owner_in(&k->ownerExclude, owner))
        for (size_t i = 0; i < owner->nemails; i++)
            add_unique(&all, owner->emails[i], strlen(owner->emails[i]));
    for (size_t i = 0; i < all.n; i++) {
        strlist_add(mailaddr_valid(all.v[i]) ? to : bad, all.v[i]);
        all.v[i] = NULL;
    }
    strlist_free(&all);
}

char *mail_template_file(const struct cfg_email_kind *k, const char *workdir)
{
    static const char ext[] = ".handlebars";
    const char *f = k->htmlTemplateFile, *d = k->bodyFileDirectory;
    size_t n = strlen(f);
    const char *add = n >= sizeof ext - 1 && !strcmp(f + n - (sizeof ext - 1), ext) ? "" : ext;
    int rel = *d != '/' && workdir && *workdir;
    size_t dn = strlen(d);
    const char *sep = dn && d[dn - 1] == '/' ? "" : "/";
    return xasprintf("%s%s%s%s%s%s", rel ? workdir : "", rel ? "/" : "", d, sep, f, add);
}

/* --------------------------------------------------------------- headers */

#define LINE_SOFT 78 /* RFC 5322 2.1.1 */
#define WORD_MAX 75  /* RFC 2047 2 */

static void puts_(struct buf *b, const char *s)
{
    buf_append(b, s, strlen(s));
}

/* Characters a header cannot carry as they are: controls, 8-bit bytes, and "=?" that
 * a reader would take for an encoded word. */
static int needs_words(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p >= 0x7f)
            return 1;
    return strstr(s, "=?") != NULL;
}

/* Appends S as UTF-8 "B" encoded words, each at most 75 characters and made of whole
 * characters, separated by CRLF SP. COL is the length of the line so far; returns the
 * length of the last line. */
static size_t put_words(struct buf *b, const char *s, size_t col)
{
    size_t n = strlen(s);
    do {
        if (col + 20 > LINE_SOFT) { /* no room for a useful word on this line */
            puts_(b, "\r\n ");
            col = 1;
        }
        size_t room = LINE_SOFT - col < WORD_MAX ? LINE_SOFT - col : WORD_MAX;
        size_t max = (room - 12) / 4 * 3; /* >= 6 bytes: any character fits */
        size_t take = n < max ? n : max;
        while (take < n && take > 0 && ((unsigned char)s[take] & 0xc0) == 0x80)
            take--;
        unsigned char enc[4 * (WORD_MAX / 3) + 8];
        int m = EVP_EncodeBlock(enc, (const unsigned char *)s, (int)take);
        puts_(b, "=?UTF-8?B?");
        buf_append(b, enc, (size_t)m);
        puts_(b, "?=");
        col += 12 + (size_t)m;
        s += take;
        n -= take;
        if (n) {
            puts_(b, "\r\n ");
            col = 1;
        }
    } while (n);
    return col;
}

/* Appends the ASCII header line L folded before spaces to stay within 78 characters
 * where a space allows it (never leaving a line of blanks only), then CRLF. */
static void put_folded(struct buf *b, const char *l)
{
    const char *start = strchr(l, ':') ? strchr(l, ':') + 2 : l;
    while (strlen(l) > LINE_SOFT) {
        const char *cut = NULL;
        for (const char *p = start; p < l + LINE_SOFT; p++)
            if (*p == ' ' && p > start && p[-1] != ' ' && p[strspn(p, " ")])
                cut = p;
        if (!cut)
            for (const char *p = l + LINE_SOFT; *p && !cut; p++)
                if (*p == ' ' && p[-1] != ' ' && p[strspn(p, " ")])
                    cut = p;
        if (!cut)
            break;
        buf_append(b, l, (size_t)(cut - l));
        puts_(b, "\r\n");
        l = cut;
        start = l + 1;
    }
    puts_(b, l);
    puts_(b, "\r\n");
}

/* The longest run of non-blanks in S: folding cannot shorten a line below it. */
static size_t longest_word(const char *s)
{
    size_t best = 0, run = 0;
    for (; *s; s++) {
        run = *s == ' ' ? 0 : run + 1;
        if (run > best)
            best = run;
    }
    return best;
}

/* "NAME: TEXT" for unstructured TEXT (UTF-8, repaired first). */
static void put_text_header(struct buf *b, const char *name, const char *text)
{
    char *t = utf8_repair(text, strlen(text), NULL);
    if (needs_words(t) || longest_word(t) > 900) {
        puts_(b, name);
        puts_(b, ": ");
        put_words(b, t, strlen(name) + 2);
        puts_(b, "\r\n");
    } else {
        char *l = xasprintf("%s: %s", name, t);
        put_folded(b, l);
        free(l);
    }
    free(t);
}

static int has_specials(const char *s)
{
    return strpbrk(s, "()<>[]:;@\\,.\"") != NULL;
}

static void put_from(struct buf *b, const char *name, const char *addr)
{
    if (!*name) {
        char *l = xasprintf("From: %s", addr);
        put_folded(b, l);
        free(l);
        return;
    }
    char *t = utf8_repair(name, strlen(name), NULL);
    if (needs_words(t) || longest_word(t) > 900) {
        puts_(b, "From: ");
        size_t col = put_words(b, t, 6);
        puts_(b, col + strlen(addr) + 3 > LINE_SOFT ? "\r\n <" : " <");
        puts_(b, addr);
        puts_(b, ">\r\n");
    } else {
        struct buf q = {0};
        int quote = has_specials(t);
        if (quote)
            puts_(&q, "\"");
        for (const char *p = t; *p; p++) {
            if (quote && (*p == '"' || *p == '\\'))
                puts_(&q, "\\");
            buf_append(&q, p, 1);
        }
        char *l = xasprintf("From: %s%s <%s>", q.p, quote ? "\"" : "", addr);
        put_folded(b, l);
        free(l);
        buf_free(&q);
    }
    free(t);
}

static void put_date(struct buf *b, time_t when)
{
    static const char days[][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    localtime_r(&when, &tm);
    long off = tm.tm_gmtoff / 60;
    char *l = xasprintf("Date: %s, %02d %s %04d %02d:%02d:%02d %c%02ld%02ld\r\n",
                        days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900,
                        tm.tm_hour, tm.tm_min, tm.tm_sec, off < 0 ? '-' : '+', labs(off) / 60,
                        labs(off) % 60);
    puts_(b, l);
    free(l);
}

static void put_priority(struct buf *b, const char *priority)
{
    char p[16];
    size_t n = 0;
    while (isspace((unsigned char)*priority))
        priority++;
    while (priority[n] && !isspace((unsigned char)priority[n]) && n < sizeof p - 1)
        n++;
    memcpy(p, priority, n);
    p[n] = 0;
    if (!strcasecmp(p, "high"))
        puts_(b, "X-Priority: 1 (Highest)\r\nX-MSMail-Priority: High\r\nImportance: High\r\n");
    else if (!strcasecmp(p, "low"))
        puts_(b, "X-Priority: 5 (Lowest)\r\nX-MSMail-Priority: Low\r\nImportance: Low\r\n");
}

/* ------------------------------------------------------------------ body */

/* One line of N bytes (no line break in it) as quoted-printable (RFC 2045 6.7):
 * soft breaks keep every encoded line within 76 characters. */
static void put_qp_line(struct buf *b, const unsigned char *s, size_t n)
{
    size_t col = 0;
    for (size_t i = 0; i < n; i++) {
        int last = i + 1 == n;
        char tok[4];
        int lit = (s[i] >= 33 && s[i] <= 126 && s[i] != '=') ||
                  ((s[i] == ' ' || s[i] == '\t') && !last);
        size_t len = lit ? 1 : 3;
        if (lit)
            tok[0] = (char)s[i];
        else
            snprintf(tok, sizeof tok, "=%02X", s[i]);
        if (col + len > (last ? 76 : 75)) {
            puts_(b, "=\r\n");
            col = 0;
        }
        buf_append(b, tok, len);
        col += len;
    }
    puts_(b, "\r\n");
}

/* The body: every CRLF, CR or LF of the HTML becomes a hard line break. */
static void put_qp(struct buf *b, const char *html, size_t len)
{
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && html[j] != '\r' && html[j] != '\n')
            j++;
        put_qp_line(b, (const unsigned char *)html + i, j - i);
        if (j < len && html[j] == '\r' && j + 1 < len && html[j + 1] == '\n')
            j++;
        i = j + 1;
    }
}

/* --------------------------------------------------------------- message */

char *mail_envelope_from(const char *from)
{
    char *name, *addr;
    int bad = mailaddr_parse(from, &name, &addr) < 0 || !mailaddr_valid(addr);
    free(name);
    if (bad) {
        free(addr);
        return NULL;
    }
    return addr;
}

char *mail_message(const struct mail_msg *m)
{
    char *name, *addr;
    if (mailaddr_parse(m->from, &name, &addr) < 0 || !strchr(addr, '@') ||
        !mailaddr_valid(m->to)) {
        free(name);
        free(addr);
        return NULL;
    }
    char id[17];
    if (m->id) {
        snprintf(id, sizeof id, "%s", m->id);
    } else {
        unsigned char r[8];
        if (RAND_bytes(r, sizeof r) != 1)
            abort(); /* no entropy: nothing sensible is left to do */
        for (int i = 0; i < 8; i++)
            snprintf(id + 2 * i, 3, "%02x", r[i]);
    }
    struct buf b = {0};
    put_from(&b, name, addr);
    char *to = xasprintf("To: %s", m->to);
    put_folded(&b, to);
    free(to);
    put_text_header(&b, "Subject", m->subject);
    put_date(&b, m->when);
    char *mid = xasprintf("Message-ID: <%s@%s>\r\nMIME-Version: 1.0\r\n", id,
                          strrchr(addr, '@') + 1);
    puts_(&b, mid);
    free(mid);
    put_priority(&b, m->priority ? m->priority : "normal");
    puts_(&b, "Content-Type: text/html; charset=utf-8\r\n"
              "Content-Transfer-Encoding: quoted-printable\r\n\r\n");
    put_qp(&b, m->html ? m->html : "", m->html ? m->html_len : 0);
    free(name);
    free(addr);
    if (!b.p)
        buf_append(&b, "", 0);
    return b.p;
}

/* -------------------------------------------------------------- delivery */

static size_t read_cb(char *to, size_t size, size_t nmemb, void *arg)
{
    struct mail_xfer *x = arg;
    size_t n = size * nmemb, left = x->len - x->pos;
    if (n > left)
        n = left;
    memcpy(to, x->data + x->pos, n);
    x->pos += n;
    return n;
}

/* HOST for a URL or CURLOPT_CONNECT_TO: an IPv6 literal in brackets. */
static char *url_host(const char *host)
{
    return strchr(host, ':') && host[0] != '[' ? xasprintf("[%s]", host) : xstrdup(host);
}

/* The EHLO name: this host's name when it is a plain DNS name, else localhost. */
static void ehlo_name(char *out, size_t n)
{
    if (gethostname(out, n) < 0 || !*out)
        snprintf(out, n, "localhost");
    out[n - 1] = 0;
    for (char *p = out; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.') {
            snprintf(out, n, "localhost");
            return;
        }
}

/* Server, TLS and login options of E; nonzero if libcurl refused one. */
static int set_server(CURL *e, const struct cfg_smtp *s, struct mail_xfer *x)
{
    char ehlo[256];
    ehlo_name(ehlo, sizeof ehlo);
    int named = s->serverName && *s->serverName;
    char *host = url_host(s->host), *name = url_host(named ? s->serverName : s->host);
    /* libcurl takes SNI and the name to verify from the URL, the address to connect
     * to from CURLOPT_CONNECT_TO; the URL's path is the EHLO name */
    char *url = xasprintf("%s://%s:%d/%s", s->secure ? "smtps" : "smtp", name, s->port, ehlo);
    char *ct = named ? xasprintf("%s:%d:%s:%d", name, s->port, host, s->port) : NULL;
    x->connect_to = ct ? curl_slist_append(NULL, ct) : NULL;
    long ssl = s->secure ? CURLUSESSL_ALL
               : s->ignoreTLS ? CURLUSESSL_NONE
               : s->requireTLS ? CURLUSESSL_ALL
                               : CURLUSESSL_TRY;
    long verify = s->rejectUnauthorized;
    int bad = named && !x->connect_to;
    bad |= curl_easy_setopt(e, CURLOPT_URL, url) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "smtp,smtps") != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_CONNECT_TO, x->connect_to) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_USE_SSL, ssl) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, verify) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, verify ? 2L : 0L) != CURLE_OK;
    if (s->authEnable) {
        bad |= curl_easy_setopt(e, CURLOPT_USERNAME, s->user) != CURLE_OK;
        bad |= curl_easy_setopt(e, CURLOPT_PASSWORD, s->password ? s->password : "") != CURLE_OK;
        bad |= curl_easy_setopt(e, CURLOPT_LOGIN_OPTIONS, "AUTH=PLAIN;AUTH=LOGIN;AUTH=CRAM-MD5") !=
               CURLE_OK;
    }
    free(host);
    free(name);
    free(url);
    free(ct);
    return bad;
}

int mail_setup_easy(CURL *e, const struct cfg_smtp *s, int timeout_s, const char *from,
                    const char *to, const char *message, struct mail_xfer *x)
{
    mail_xfer_free(x);
    x->data = message;
    x->len = strlen(message);
    char *mfrom = xasprintf("<%s>", from), *rcpt = xasprintf("<%s>", to);
    x->rcpt = curl_slist_append(NULL, rcpt);
    int bad = !x->rcpt || set_server(e, s, x);
    bad |= curl_easy_setopt(e, CURLOPT_MAIL_FROM, mfrom) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_MAIL_RCPT, x->rcpt) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_UPLOAD, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_READFUNCTION, read_cb) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_READDATA, x) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)x->len) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_TIMEOUT, (long)timeout_s) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
    free(mfrom);
    free(rcpt);
    return bad ? -1 : 0;
}

void mail_xfer_free(struct mail_xfer *x)
{
    curl_slist_free_all(x->rcpt);
    curl_slist_free_all(x->connect_to);
    memset(x, 0, sizeof *x);
}

enum mail_outcome mail_classify(CURLcode rc, long code, char *why, size_t whylen)
{
    enum mail_outcome o = MAIL_TRANSIENT;
    if (rc == CURLE_OK)
        o = MAIL_ACCEPTED;
    else if ((rc == CURLE_SEND_ERROR || rc == CURLE_WEIRD_SERVER_REPLY) && code >= 500 &&
             code <= 599 && code != 530 && code != 535)
        o = MAIL_PERMANENT; /* the server refused the greeting, MAIL FROM, RCPT TO or DATA */
    if (code > 0)
        snprintf(why, whylen, "%s (SMTP %ld)", rc == CURLE_OK ? "accepted" : curl_easy_strerror(rc),
                 code);
    else
        snprintf(why, whylen, "%s", rc == CURLE_OK ? "accepted" : curl_easy_strerror(rc));
    return o;
}
