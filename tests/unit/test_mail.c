/* The e-mail destination without a server: the address rule, the recipient rules,
 * messages compared byte for byte with messages written by hand, the outcome of
 * every kind of SMTP failure, and the emailNotification configuration checks. */
#include "cfg.h"
#include "mail.h"
#include "mailaddr.h"
#include "cfg_fixture.h"
#include "unit.h"

#include <sys/stat.h>
#include "utf8.h"
#include "util.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <unistd.h>

static void test_addresses(void)
{
    static const char *const good[] = {
        "a@b.co", "john.doe@example.com", "x!#$%&'*+-/=?^_`{|}~@example.org", "a@b-c.de",
        "1@1a.io", "a@xn--bcher-kva.ch", "a@b.c-m", "first.middle.last@sub.domain.example",
        "UPPER@EXAMPLE.COM", "a@b.co.uk",
    };
    static const char *const bad[] = {
        "", "plain", "@example.com", "a@", "a@b", "a@b.c", "a@b.1a", "a@-b.com", "a@b-.com",
        "a@b..com", ".a@b.com", "a.@b.com", "a..b@b.com", "a b@b.com", "a@b@c.com",
        "\xc3\xa4@b.com", "a@b\xc3\xa4.com", "a@b.com.", "a@.b.com", "a(b)@c.com",
        "a\"b@c.com", "a@b_c.com", "a@b.c-", "a@b.-c", "<a@b.com>", " a@b.com", "a@b.com ",
        "a@b.com,c@d.com", "a@[127.0.0.1]",
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        if (!mailaddr_valid(good[i]))
            {
            CHECK(!"valid address refused");
            fprintf(stderr, "  %s\n", good[i]);
        }
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (mailaddr_valid(bad[i]))
            {
            CHECK(!"invalid address accepted");
            fprintf(stderr, "  %s\n", bad[i]);
        }

    /* lengths: local part 64, labels 63, the whole address 254 */
    char a[300], lab63[64];
    memset(lab63, 'd', 63);
    lab63[63] = 0;
    snprintf(a, sizeof a, "%.64s@x.io", "llllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllll");
    CHECK(mailaddr_valid(a));
    snprintf(a, sizeof a, "%.65s@x.io", "llllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllll");
    CHECK(!mailaddr_valid(a));
    snprintf(a, sizeof a, "u@%s.io", lab63);
    CHECK(mailaddr_valid(a));
    snprintf(a, sizeof a, "u@%sd.io", lab63);
    CHECK(!mailaddr_valid(a));
    /* 64 + 1 + 63 + 1 + 63 + 1 + 61 = 254 */
    memset(a, 'l', 64);
    snprintf(a + 64, sizeof a - 64, "@%s.%s.", lab63, lab63);
    memset(a + 193, 'i', 61);
    a[254] = 0;
    CHECK(strlen(a) == 254 && mailaddr_valid(a));
    strcat(a, "i");
    CHECK(strlen(a) == 255 && !mailaddr_valid(a));
}

static void test_mailbox(void)
{
    static const struct {
        const char *in, *name, *addr;
        int rc;
    } t[] = {
        {"a@b.se", "", "a@b.se", 0},
        {"  a@b.se ", "", "a@b.se", 0},
        {"Qlik Sense (no-reply) <qliksense-noreply@acme.local>", "Qlik Sense (no-reply)",
         "qliksense-noreply@acme.local", 0},
        {"\"Ops, \\\"night\\\" shift\" <ops@acme.local>", "Ops, \"night\" shift", "ops@acme.local", 0},
        {"<ops@acme.local>", "", "ops@acme.local", 0},
        {"Ops <ops@acme.local", NULL, NULL, -1},
        {"Ops ops@acme.local", NULL, NULL, -1},
        {"\"Ops <ops@acme.local>", NULL, NULL, -1},
        {"Ops <a@b.se> x", NULL, NULL, -1},
    };
    for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
        char *n, *a;
        int rc = mailaddr_parse(t[i].in, &n, &a);
        CHECK(rc == t[i].rc);
        if (rc == 0) {
            CHECK_STR(n, t[i].name);
            CHECK_STR(a, t[i].addr);
        }
        free(n);
        free(a);
    }
    char *e = mail_envelope_from("Butler <butler@acme.local>");
    CHECK_STR(e, "butler@acme.local");
    free(e);
    CHECK(mail_envelope_from("Butler <butler@acme>") == NULL);
}

/* ------------------------------------------------------------ recipients */

