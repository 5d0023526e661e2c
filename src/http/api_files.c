/* The file endpoints (butlerd-api(7), File endpoints; butlerd-api(7), createdir and
 * /v2/createDir, /v2/createDirQVD): input
 * checks, the lexical rules of fspath.c, the approved-directory lists, then fsop.c
 * does the work. Every handler runs on a job thread: a copy can take long, and a
 * network file system can block any call. */
#include "api.h"
#include "cfg.h"
#include "fsop.h"
#include "fspath.h"
#include "http.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>

enum op { OP_COPY, OP_MOVE, OP_DELETE };

static const char *const op_name[] = {"copy", "move", "delete"};

/* ------------------------------------------------------------------ input */

static json_object *member(json_object *o, const char *name)
{
    json_object *v;
    return json_object_object_get_ex(o, name, &v) ? v : NULL;
}

static int flag(json_object *b, const char *name)
{
    json_object *v = member(b, name);
    return v && json_object_get_boolean(v);
}

/* butlerd's own limits on a path: no NUL byte (it would cut the path short), no
 * more than PATH_MAX - 1 bytes, no name over NAME_MAX. Replies 400 if broken. */
static int path_sane(struct req *r, json_object *v)
{
    const char *p = json_object_get_string(v);
    if (strlen(p) != (size_t)json_object_get_string_len(v)) {
        http_reply_error(r, 400, NULL, "Path must not contain a NUL character");
        return 0;
    }
    if (!fspath_fits(p)) {
        http_reply_error(r, 400, NULL, "Path too long (max %d bytes, %d bytes per name)",
                         FSPATH_MAX, FSPATH_NAME_MAX);
        return 0;
    }
    return 1;
}

/* butlerd-api(7), File endpoints, path rule 1. Butler says "copy" for delete too; butlerd
 * names the operation. */
static int not_unc(struct req *r, json_object *v, enum op op)
{
    const char *p = json_object_get_string(v);
    if (!fspath_is_unc(p))
        return 1;
    http_reply_error(r, 400, NULL,
                     "UNC paths not supported for file %s operations when running Butler on "
                     "non-Windows OS. Path: %s",
                     op_name[op], p);
    return 0;
}

/* Absolute form of V, or NULL after a reply: 400 if it has grown too long. */
static char *absolute(struct req *r, const char *p, const char *fail_msg)
{
    char *abs = fspath_absolute(p);
    if (!abs) {
        log_warn("getcwd failed");
        http_reply_error(r, 500, NULL, "%s", fail_msg);
    } else if (!fspath_fits(abs)) {
        http_reply_error(r, 400, NULL, "Path too long (max %d bytes, %d bytes per name)",
                         FSPATH_MAX, FSPATH_NAME_MAX);
        free(abs);
        abs = NULL;
    }
    return abs;
}

/* ------------------------------------------------------- copy, move, delete */

static const char *const fail_msg[] = {"Failed copying file", "Failed moving file",
                                       "Failed deleting file"};

static int run(enum op op, const struct fsop_loc *a, const struct fsop_loc *b, int overwrite,
               int preserve)
{
    switch (op) {
    case OP_COPY:
        return fsop_copy(a, b, overwrite, preserve);
    case OP_MOVE:
        return fsop_move(a, b, overwrite);
    default:
        return fsop_delete(a);
    }
}

/* Runs OP under the first approval that holds (butlerd-api(7), File endpoints step 4): one
 * entry whose
 * directories hold the parent of every path. An entry under which the kernel finds
 * that a path leads out through a symbolic link approves nothing; the next one is
 * tried. FSOP_ESCAPE if no entry approves. */
static int approved_run(const struct cfg *c, enum op op, const char *const paths[2],
                        int overwrite, int preserve)
{
    int npaths = op == OP_DELETE ? 1 : 2, rc = FSOP_ESCAPE;
    const struct tuplelist *pairs = op == OP_COPY ? &c->fileCopyDirs : &c->fileMoveDirs;
    size_t n = op == OP_DELETE ? c->fileDeleteDirs.n : pairs->n;

    for (size_t i = 0; i < n && rc == FSOP_ESCAPE; i++) {
        struct fsop_loc loc[2] = {{NULL, NULL, NULL, 0}, {NULL, NULL, NULL, 0}};
        char *dirs[2] = {NULL, NULL};
        int ok = 1;
        for (int k = 0; k < npaths && ok; k++) {
            const char *d = op == OP_DELETE ? c->fileDeleteDirs.v[i] : pairs->v[i].m[k];
            const char *rest = NULL;
            /* An empty entry approves nothing (it is not "the working directory"). */
            ok = *d && (dirs[k] = fspath_absolute(d)) != NULL &&
                 (rest = fspath_inside(paths[k], dirs[k])) != NULL && *rest;
            if (ok)
                loc[k] = (struct fsop_loc){dirs[k], rest, paths[k], 1};
        }
        if (ok)
            rc = run(op, &loc[0], &loc[1], overwrite, preserve);
        free(dirs[0]);
        free(dirs[1]);
    }
    return rc;
}

