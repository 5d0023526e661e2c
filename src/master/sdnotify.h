/* systemd's readiness protocol (butlerd(8), "SYSTEMD"): READY after the workers
 * accept, RELOADING and READY around a reload, STOPPING, STATUS lines, and the
 * watchdog when the unit sets WatchdogSec. Through libsystemd's sd_notify when
 * configure found it (--with-systemd); without it every call does nothing. */
#ifndef SDNOTIFY_H
#define SDNOTIFY_H

/* READY=1 with a STATUS line naming the generation and its workers. */
void sdnotify_ready(unsigned gen, int workers);
/* RELOADING=1 (with MONOTONIC_USEC, as Type=notify-reload wants). */
void sdnotify_reloading(void);
/* READY=1 after a reload that failed: the old generation goes on serving. */
void sdnotify_reload_failed(unsigned gen);
void sdnotify_stopping(void);
/* Loop timer (loop_add_timer): WATCHDOG=1 at half the unit's WatchdogSec; -1 if
 * the watchdog is off. */
int sdnotify_watchdog(void);

#endif
