/* Project-wide constants shared by every role: exit codes and names. */
#ifndef BUTLERD_H
#define BUTLERD_H

#include "config.h"

#define BUTLERD_VERSION PACKAGE_VERSION

/* Exit codes are protocol between master, workers and init scripts. */
#define EXIT_OK 0
#define EXIT_FATAL 1         /* configuration or environment problem */
#define EXIT_USAGE 2         /* bad command line */
#define EXIT_WORKER_FATAL 78 /* worker can never start: do not respawn (EX_CONFIG) */

#ifndef SYSCONFDIR
#define SYSCONFDIR "/usr/local/etc"
#endif
#ifndef LOCALSTATEDIR
#define LOCALSTATEDIR "/usr/local/var"
#endif
#define BUTLERD_DEFAULT_CONF SYSCONFDIR "/butlerd.conf"

#endif