static void reply_failure(struct req *r, enum op op, int rc)
{
    int del = op == OP_DELETE;
    switch (rc) {
    case FSOP_ESCAPE:
        http_reply_error(r, 403, NULL, del ? "No approved directory for file delete"
                                           : "No approved fromDir/toDir for file %s",
                         op_name[op]);
        break;
    case FSOP_NOENT:
        http_reply_error(r, 400, NULL, "%s",
                         del ? "Delete failed, file does not exist" : "fromFile does not exist");
        break;
    case FSOP_ISDIR:
        if (del)
            http_reply_error(r, 400, NULL, "Delete failed, path is a directory");
        else
            http_reply_error(r, 409, NULL, "toFile is an existing directory");
        break;
    case FSOP_SAME:
        http_reply_error(r, 400, NULL, "Source and destination must not be the same");
        break;
    case FSOP_EXISTS:
        http_reply_error(r, 409, NULL, "toFile already exists and overwrite is false");
        break;
    case FSOP_NOTDIR:
        http_reply_error(r, 409, NULL, "toFile exists and is not a directory");
        break;
    case FSOP_INSIDE:
        http_reply_error(r, 400, NULL, "toFile must not be inside fromFile");
        break;
    default:
        http_reply_error(r, 500, NULL, "%s", fail_msg[op]);
    }
}

static const struct sch_prop copy_props[] = {{"fromFile", SCH_STRING, 0, 0, NULL},
                                             {"toFile", SCH_STRING, 0, 0, NULL},
                                             {"overwrite", SCH_BOOLEAN, 0, 0, NULL},
                                             {"preserveTimestamp", SCH_BOOLEAN, 0, 0, NULL},
                                             {NULL, 0, 0, 0, NULL}};
static const struct sch_prop move_props[] = {{"fromFile", SCH_STRING, 0, 0, NULL},
                                             {"toFile", SCH_STRING, 0, 0, NULL},
                                             {"overwrite", SCH_BOOLEAN, 0, 0, NULL},
                                             {NULL, 0, 0, 0, NULL}};

/* PUT /v4/filecopy and /v4/filemove: the steps of butlerd-api(7), File endpoints. */
static void transfer(struct req *r, enum op op)
{
    json_object *b = http_body(r, op == OP_COPY ? copy_props : move_props);
    if (!b)
        return;
    json_object *v[2] = {member(b, "fromFile"), member(b, "toFile")};
    int overwrite = flag(b, "overwrite"), preserve = op == OP_COPY && flag(b, "preserveTimestamp");
    char *echo[2] = {NULL, NULL}, *abs[2] = {NULL, NULL};

    if (!v[0] || !v[1] || !json_object_get_string_len(v[0]) ||
        !json_object_get_string_len(v[1])) {
        http_reply_error(r, 400, NULL, "Required parameter missing");
        return;
    }
    if (!not_unc(r, v[0], op) || !not_unc(r, v[1], op) || !path_sane(r, v[0]) ||
        !path_sane(r, v[1]))
        return;
    for (int k = 0; k < 2; k++) {
        echo[k] = fspath_normalise(json_object_get_string(v[k]));
        if (!(abs[k] = absolute(r, echo[k], fail_msg[op])))
            goto out;
    }
    int rc = approved_run(r->cfg, op, (const char *const *)abs, overwrite, preserve);
    if (rc != FSOP_OK) {
        reply_failure(r, op, rc);
        goto out;
    }
    log_info("%s %s to %s", op == OP_COPY ? "copied" : "moved", abs[0], abs[1]);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "fromFile", json_object_new_string(echo[0]));
    json_object_object_add(o, "toFile", json_object_new_string(echo[1]));
    json_object_object_add(o, "overwrite", json_object_new_boolean(overwrite));
    if (op == OP_COPY)
        json_object_object_add(o, "preserveTimestamp", json_object_new_boolean(preserve));
    http_reply_json(r, 201, o);
out:
    for (int k = 0; k < 2; k++) {
        free(echo[k]);
        free(abs[k]);
    }
}

static void copy_job(struct req *r) { transfer(r, OP_COPY); }
static void move_job(struct req *r) { transfer(r, OP_MOVE); }

/* DELETE /v4/filedelete (butlerd-api(7), File endpoints). */
static void delete_job(struct req *r)
{
    static const struct sch_prop props[] = {{"deleteFile", SCH_STRING, 0, 0, NULL},
                                            {NULL, 0, 0, 0, NULL}};
    json_object *b = http_body(r, props), *v;
    if (!b)
        return;
    if (!(v = member(b, "deleteFile")) || !json_object_get_string_len(v)) {
        http_reply_error(r, 400, NULL, "Required parameter missing");
        return;
    }
    if (!not_unc(r, v, OP_DELETE) || !path_sane(r, v))
        return;
    char *echo = fspath_normalise(json_object_get_string(v));
    char *abs = absolute(r, echo, fail_msg[OP_DELETE]);
    if (abs) {
        const char *paths[2] = {abs, NULL};
        int rc = approved_run(r->cfg, OP_DELETE, paths, 0, 0);
        if (rc == FSOP_OK) {
            log_info("deleted %s", abs);
            http_reply_empty(r, 204);
        } else {
            reply_failure(r, OP_DELETE, rc);
        }
    }
    free(echo);
    free(abs);
}

