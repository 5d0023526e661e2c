/* udp_parse() on datagrams as Qlik Sense's log4net appenders send them (the shapes of
 * tests/qlik-sim/UDP.md and udp_sender.py): type, field split, sanitising. */
#include "stats.h"
#include "udp.h"
#include "unit.h"

#include <stdlib.h>

#define TID "e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e"
#define AID "3d5a6b7c-1e2f-4a3b-9c4d-5e6f7a8b9c01"
#define XID "24cef311-8998-449a-9be8-74320418a736"

static struct udp_msg parse(int sock, const char *text)
{
    struct udp_msg m;
    udp_parse(sock, text, strlen(text), &m);
    return m;
}

int main(void)
{
    /* a failed reload; the message keeps its ';' */
    struct udp_msg m = parse(UDP_TASK,
        "/scheduler-task-failed/;sense1.acme.local;Reload task of App1;App1;"
        "INTERNAL\\sa_scheduler;" TID ";" AID ";2026-12-06 08:19:00,971;ERROR;" XID
        ";Task failed; exit code 1");
    CHECK(m.type == UDP_T_FAILED);
    CHECK(m.n == 11);
    CHECK_STR(m.f[0], "/scheduler-task-failed/");
    CHECK_STR(m.f[1], "sense1.acme.local");
    CHECK_STR(m.f[4], "INTERNAL\\sa_scheduler");
    CHECK_STR(m.f[5], TID);
    CHECK_STR(m.f[6], AID);
    CHECK_STR(m.f[9], XID);
    CHECK_STR(m.f[10], "Task failed; exit code 1");
    free(m.text);

    /* what the shipped appender sends on success, type in capitals, CRLF at the end */
    m = parse(UDP_TASK, "/Scheduler-Task-Success//;sense1;Reload task of App1;App1;"
                        "INTERNAL\\sa_scheduler;" TID ";" AID ";2026-12-06 08:19:01,559;INFO;" XID
                        ";Execution State Change to FinishedSuccess\r\n");
    CHECK(m.type == UDP_T_SUCCESS);
    CHECK_STR(m.f[0], "/scheduler-task-success//");
    CHECK_STR(m.f[10], "Execution State Change to FinishedSuccess");
    free(m.text);

    /* aborted, distribute, engine (9 fields, the last keeps the rest), unknown */
    m = parse(UDP_TASK, "/scheduler-task-aborted/;h;t;a;u;" TID ";" AID ";ts;INFO;" XID
                        ";Execution State Change to Aborting");
    CHECK(m.type == UDP_T_ABORTED && m.n == 11);
    free(m.text);
    m = parse(UDP_TASK, "/scheduler-distribute/;h;t;a;u;" TID ";;ts;INFO;" XID ";x");
    CHECK(m.type == UDP_T_DISTRIBUTE && m.n == 11);
    CHECK_STR(m.f[6], "");
    free(m.text);
    m = parse(UDP_TASK, "/engine-reload-failed/;h;" AID ";a;b;c;d;e;msg;with;semicolons");
    CHECK(m.type == UDP_T_ENGINE && m.n == 9);
    CHECK_STR(m.f[8], "msg;with;semicolons");
    free(m.text);
    m = parse(UDP_TASK, "/no-such-event/;h");
    CHECK(m.type == UDP_T_NONE && m.n == 2);
    free(m.text);

    /* a proxy session event: 8 fields, no task type; controls go, bad UTF-8 repaired */
    m = parse(UDP_SESSION, "/proxy-session/;sense1.acme.local;Start session;ACME;jo\te\xFF;"
                           "AppAccess;/hub/;Start session for user ACME\\joe;x");
    CHECK(m.type == UDP_T_NONE && m.n == 8);
    CHECK_STR(m.f[2], "Start session");
    CHECK_STR(m.f[4], "joe\xEF\xBF\xBD");
    CHECK_STR(m.f[7], "Start session for user ACME\\joe;x");
    free(m.text);

    /* an empty datagram is one empty field */
    m = parse(UDP_SESSION, "");
    CHECK(m.n == 1);
    CHECK_STR(m.f[0], "");
    free(m.text);
    return UNIT_DONE();
}
