/* The alert context (butlerd(8), Alerts): what QRS knows about a failed or aborted
 * reload beyond the task and the app (execution result, script log head and tail,
 * app owner and the owner's e-mail), and the template context built from it with
 * Butler's field names. Blocking QRS calls: run on an events-process thread. */
#ifndef ALERTCTX_H
#define ALERTCTX_H

#include <json-c/json.h>

struct cfg;
struct task_event;

enum { LOG_UNAVAILABLE, LOG_NONE, LOG_OK };

struct alert_info {
    json_object *exec;  /* operational.lastExecutionResult, NULL if none */
    char *next_exec;    /* operational.nextExecution of the reload task, NULL if none */
    int log_state;      /* LOG_UNAVAILABLE, LOG_NONE (empty GUID), LOG_OK */
    char **head;        /* the first nhead lines (UTF-8, without CRLF) */
    int nhead, maxhead;
    char **tail;        /* ring of the last lines: tail[(ntail_start + i) % maxtail] */
    int ntail, maxtail, tail_start;
    long rows, chars;   /* lines and code points of the whole log */
    json_object *owner; /* app owner {id,userId,userDirectory,name}, NULL if unknown */
    char *owner_email;  /* first e-mail of the owner, NULL if the user lookup failed */
    char **owner_emails; /* all of them, in order (e-mail recipients) */
    size_t nowner_emails;
};

/* Calls 4-9 of the alert pipeline: the execution result and script log when
 * WANT_LOG (keeping HEAD first and TAIL last lines), then the app owner. A failing
 * call degrades what is known; nothing here drops the alert. */
void alertctx_gather(const struct cfg *c, struct task_event *e, int want_log, int head,
                     int tail, struct alert_info *out);
void alertctx_free(struct alert_info *a);

/* Per-destination form of the context (butlerd(8), Alerts, per destination). */
struct alertctx_opts {
    int chat;       /* Slack or Teams: '/' for '\' in user, CR removed, 3000 cap */
    int head, tail; /* headScriptLogLines, tailScriptLogLines */
};

/* The template context of event E (a new json-c object). */
json_object *alertctx_context(const struct cfg *c, const struct task_event *e,
                              const struct alert_info *a, const struct alertctx_opts *o);

/* The local time members (Local1..5) of the QRS time ISO in the configured zone;
 * all "-" when ISO begins with 1753 or cannot be read. */
void alertctx_local_times(const struct cfg *c, const char *iso, char out[5][80]);

#endif
