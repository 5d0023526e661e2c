/* The e-mail destination of reload alerts (butlerd(8) "E-mail"): who gets the alert,
 * the RFC 5322 message, and one SMTP delivery on a libcurl easy handle that the
 * caller runs (in a multi handle) and classifies. No globals, no I/O of its own.
 *
 * Use, per event and enabled kind K = &cfg->email.kind[CFG_KIND_*] (the caller renders
 * K->subject in text mode and the HTML template in html mode, once per event):
 *   mail_recipients(K, ctx.taskCustomProperties, &owner, &to, &bad);
 *       log each of bad as a warning, an empty to at info level
 *   env = mail_envelope_from(K->fromAddress);
 *   for each address A of to that passes the rate limit:
 *       msg = mail_message(&(struct mail_msg){K->fromAddress, A, subject, html, len,
 *                                             K->priority, time(NULL), NULL});
 *       spool request {"from": env, "to": A, "message": msg}
 *   each attempt, with the SMTP settings current then:
 *       struct mail_xfer x = {0};
 *       mail_setup_easy(e, &cfg->email.smtp, cfg->notify.smtpTimeoutSeconds, from, to, message, &x);
 *       add e to the multi handle; when it is done:
 *       curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
 *       mail_classify(result, code, why, sizeof why); mail_xfer_free(&x). */
#ifndef MAIL_H
#define MAIL_H

#include "cfg.h"

#include <curl/curl.h>
#include <json-c/json.h>
#include <stddef.h>
#include <time.h>

/* The app owner as QRS knows it; KNOWN 0 when the lookup failed or there is none. */
struct mail_owner {
    int known;
    const char *directory, *userId;
    const char *const *emails;
    size_t nemails;
};

/* Steps 1-5 of the recipient rules for K: CPS is the context's taskCustomProperties
 * (array of {name, value}; NULL when unknown), OWNER may be NULL. Appends the valid
 * addresses, in order and without case-insensitive duplicates, to TO, and the invalid
 * ones to BAD. */
void mail_recipients(const struct cfg_email_kind *k, json_object *cps,
                     const struct mail_owner *owner, struct strlist *to, struct strlist *bad);

/* The HTML template file of K: bodyFileDirectory (relative to WORKDIR, the
 * butlerd.workingDirectory, unless absolute or WORKDIR is "") / htmlTemplateFile, with
 * ".handlebars" appended unless it already ends so. malloc'd. */
char *mail_template_file(const struct cfg_email_kind *k, const char *workdir);

/* One message. WHEN and ID let tests fix the Date and the random part of the
 * Message-ID (ID NULL: 16 random hex digits). */
struct mail_msg {
    const char *from;     /* K.fromAddress, a mailbox */
    const char *to;       /* one address */
    const char *subject;  /* rendered, UTF-8 */
    const char *html;     /* rendered body, HTML_LEN bytes */
    size_t html_len;
    const char *priority; /* K.priority: high, normal or low */
    time_t when;          /* Date, written with the local offset */
    const char *id;       /* NULL: random */
};

/* The complete message, headers and quoted-printable body, CRLF line breaks, not
 * dot-stuffed (libcurl does that). malloc'd, NUL-terminated; NULL if M->from is not a
 * mailbox or M->to not a valid address. */
char *mail_message(const struct mail_msg *m);

/* The address inside the mailbox FROM (for MAIL FROM), malloc'd; NULL if FROM is not
 * a mailbox with a valid address. */
char *mail_envelope_from(const char *from);

/* What one transfer needs until it ends; zero it before mail_setup_easy. */
struct mail_xfer {
    const char *data;
    size_t len, pos;
    struct curl_slist *rcpt, *connect_to;
};

/* Sets E for one delivery of MESSAGE from FROM to TO (bare addresses) with the SMTP
 * settings S and a limit of TIMEOUT_S seconds for the whole transaction. MESSAGE must
 * live until the transfer ends; X too. 0, or -1 if libcurl refused an option. */
int mail_setup_easy(CURL *e, const struct cfg_smtp *s, int timeout_s, const char *from,
                    const char *to, const char *message, struct mail_xfer *x);
void mail_xfer_free(struct mail_xfer *x);

enum mail_outcome { MAIL_ACCEPTED, MAIL_TRANSIENT, MAIL_PERMANENT };

/* The outcome of a finished transfer from its result RC and CURLINFO_RESPONSE_CODE
 * CODE (the last SMTP reply, 0 if none); a one-line reason into WHY. */
enum mail_outcome mail_classify(CURLcode rc, long code, char *why, size_t whylen);

#endif
