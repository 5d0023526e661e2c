/* E-mail addresses as butlerd.conf(5) "E-mail alerts" defines them: the address rule
 * Butler's validator applies (email-validator 2.0.4), and the mailbox form
 * `Display Name <user@domain>` of fromAddress. Pure code, shared by the
 * configuration checks and the e-mail destination. */
#ifndef MAILADDR_H
#define MAILADDR_H

/* True if S is an acceptable address: at most 254 characters, ASCII only; a local
 * part of at most 64 characters of letters, digits and !#$%&'*+-/=?^_`{|}~ with single
 * dots between them; '@'; at least two dot-separated labels of letters, digits and
 * hyphens, each 1-63 characters, starting and ending with a letter or digit, the last
 * one starting with a letter and at least 2 characters long. */
int mailaddr_valid(const char *s);

/* Splits the mailbox S ("addr", "Name <addr>" or "\"Quoted, name\" <addr>") into a
 * malloc'd display name (unquoted, "" if none) and address. 0, or -1 for a broken
 * form (the address itself is not checked here). */
int mailaddr_parse(const char *s, char **name, char **addr);

#endif
