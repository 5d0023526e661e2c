/* butlerd -T: renders a template offline (butlerd(8) "RENDERING A TEMPLATE"). */
#ifndef TMPL_CLI_H
#define TMPL_CLI_H

/* Exit codes of butlerd -T. */
#define TMPL_CLI_OK 0
#define TMPL_CLI_SYNTAX 1  /* template unreadable or with a syntax error */
#define TMPL_CLI_CONTEXT 2 /* context unreadable, not JSON or not an object */
#define TMPL_CLI_NOT_JSON 3 /* json mode: the output is not one JSON object */
#define TMPL_CLI_USAGE 64

/* Renders the file TEMPLATE with the context in the file CONTEXT (NULL: the
 * example context) in MODE ("html", "text" or "json"; NULL: html) to standard
 * output; messages to standard error. Returns one of the codes above. */
int tmpl_cli_run(const char *template_file, const char *context_file, const char *mode);

#endif
