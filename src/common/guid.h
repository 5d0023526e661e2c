/* GUIDs as Qlik Sense writes them (butlerd-api(7), Task IDs): the strict task-ID form and the
 * loose
 * form, both checked case-insensitively and returned lower-cased. */
#ifndef GUID_H
#define GUID_H

/* Length of a GUID's text, without the NUL. */
#define GUID_LEN 36

/* True if S is a task ID: xxxxxxxx-xxxx-Mxxx-Nxxx-xxxxxxxxxxxx with M in 0-5 and N in
 * 8, 9, a, b. OUT (GUID_LEN + 1 bytes), if not NULL, gets it lower-cased. */
int guid_task_id(const char *s, char *out);
/* True if S is a loose GUID: 8-4-4-4-12 hex digits. OUT as for guid_task_id. */
int guid_loose(const char *s, char *out);

#endif
