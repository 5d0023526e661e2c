/* Test driver, built by make check but not run by it: builds one alert e-mail with
 * mail_message() and delivers it with mail_setup_easy() on a curl multi handle, as
 * the delivery process does, then prints the outcome of mail_classify():
 *   mail_send [-s] [-r] [-i] [-k] [-u user -p password] [-n serverName] [-C cafile]
 *             [-P priority] [-T epoch] [-I id] [-t timeout] HOST PORT FROM TO SUBJECT HTMLFILE
 * -s secure, -r requireTLS, -i ignoreTLS, -k rejectUnauthorized false, -v libcurl's
 * trace on stderr. The CA file is
 * for the tests' own CA only (butlerd itself uses the system store). Prints
 * "accepted|transient|permanent: why"; exit 0 unless something else went wrong. */
#include "mail.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    struct buf b = {0};
    char chunk[4096];
    size_t n;
    if (!f)
        return NULL;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_append(&b, chunk, n);
    fclose(f);
    if (!b.p)
        buf_append(&b, "", 0);
    *len = b.len;
    return b.p;
}

/* Runs E to the end on a multi handle; its result into *RC. */
static int run(CURL *e, CURLcode *rc)
{
    CURLM *m = curl_multi_init();
    int running = 1, left;
    curl_multi_add_handle(m, e);
    while (running) {
        if (curl_multi_perform(m, &running) != CURLM_OK)
            return -1;
        if (running)
            curl_multi_poll(m, NULL, 0, 1000, NULL);
    }
    CURLMsg *msg = curl_multi_info_read(m, &left);
    *rc = msg ? msg->data.result : CURLE_GOT_NOTHING;
    curl_multi_remove_handle(m, e);
    curl_multi_cleanup(m);
    return 0;
}

int main(int argc, char **argv)
{
    struct cfg_smtp s = {.rejectUnauthorized = 1};
    const char *cafile = NULL, *prio = "normal", *id = NULL;
    time_t when = time(NULL);
    int timeout = 10, opt, verbose = 0;
    while ((opt = getopt(argc, argv, "srikvn:u:p:C:P:T:I:t:")) != -1) {
        switch (opt) {
        case 's': s.secure = 1; break;
        case 'r': s.requireTLS = 1; break;
        case 'i': s.ignoreTLS = 1; break;
        case 'k': s.rejectUnauthorized = 0; break;
        case 'v': verbose = 1; break;
        case 'n': s.serverName = optarg; break;
        case 'u': s.authEnable = 1; s.user = optarg; break;
        case 'p': s.password = optarg; break;
        case 'C': cafile = optarg; break;
        case 'P': prio = optarg; break;
        case 'T': when = (time_t)atoll(optarg); break;
        case 'I': id = optarg; break;
        case 't': timeout = atoi(optarg); break;
        default: return 2;
        }
    }
    if (argc - optind != 6) {
        fprintf(stderr, "usage: mail_send [options] HOST PORT FROM TO SUBJECT HTMLFILE\n");
        return 2;
    }
    s.host = argv[optind];
    s.port = atoi(argv[optind + 1]);
    size_t len = 0;
    char *html = slurp(argv[optind + 5], &len);
    char *from = mail_envelope_from(argv[optind + 2]);
    struct mail_msg mm = {argv[optind + 2], argv[optind + 3], argv[optind + 4], html, len, prio,
                          when, id};
    char *message = html && from ? mail_message(&mm) : NULL;
    if (!message) {
        fprintf(stderr, "mail_send: bad FROM or unreadable HTMLFILE\n");
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURL *e = curl_easy_init();
    struct mail_xfer x = {0};
    CURLcode rc;
    long code = 0;
    char why[300];
    if (mail_setup_easy(e, &s, timeout, from, argv[optind + 3], message, &x) < 0 ||
        (verbose && curl_easy_setopt(e, CURLOPT_VERBOSE, 1L) != CURLE_OK) ||
        (cafile && curl_easy_setopt(e, CURLOPT_CAINFO, cafile) != CURLE_OK) || run(e, &rc) < 0) {
        fprintf(stderr, "mail_send: libcurl refused the transfer\n");
        return 2;
    }
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    enum mail_outcome o = mail_classify(rc, code, why, sizeof why);
    printf("%s: %s\n", o == MAIL_ACCEPTED ? "accepted" : o == MAIL_TRANSIENT ? "transient" : "permanent",
           why);
    mail_xfer_free(&x);
    curl_easy_cleanup(e);
    curl_global_cleanup();
    free(message);
    free(from);
    free(html);
    return 0;
}