void api_filecopy(struct req *r) { http_defer(r, copy_job); }
void api_filemove(struct req *r) { http_defer(r, move_job); }
void api_filedelete(struct req *r) { http_defer(r, delete_job); }

/* --------------------------------------------------------- directory creation */

#define MKDIR_FAILED "Failed to create directory"

static const struct sch_prop dir_body[] = {{"directory", SCH_STRING, 0, 0, NULL},
                                           {NULL, 0, 0, 0, NULL}};
static const struct sch_prop dir_query[] = {{"directory", SCH_STRING, 1, 0, NULL},
                                            {NULL, 0, 0, 0, NULL}};

/* The "directory" member of the body (v4) or query (v2), or NULL after a reply.
 * EMPTY_OK: "" is a value (createdirqvd: the QVD folder itself). */
static json_object *dir_input(struct req *r, int v2, int empty_ok)
{
    json_object *in = v2 ? http_query(r, dir_query) : http_body(r, dir_body);
    json_object *v = in ? member(in, "directory") : NULL;
    if (!in)
        return NULL;
    if (!v || (!empty_ok && !json_object_get_string_len(v))) {
        http_reply_error(r, 400, NULL, "Required parameter missing");
        return NULL;
    }
    return path_sane(r, v) ? v : NULL;
}

static void reply_dir(struct req *r, int v2, json_object *v)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "directory", json_object_get(v));
    http_reply_json(r, v2 ? 200 : 201, o);
}

/* POST /v4/createdir, GET /v2/createDir (butlerd-api(7), createdir): anywhere butlerd may
 * write. */
static void createdir(struct req *r, int v2)
{
    json_object *v = dir_input(r, v2, 0);
    char *abs = v ? absolute(r, json_object_get_string(v), MKDIR_FAILED) : NULL;
    if (!abs)
        return;
    struct fsop_loc loc = {"/", abs + 1, abs, 0};
    if (fsop_mkdirs(&loc) == FSOP_OK) {
        log_info("created directory %s", abs);
        reply_dir(r, v2, v);
    } else {
        http_reply_error(r, 500, NULL, MKDIR_FAILED);
    }
    free(abs);
}

/* POST /v4/createdirqvd, GET /v2/createDirQVD (butlerd-api(7), createdirqvd): below the QVD
 * folder,
 * lexically and as the kernel resolves it. */
static void createdirqvd(struct req *r, int v2)
{
    json_object *v = dir_input(r, v2, 1);
    if (!v)
        return;
    const char *qvd = r->cfg->qvdPath;
    if (!*qvd) {
        log_warnx("createdirqvd: Butler.configDirectories.qvdPath is not set");
        http_reply_error(r, 500, NULL, MKDIR_FAILED);
        return;
    }
    char *root = absolute(r, qvd, MKDIR_FAILED), *joined = NULL, *target = NULL;
    if (!root)
        return;
    joined = xasprintf("%s/%s", root, json_object_get_string(v));
    target = fspath_normalise(joined);
    const char *rest = fspath_inside(target, root);
    if (!rest) {
        http_reply_error(r, 403, NULL, "Directory must be within the QVD folder");
    } else if (!fspath_fits(target)) {
        http_reply_error(r, 400, NULL, "Path too long (max %d bytes, %d bytes per name)",
                         FSPATH_MAX, FSPATH_NAME_MAX);
    } else {
        struct fsop_loc loc = {root, rest, target, 1};
        int rc = fsop_mkdirs(&loc);
        if (rc == FSOP_OK) {
            log_info("created directory %s", target);
            reply_dir(r, v2, v);
        } else if (rc == FSOP_ESCAPE) {
            http_reply_error(r, 403, NULL, "Directory must be within the QVD folder");
        } else {
            http_reply_error(r, 500, NULL, MKDIR_FAILED);
        }
    }
    free(root);
    free(joined);
    free(target);
}

static void createdir_job(struct req *r) { createdir(r, 0); }
static void v2_createdir_job(struct req *r) { createdir(r, 1); }
static void createdirqvd_job(struct req *r) { createdirqvd(r, 0); }
static void v2_createdirqvd_job(struct req *r) { createdirqvd(r, 1); }

void api_createdir(struct req *r) { http_defer(r, createdir_job); }
void api_v2_createdir(struct req *r) { http_defer(r, v2_createdir_job); }
void api_createdirqvd(struct req *r) { http_defer(r, createdirqvd_job); }
void api_v2_createdirqvd(struct req *r) { http_defer(r, v2_createdirqvd_job); }
