/* What butlerd-import knows about Butler's configuration keys (Butler 8-16): the
 * type butlerd expects for each key it reads, and why the others are carried over
 * without effect. The authority for what butlerd reads is its own key table
 * (butlerd.conf(5)); imp_check.c compares the result with it. */
#ifndef IMP_KEYS_H
#define IMP_KEYS_H

enum imp_ktype { IK_GROUP, IK_BOOL, IK_INT, IK_STR, IK_STRLIST, IK_TUPLES, IK_ANY };

enum imp_kstatus {
    IS_MAPPED,  /* butlerd reads it */
    IS_IGNORED, /* accepted and ignored (why says why) */
    IS_ALERT,   /* reload alerts (butlerd.conf(5), notifications): read once alerts land */
};

struct imp_key {
    const char *path;   /* below Butler, "*" matches one name */
    enum imp_ktype type;
    enum imp_kstatus status;
    const char *why;    /* IS_IGNORED: the reason; IK_TUPLES: the members */
};

/* The entry for PATH (below Butler, no "Butler." prefix), or NULL if the key is not
 * one of Butler's. */
const struct imp_key *imp_key_find(const char *path);
/* A key whose value is a secret (password, API key, token, webhook URL). */
int imp_key_secret(const char *name);
/* A name libconfig accepts: [A-Za-z*][-A-Za-z0-9_*]* */
int imp_key_name_ok(const char *name);

#endif