static struct cfg_email_kind kind(void)
{
    struct cfg_email_kind k;
    memset(&k, 0, sizeof k);
    k.cpName = "Butler_FailedAlertEnableEmail";
    k.cpValue = "Yes";
    k.addrCpName = "Butler_FailedAlertSendToEmail";
    k.ownerIncludeAll = 1;
    return k;
}

static void add(struct strlist *l, const char *s)
{
    strlist_add(l, xstrdup(s));
}

static void add_tuple(struct tuplelist *l, const char *dir, const char *user)
{
    l->v = xrealloc(l->v, (l->n + 1) * sizeof *l->v);
    l->v[l->n].m[0] = xstrdup(dir);
    l->v[l->n].m[1] = xstrdup(user);
    l->v[l->n].m[2] = NULL;
    l->n++;
}

static void free_tuples(struct tuplelist *l)
{
    for (size_t i = 0; i < l->n; i++)
        for (int j = 0; j < 3; j++)
            free(l->v[i].m[j]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

/* The recipients as one "a,b,c|bad1,bad2" string, for short comparisons. */
static char *rcpts(const struct cfg_email_kind *k, const char *cps_json,
                   const struct mail_owner *o)
{
    json_object *cps = cps_json ? json_tokener_parse(cps_json) : NULL;
    struct strlist to = {0}, bad = {0};
    mail_recipients(k, cps, o, &to, &bad);
    struct buf b = {0};
    for (size_t i = 0; i < to.n; i++) {
        if (i)
            buf_append(&b, ",", 1);
        buf_append(&b, to.v[i], strlen(to.v[i]));
    }
    buf_append(&b, "|", 1);
    for (size_t i = 0; i < bad.n; i++) {
        if (i)
            buf_append(&b, ",", 1);
        buf_append(&b, bad.v[i], strlen(bad.v[i]));
    }
    strlist_free(&to);
    strlist_free(&bad);
    json_object_put(cps);
    return b.p;
}

#define RCPTS(k, cps, o, want)                                                               \
    do {                                                                                     \
        char *got_ = rcpts(k, cps, o);                                                       \
        CHECK_STR(got_, want);                                                               \
        free(got_);                                                                          \
    } while (0)

static void test_recipients(void)
{
    struct cfg_email_kind k = kind();
    const char *owner_mail[] = {"Owner@Acme.local", "owner2@acme.local", "bad@@acme.local"};
    struct mail_owner o = {1, "ACME", "jdoe", owner_mail, 3};

    /* nothing configured, nothing known */
    RCPTS(&k, NULL, NULL, "|");

    /* step 2 without the custom-property gate: the static list */
    add(&k.recipients, "qlik-admins@acme.local");
    add(&k.recipients, "Ops@acme.local");
    RCPTS(&k, NULL, NULL, "qlik-admins@acme.local,Ops@acme.local|");

    /* step 1 first: every value of the named property, trimmed; the name is case-sensitive
     * and other properties are ignored */
    const char *cps = "[{\"name\":\"Butler_FailedAlertSendToEmail\",\"value\":\" dev@acme.local \"},"
                      "{\"name\":\"Other\",\"value\":\"other@acme.local\"},"
                      "{\"name\":\"butler_failedalertsendtoemail\",\"value\":\"case@acme.local\"},"
                      "{\"name\":\"Butler_FailedAlertSendToEmail\",\"value\":\"OPS@ACME.LOCAL\"},"
                      "{\"name\":\"Butler_FailedAlertSendToEmail\",\"value\":\"not an address\"}]";
    RCPTS(&k, cps, NULL, "dev@acme.local,OPS@ACME.LOCAL,qlik-admins@acme.local|not an address");

    /* step 2 gated: the name and value of one property, compared case-insensitively */
    k.cpEnable = 1;
    RCPTS(&k, cps, NULL, "dev@acme.local,OPS@ACME.LOCAL|not an address");
    RCPTS(&k, "[{\"name\":\"butler_failedALERTenableemail\",\"value\":\"yes\"}]", NULL,
          "qlik-admins@acme.local,Ops@acme.local|");
    RCPTS(&k, "[{\"name\":\"Butler_FailedAlertEnableEmail\",\"value\":\"No\"},"
              "{\"name\":\"Other\",\"value\":\"Yes\"}]", NULL, "|");
    RCPTS(&k, "[{\"name\":\"Butler_FailedAlertEnableEmail\",\"value\":\"No\"},"
              "{\"name\":\"Butler_FailedAlertEnableEmail\",\"value\":\"Yes\"}]", NULL,
          "qlik-admins@acme.local,Ops@acme.local|");
    k.cpEnable = 0;

    /* step 3: off, then every owner address after the others; duplicates of earlier ones
     * go, invalid ones are reported */
    add(&k.recipients, "owner@acme.local");
    RCPTS(&k, NULL, &o, "qlik-admins@acme.local,Ops@acme.local,owner@acme.local|");
    k.ownerEnable = 1;
    RCPTS(&k, NULL, &o,
          "qlik-admins@acme.local,Ops@acme.local,owner@acme.local,owner2@acme.local|"
          "bad@@acme.local");
    /* unknown owner, or one without addresses */
    o.known = 0;
    RCPTS(&k, NULL, &o, "qlik-admins@acme.local,Ops@acme.local,owner@acme.local|");
    o.known = 1;
    o.nemails = 0;
    RCPTS(&k, NULL, &o, "qlik-admins@acme.local,Ops@acme.local,owner@acme.local|");
    o.nemails = 2;
    strlist_free(&k.recipients);

    /* include list instead of includeAll; directory and user compared case-insensitively */
    k.ownerIncludeAll = 0;
    RCPTS(&k, NULL, &o, "|");
    add_tuple(&k.ownerInclude, "acme", "JDOE");
    RCPTS(&k, NULL, &o, "Owner@Acme.local,owner2@acme.local|");
    /* the exclude list wins over both */
    add_tuple(&k.ownerExclude, "Acme", "JDoe");
    RCPTS(&k, NULL, &o, "|");
    k.ownerIncludeAll = 1;
    RCPTS(&k, NULL, &o, "|");
    free_tuples(&k.ownerExclude);
    add_tuple(&k.ownerExclude, "ACME", "someone-else");
    RCPTS(&k, NULL, &o, "Owner@Acme.local,owner2@acme.local|");
    free_tuples(&k.ownerExclude);
    free_tuples(&k.ownerInclude);

    /* all three sources, duplicates across them in other cases */
    add(&k.recipients, "OWNER@acme.LOCAL");
    add(&k.recipients, "dev@ACME.local");
    RCPTS(&k, "[{\"name\":\"Butler_FailedAlertSendToEmail\",\"value\":\"dev@acme.local\"}]", &o,
          "dev@acme.local,OWNER@acme.LOCAL,owner2@acme.local|");
    strlist_free(&k.recipients);
}

static void test_template_file(void)
{
    struct cfg_email_kind k = kind();
    static const struct {
        const char *dir, *file, *workdir, *want;
    } t[] = {
        {"templates/email", "failed-reload", "/srv/butler", "/srv/butler/templates/email/failed-reload.handlebars"},
        {"templates/email/", "failed-reload.handlebars", "/srv/butler", "/srv/butler/templates/email/failed-reload.handlebars"},
        {"/etc/butlerd/email", "failed.html", "/srv/butler", "/etc/butlerd/email/failed.html.handlebars"},
        {"email", "x.handlebars", "", "email/x.handlebars"},
    };
    for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
        k.bodyFileDirectory = (char *)t[i].dir;
        k.htmlTemplateFile = (char *)t[i].file;
        char *got = mail_template_file(&k, t[i].workdir);
        CHECK_STR(got, t[i].want);
        free(got);
    }
}

/* ---------------------------------------------------------------- message */

static char *msg(const char *from, const char *to, const char *subject, const char *html,
                 const char *priority, time_t when)
{
    struct mail_msg m = {from, to, subject, html, strlen(html), priority, when,
                         "3f2a9c61e0b74d58"};
    return mail_message(&m);
}

static int starts(const char *s, const char *prefix)
{
    return s && strncmp(s, prefix, strlen(prefix)) == 0;
}

#define T_WINTER 1795387793 /* 2026-11-22T22:49:53Z */
#define T_SUMMER 1782900000 /* 2026-07-01T10:00:00Z */

#define TAIL_QP "Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"

static void test_message(void)
{
    setenv("TZ", "Europe/Stockholm", 1);
    tzset();
    char *got = msg("Qlik Sense (no-reply) <qliksense-noreply@acme.local>", "ops@acme.local",
                    "Qlik Sense reload failed: \"Load sales\"", "<p>Hi</p>\n", " High ", T_WINTER);
    CHECK_STR(got, "From: \"Qlik Sense (no-reply)\" <qliksense-noreply@acme.local>\r\n"
                   "To: ops@acme.local\r\n"
                   "Subject: Qlik Sense reload failed: \"Load sales\"\r\n"
                   "Date: Sun, 22 Nov 2026 23:49:53 +0100\r\n"
                   "Message-ID: <3f2a9c61e0b74d58@acme.local>\r\n"
                   "MIME-Version: 1.0\r\n"
                   "X-Priority: 1 (Highest)\r\n"
                   "X-MSMail-Priority: High\r\n"
                   "Importance: High\r\n" TAIL_QP
                   "<p>Hi</p>\r\n");
    free(got);

    /* non-ASCII display name and subject; summer time; low priority; a plain display name
     * stays unquoted; quotes and backslashes in a quoted one are escaped */
    got = msg("Qlik Sens\xc3\xa9 <a@b.se>", "x@y.se",
              "Laddning misslyckades: \xc2\xab" "F\xc3\xb6rs\xc3\xa4ljning\xc2\xbb", "", "LOW",
              T_SUMMER);
    CHECK_STR(got, "From: =?UTF-8?B?UWxpayBTZW5zw6k=?= <a@b.se>\r\n"
                   "To: x@y.se\r\n"
                   "Subject: =?UTF-8?B?TGFkZG5pbmcgbWlzc2x5Y2thZGVzOiDCq0bDtnJzw6Rsam5pbmfCuw==?=\r\n"
                   "Date: Wed, 01 Jul 2026 12:00:00 +0200\r\n"
                   "Message-ID: <3f2a9c61e0b74d58@b.se>\r\n"
                   "MIME-Version: 1.0\r\n"
                   "X-Priority: 5 (Lowest)\r\n"
                   "X-MSMail-Priority: Low\r\n"
                   "Importance: Low\r\n" TAIL_QP);
    free(got);
    got = msg("Qlik Sense <a@b.se>", "x@y.se", "s", "", "normal", T_WINTER);
    CHECK(starts(got, "From: Qlik Sense <a@b.se>\r\nTo: x@y.se\r\nSubject: s\r\nDate: "));
    CHECK(got && strstr(got, "Priority") == NULL && strstr(got, "Importance") == NULL);
    free(got);
    got = msg("\"Ops \\\"night\\\" a\\\\b\" <a@b.se>", "x@y.se", "s", "", "normal", T_WINTER);
    const char *ops = "From: \"Ops \\\"night\\\" a\\\\b\" <a@b.se>\r\nTo: ";
    CHECK(starts(got, ops));
    free(got);
    got = msg("a@b.se", "x@y.se", "s", "", "normal", T_WINTER);
    CHECK(starts(got, "From: a@b.se\r\nTo: x@y.se\r\n"));
    free(got);
    CHECK(msg("Ops <a@b.se", "x@y.se", "s", "", "normal", T_WINTER) == NULL);
    CHECK(msg("a@b.se", "x@y.se\r\nBcc: z@z.se", "s", "", "normal", T_WINTER) == NULL);

    /* long display names: encoded words, then the address on the last line when it
     * fits there, else on a line of its own; a quoted one folds at a space */
    got = msg("Qlik Sense \xc3\xb6vervakning av omladdningar p\xc3\xa5 produktionsservern "
              "<noreply@acme.local>", "x@y.se", "s", "", "normal", T_WINTER);
    CHECK(starts(got, "From: =?UTF-8?B?UWxpayBTZW5zZSDDtnZlcnZha25pbmcgYXYgb21sYWRkbmluZ2FyIHDDpSBw?=\r\n"
                               " =?UTF-8?B?cm9kdWt0aW9uc3NlcnZlcm4=?= <noreply@acme.local>\r\nTo: "));
    free(got);
    got = msg("\xc3\x85 <a23456789b123456789c123456789d123456789e123456789@acme.example.com>",
              "x@y.se", "s", "", "normal", T_WINTER);
    CHECK(starts(got, "From: =?UTF-8?B?w4U=?=\r\n"
                               " <a23456789b123456789c123456789d123456789e123456789@acme.example.com>\r\nTo: "));
    free(got);
    got = msg("Qlik Sense (no-reply) alerts for the production cluster of the northern region "
              "<noreply@acme.local>", "x@y.se", "s", "", "normal", T_WINTER);
    CHECK(starts(got, "From: \"Qlik Sense (no-reply) alerts for the production cluster of the\r\n"
                               " northern region\" <noreply@acme.local>\r\nTo: "));
    free(got);

    /* a negative offset with minutes */
    setenv("TZ", "America/St_Johns", 1);
    tzset();
    got = msg("a@b.se", "x@y.se", "s", "", "normal", T_WINTER);
    CHECK(got && strstr(got, "\r\nDate: Sun, 22 Nov 2026 19:19:53 -0330\r\n"));
    free(got);
    setenv("TZ", "UTC", 1);
    tzset();

    /* a long UTF-8 subject: three encoded words, none over 75 characters, the second
     * starting with the whole o-umlaut and the third with the whole euro sign */
    char subj[200];
    snprintf(subj, sizeof subj, "%s\xc3\xb6%s\xe2\x82\xac%s",
             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", /* 41 */
             "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", /* 42 */ "cccccccccc");
    got = msg("a@b.se", "x@y.se", subj, "", "normal", T_WINTER);
    CHECK(got && strstr(got, "\r\nSubject: =?UTF-8?B?YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWE=?=\r\n"
                             " =?UTF-8?B?w7ZiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmI=?=\r\n"
                             " =?UTF-8?B?4oKsY2NjY2NjY2NjYw==?=\r\nDate: "));
    free(got);

    /* a long ASCII subject folds before a space; one with a CR LF in it (from a task
     * name) is encoded rather than let through as a header break */
    got = msg("a@b.se", "x@y.se",
              "Qlik Sense reload failed: \"Nightly reload of the sales dashboard for the "
              "northern region and all of its QVD layers\"", "", "normal", T_WINTER);
    CHECK(got && strstr(got, "\r\nSubject: Qlik Sense reload failed: \"Nightly reload of the sales dashboard for\r\n"
                             " the northern region and all of its QVD layers\"\r\nDate: "));
    free(got);
    char blanks[120], line[160];
    snprintf(blanks, sizeof blanks, "trailing blanks%90s", "");
    /* folded after "trailing", never before the blanks at the end */
    snprintf(line, sizeof line, "\r\nSubject: trailing\r\n blanks%90s\r\nDate: ", "");
    got = msg("a@b.se", "x@y.se", blanks, "", "normal", T_WINTER);
    CHECK(got && strstr(got, line));
    free(got);
    got = msg("a@b.se", "x@y.se", "a\r\nBcc: e@f.se", "", "normal", T_WINTER);
    CHECK(got && strstr(got, "\r\nSubject: =?UTF-8?B?YQ0KQmNjOiBlQGYuc2U=?=\r\nDate: "));
    free(got);

    /* the body: =, non-ASCII, a leading dot kept as it is (libcurl stuffs it), a trailing
     * blank, soft breaks at 76 that never split =XX, exactly 76 characters, CR and LF
     * alone as line breaks, and a last line without a line break */
    got = msg("a@b.se", "x@y.se", "s",
              "<p style=\"color:red\">T\xc3\xa5g</p>\n"
              ".hidden\r\n"
              "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n"
              "end \r"
              "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy\xc3\xa9\n"
              "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz\n"
              "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz\n"
              "\n"
              "\ta=b\t",
              "normal", T_WINTER);
    const char *body = got ? strstr(got, "\r\n\r\n") : NULL;
    CHECK_STR(body ? body + 4 : NULL,
              "<p style=3D\"color:red\">T=C3=A5g</p>\r\n"
              ".hidden\r\n"
              "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx=\r\n"
              "xxxxxxxxxxxxxxxxxxxxxxxxx\r\n"
              "end=20\r\n"
              "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy=\r\n"
              "=C3=A9\r\n"
              "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz\r\n"
              "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz=\r\n"
              "zz\r\n"
              "\r\n"
              "\ta=3Db=09\r\n");
    free(got);

    /* two messages without a fixed ID differ in their Message-ID */
    struct mail_msg m = {"a@b.se", "x@y.se", "s", "", 0, "normal", T_WINTER, NULL};
    char *m1 = mail_message(&m), *m2 = mail_message(&m);
    CHECK(m1 && m2 && strcmp(m1, m2) != 0);
    const char *id = m1 ? strstr(m1, "Message-ID: <") : NULL;
    CHECK(id && strspn(id + 13, "0123456789abcdef") == 16 && !strncmp(id + 29, "@b.se>\r\n", 8));
    free(m1);
    free(m2);
}

/* ----------------------------------------------------- random subjects and bodies */

static unsigned rnd(unsigned *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return (*seed >> 16) & 0x7fff;
}

/* Appends one character of a random kind to B: ASCII letter, space, or a 2, 3 or
 * 4 byte UTF-8 sequence. */
static void rnd_char(struct buf *b, unsigned *seed)
{
    static const char *const pick[] = {"a", "Z", " ", "\xc3\xa5", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
                                       "=", "?", "_", "."};
    const char *c = pick[rnd(seed) % 10];
    buf_append(b, c, strlen(c));
}

/* The Subject header of MSG decoded back: encoded words concatenated, or the
 * unfolded ASCII text. -1 if a line is over 78 characters (encoded), a word over 75 or
 * not whole characters, or a folded line blank. */
static int subject_back(const char *msg, struct buf *out)
{
    const char *p = strstr(msg, "\r\nSubject: ") + 11, *end = strstr(p, "\r\nDate: ");
    int encoded = !strncmp(p, "=?UTF-8?B?", 10);
    while (p < end) {
        const char *eol = strstr(p, "\r\n");
        size_t len = (size_t)(eol - p);
        if (encoded) {
            const char *w = p + (*p == ' ');
            size_t wl = (size_t)(eol - w);
            if (wl > 75 || len + (p == strstr(msg, "\r\nSubject: ") + 11 ? 9 : 0) > 78 ||
                strncmp(w, "=?UTF-8?B?", 10) || strncmp(eol - 2, "?=", 2))
                return -1;
            unsigned char dec[80];
            int n = EVP_DecodeBlock(dec, (const unsigned char *)w + 10, (int)wl - 12);
            int pad = (w[wl - 3] == '=') + (w[wl - 4] == '=');
            if (n < 0 || !utf8_valid(dec, (size_t)(n - pad))) /* whole characters only */
                return -1;
            buf_append(out, dec, (size_t)(n - pad));
        } else {
            if (len && strspn(p, " ") >= len) /* a folded line of blanks only */
                return -1;
            buf_append(out, p, len);
        }
        p = eol + 2;
    }
    if (!out->p)
        buf_append(out, "", 0);
    return 0;
}

static int hexv(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c - 'A' + 10;
}

/* The body of MSG decoded from quoted-printable; -1 if a line is over 76 characters. */
static int body_back(const char *msg, struct buf *out)
{
    const char *p = strstr(msg, "\r\n\r\n") + 4;
    while (*p) {
        const char *eol = strstr(p, "\r\n");
        if (eol - p > 76)
            return -1;
        int soft = eol > p && eol[-1] == '=';
        for (const char *q = p; q < eol - soft; q++) {
            if (*q == '=') {
                char ch = (char)(hexv(q[1]) << 4 | hexv(q[2]));
                buf_append(out, &ch, 1);
                q += 2;
            } else {
                buf_append(out, q, 1);
            }
        }
        if (!soft)
            buf_append(out, "\r\n", 2);
        p = eol + 2;
    }
    if (!out->p)
        buf_append(out, "", 0);
    return 0;
}

static void test_random_messages(void)
{
    unsigned seed = 14;
    int bad_subject = 0, bad_body = 0;
    for (int i = 0; i < 300; i++) {
        struct buf subj = {0}, body = {0}, want = {0}, s_back = {0}, b_back = {0};
        for (unsigned n = rnd(&seed) % 120; n > 0; n--)
            rnd_char(&subj, &seed);
        buf_append(&subj, "", 0);
        for (unsigned n = rnd(&seed) % 400; n > 0; n--) {
            unsigned r = rnd(&seed) % 40;
            if (r == 0)
                buf_append(&body, "\n", 1), buf_append(&want, "\r\n", 2);
            else if (r == 1)
                buf_append(&body, "\r\n", 2), buf_append(&want, "\r\n", 2);
            else {
                size_t at = body.len;
                rnd_char(&body, &seed);
                buf_append(&want, body.p + at, body.len - at);
            }
        }
        if (want.len && want.p[want.len - 1] != '\n') /* the last line gets its CRLF */
            buf_append(&want, "\r\n", 2);
        if (!want.p)
            buf_append(&want, "", 0);
        if (!body.p)
            buf_append(&body, "", 0);
        struct mail_msg mm = {"a@b.se", "x@y.se", subj.p, body.p, body.len, "normal", T_WINTER,
                              "1"};
        char *m = mail_message(&mm);
        if (subject_back(m, &s_back) < 0 || strcmp(s_back.p, subj.p) != 0)
            bad_subject++;
        if (body_back(m, &b_back) < 0 || b_back.len != want.len ||
            memcmp(b_back.p, want.p, want.len) != 0) {
            if (!bad_body++)
                fprintf(stderr, "body %zu bytes back as %zu: [%s] [%s]\n", want.len, b_back.len, want.p, b_back.p);
        }
        free(m);
        buf_free(&subj);
        buf_free(&body);
        buf_free(&want);
        buf_free(&s_back);
        buf_free(&b_back);
    }
    CHECK(bad_subject == 0);
    CHECK(bad_body == 0);
}

/* ---------------------------------------------------------- classification */

static void test_classify(void)
{
    static const struct {
        CURLcode rc;
        long code;
        enum mail_outcome want;
    } t[] = {
        {CURLE_OK, 250, MAIL_ACCEPTED},
        {CURLE_COULDNT_RESOLVE_HOST, 0, MAIL_TRANSIENT},     /* DNS */
        {CURLE_COULDNT_CONNECT, 0, MAIL_TRANSIENT},          /* no connection */
        {CURLE_OPERATION_TIMEDOUT, 0, MAIL_TRANSIENT},       /* timeout */
        {CURLE_SSL_CONNECT_ERROR, 0, MAIL_TRANSIENT},        /* TLS */
        {CURLE_PEER_FAILED_VERIFICATION, 0, MAIL_TRANSIENT}, /* TLS */
        {CURLE_USE_SSL_FAILED, 250, MAIL_TRANSIENT},         /* STARTTLS required, missing */
        {CURLE_LOGIN_DENIED, 535, MAIL_TRANSIENT},           /* AUTH failed */
        {CURLE_LOGIN_DENIED, 0, MAIL_TRANSIENT},             /* no usable mechanism */
        {CURLE_SEND_ERROR, 530, MAIL_TRANSIENT},             /* MAIL FROM without AUTH */
        {CURLE_SEND_ERROR, 535, MAIL_TRANSIENT},
        {CURLE_SEND_ERROR, 451, MAIL_TRANSIENT},  /* 4xx to MAIL FROM, RCPT TO, DATA */
        {CURLE_SEND_ERROR, 421, MAIL_TRANSIENT},
        {CURLE_SEND_ERROR, 0, MAIL_TRANSIENT},    /* a failed socket write */
        {CURLE_SEND_ERROR, 550, MAIL_PERMANENT},  /* 5xx to MAIL FROM, RCPT TO, DATA */
        {CURLE_SEND_ERROR, 553, MAIL_PERMANENT},
        {CURLE_SEND_ERROR, 554, MAIL_PERMANENT},
        {CURLE_WEIRD_SERVER_REPLY, 554, MAIL_PERMANENT}, /* greeting or end of DATA */
        {CURLE_WEIRD_SERVER_REPLY, 552, MAIL_PERMANENT},
        {CURLE_WEIRD_SERVER_REPLY, 452, MAIL_TRANSIENT},
        {CURLE_WEIRD_SERVER_REPLY, 421, MAIL_TRANSIENT},
        {CURLE_WEIRD_SERVER_REPLY, 0, MAIL_TRANSIENT}, /* garbage instead of a reply */
        {CURLE_REMOTE_ACCESS_DENIED, 502, MAIL_TRANSIENT}, /* EHLO and HELO refused */
        {CURLE_RECV_ERROR, 0, MAIL_TRANSIENT},
        {CURLE_GOT_NOTHING, 0, MAIL_TRANSIENT},
    };
    char why[200];
    for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
        enum mail_outcome o = mail_classify(t[i].rc, t[i].code, why, sizeof why);
        if (o != t[i].want)
            {
            CHECK(!"classification");
            fprintf(stderr, "  row %zu: %s\n", i, why);
        }
    }
    mail_classify(CURLE_SEND_ERROR, 550, why, sizeof why);
    CHECK(strstr(why, "(SMTP 550)") != NULL);
    mail_classify(CURLE_COULDNT_CONNECT, 0, why, sizeof why);
    CHECK(strstr(why, "SMTP") == NULL && *why);
}

