/* butlerd's own group (butlerd.conf(5), "Keys under butlerd"). Butler kept
 * everything in memory, had no /v2 routes after version 7 and logged to the
 * console, so the defaults written here do the same; each line says how to change
 * it. */
#include "imp_butlerd.h"
#include "imp_diff.h"

static const char defaults[] =
    "\n"
    "# butlerd's own settings (butlerd.conf(5)); written by butlerd-import.\n"
    "butlerd = {\n"
    "  workers = 0;                  # 0 = one HTTP worker per online CPU\n"
    "  workingDirectory = \"\";        # base for relative paths; \"\" = where butlerd starts\n"
    "  logging = {\n"
    "    destination = \"stderr\";     # \"stderr\" (journald under systemd) or \"syslog\"\n"
    "  };                            # the level follows Butler.logLevel\n"
    "  rateLimit = {\n"
    "    enable = false;             # per client; Butler had one shared 100/min limit\n"
    "    maxRequests = 100;\n"
    "    windowSeconds = 60;\n"
    "  };\n"
    "  kvPersistence = {\n"
    "    file = \"\";                  # \"\" = memory only, as in Butler\n"
    "  };\n"
    "  v2Api = {\n"
    "    enable = false;             # Butler 8-16 had no /v2 routes\n"
    "  };\n"
    "};\n";

void imp_butlerd_write(FILE *out, const struct imp_node *butler, struct imp_report *rep)
{
    fputs(defaults, out);
    imp_report_add(rep, IR_NOTE,
                   "butlerd group written with: workers 0, logging to stderr, rate limit off, "
                   "key-value store in memory only, /v2 routes off");
    if (imp_diff_true(butler, "fileLogging"))
        imp_report_add(rep, IR_NOTE,
                       "Butler.fileLogging was true: butlerd logs to stderr or syslog; set "
                       "butlerd.logging.destination or butlerd.logging.file");
}
