/* Logging: one line per event, tagged with role and pid, to stderr, syslog or a file. */
#ifndef LOG_H
#define LOG_H

#include <stdarg.h>

enum log_level { LOG_LV_ERROR, LOG_LV_WARN, LOG_LV_INFO, LOG_LV_VERBOSE, LOG_LV_DEBUG };
enum log_dest { LOG_DEST_STDERR, LOG_DEST_SYSLOG, LOG_DEST_FILE };

/* Role shown in every line: "master" or "worker". */
void log_set_role(const char *role);
/* Applies a destination; returns 0 or -1 (with errno) if a log file cannot be opened. */
int log_configure(enum log_dest dest, enum log_level level, const char *file,
                  const char *ident, int facility);
int log_reopen(void);
enum log_level log_level_get(void);
int log_enabled(enum log_level lv);

/* The *x twins log the message alone; the plain ones append strerror(errno). */
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_errorx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_verbose(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_vmsg(enum log_level lv, int with_errno, const char *fmt, va_list ap);

int log_level_parse(const char *s, enum log_level *out);
int log_facility_parse(const char *s, int *out);

#endif