/* ------------------------------------------------------------ configuration */

static void test_config(void)
{
    struct cfg_msgs m;
    struct cfg *c = load("Butler = { };\n", &m);
    CHECK(c != NULL);
    if (c) {
        const struct cfg_email_kind *f = &c->email.kind[CFG_KIND_FAILED],
                                    *s = &c->email.kind[CFG_KIND_SUCCESS];
        CHECK(!c->email.enable && c->email.smtp.port == 25 && c->email.smtp.rejectUnauthorized);
        CHECK(c->notify.smtpTimeoutSeconds == 60 && f->rateLimit == 300 && f->tailScriptLogLines == 15);
        CHECK_STR(f->subject, "Qlik Sense reload failed: \"{{taskName}}\"");
        CHECK_STR(s->subject, "Qlik Sense reload succeeded: \"{{taskName}}\"");
        CHECK_STR(c->email.kind[CFG_KIND_ABORTED].cpName, "Butler_AbortedAlertEnableEmail");
        CHECK_STR(s->addrCpName, "Butler_SuccessAlertSendToEmail");
        CHECK_STR(f->priority, "normal");
        CHECK(f->ownerIncludeAll && !f->ownerEnable && !s->ownerEnable);
    }
    cfg_free(c);
    cfg_msgs_free(&m);

    /* placeholders in a disabled kind are fine; an enabled kind with every mistake */
    c = load("Butler = { emailNotification = {\n"                                   /* 1 */
             " enable = true;\n"                                                     /* 2 */
             " smtp = { host = \"\"; port = 587;\n"                                  /* 3 */
             "  tls = { ignoreTLS = true; requireTLS = true; };\n"                   /* 4 */
             "  auth = { enable = true; user = \"\"; }; };\n"                        /* 5 */
             " reloadTaskAborted = { enable = false; fromAddress = \"<Email address 1>\"; };\n"
             " reloadTaskFailure = { enable = true;\n"                               /* 7 */
             "  fromAddress = \"Qlik <qlik@acme>\";\n"                               /* 8 */
             "  recipients = [ \"ok@acme.local\", \"<Email address 1>\" ];\n"        /* 9 */
             "  priority = \"urgent\";\n"                                            /* 10 */
             "  alertEnableByEmailAddress = { customPropertyName = \"To\"; };\n"     /* 11 */
             "  appOwnerAlert = { excludeOwner = { user = ( { directory = \"D\"; userId = \"u\"; } ); }; };\n"
             " };\n"
             "}; };\n",
             &m);
    CHECK(c == NULL);
    CHECK(has(&m.errors, 3, "smtp.host is empty"));
    CHECK(has(&m.errors, 4, "ignoreTLS and smtp.tls.requireTLS are both true"));
    CHECK(has(&m.errors, 5, "smtp.auth.user is empty"));
    CHECK(has(&m.errors, 8, "fromAddress \"Qlik <qlik@acme>\" is not a mailbox"));
    CHECK(has(&m.errors, 9, "recipients \"<Email address 1>\" entry is not a valid"));
    CHECK(!has(&m.errors, 9, "ok@acme.local"));
    CHECK(has(&m.errors, 10, "priority \"urgent\" is not one of high, normal, low"));
    CHECK(has(&m.errors, 7, "reloadTaskFailure.bodyFileDirectory is empty"));
    CHECK(has(&m.errors, 7, "reloadTaskFailure.htmlTemplateFile is empty"));
    CHECK(has(&m.warnings, 11, "alertEnableByEmailAddress"));
    CHECK(!has(&m.errors, 0, "reloadTaskAborted"));
    cfg_msgs_free(&m);
    c = load("Butler = { };\nbutlerd = { notifications = { smtpTimeoutSeconds = 0; }; };\n", &m);
    CHECK(c == NULL && has(&m.errors, 2, "smtpTimeoutSeconds = 0 is out of range"));
    cfg_msgs_free(&m);

    /* a good one: the misspelt key still works, priority is trimmed and case-insensitive;
     * the HTML template t/s.handlebars exists (it is compiled when the file is loaded) */
    char dir[] = "/tmp/butlerd-test-mail-XXXXXX", cwd[4096];
    if (!mkdtemp(dir) || !getcwd(cwd, sizeof cwd) || chdir(dir) < 0 || mkdir("t", 0700) < 0)
        abort();
    FILE *tf = fopen("t/s.handlebars", "w");
    if (!tf || fputs("<p>{{taskName}}</p>\n", tf) < 0 || fclose(tf) != 0)
        abort();
    c = load("Butler = { emailNotification = { enable = true;\n"
             " smtp = { host = \"127.0.0.1\"; auth = { enable = true; user = \"u\"; };\n"
             "  tls = { ignoreTLS = true; }; };\n"
             " reloadTaskSuccess = { enable = true; fromAddress = \"\\\"Qlik, Sense\\\" <q@acme.local>\";\n"
             "  bodyFileDirectory = \"t\"; htmlTemplateFile = \"s\"; priority = \" HIGH \";\n"
             "  alertEnableByEmailAddress = { customPropertyName = \"SendTo\"; }; };\n"
             "}; };\n",
             &m);
    CHECK(c != NULL);
    if (c)
        CHECK_STR(c->email.kind[CFG_KIND_SUCCESS].addrCpName, "SendTo");
    CHECK(has(&m.warnings, 2, "credentials are sent in clear"));
    CHECK(!has(&m.warnings, 0, "no e-mail will be sent"));
    cfg_free(c);
    unlink("t/s.handlebars");
    rmdir("t");
    if (chdir(cwd) < 0)
        abort();
    rmdir(dir);
    cfg_msgs_free(&m);
    for (size_t i = 0; i < m.errors.n; i++)
        fprintf(stderr, "%s\n", m.errors.v[i]);
}

int main(void)
{
    test_addresses();
    test_mailbox();
    test_recipients();
    test_template_file();
    test_message();
    test_random_messages();
    test_classify();
    test_config();
    return UNIT_DONE();
}
