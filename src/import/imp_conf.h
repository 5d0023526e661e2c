/* One conversion run of a Butler configuration or schedule file: read, convert,
 * check, report, and write only if everything converted. */
#ifndef IMP_CONF_H
#define IMP_CONF_H

struct imp_opts {
    const char *in;        /* Butler configuration YAML, or NULL */
    const char *out;       /* -o, NULL: standard output */
    const char *sched_in;  /* --schedules */
    const char *sched_out; /* -s, NULL: standard output */
    int check, force;
};

/* Exit status: 0 converted, 1 YAML error, unmappable value or unwritable output. */
int imp_conf_run(const struct imp_opts *o);
int imp_sched_run(const struct imp_opts *o);

#endif
