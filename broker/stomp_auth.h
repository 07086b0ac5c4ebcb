/*
 * stomp_auth.h - STOMP password checks on a worker thread (stomp_auth.c).
 * Every function is called on the loop thread; callbacks run there too.
 */
#ifndef SL_STOMP_AUTH_H
#define SL_STOMP_AUTH_H

#include <stddef.h>
#include <stdio.h>

#include "protocol/err.h"

struct event_base;

typedef struct sl_stomp_auth sl_stomp_auth;
typedef struct sl_stomp_auth_job sl_stomp_auth_job;
/* ok: 1 = the password matches the stored hash (and force_fail was 0). */
typedef void (*sl_stomp_auth_cb)(void *arg, int ok);

/* Start the worker thread; answers arrive through an event of base. */
sl_err sl_stomp_auth_new(struct event_base *base, sl_stomp_auth **out);
/* Stop and join the worker; pending jobs are dropped, callbacks not run. */
void sl_stomp_auth_free(sl_stomp_auth *a);
/* Check password against stored (sl_stomp_password_ok) on the worker, then
 * call cb(arg, ok) on the loop. force_fail: do the same work but refuse
 * (an unknown login costs as much as a wrong passcode). NULL = no memory. */
sl_stomp_auth_job *sl_stomp_auth_submit(sl_stomp_auth *a, const char *stored,
                                        const char *password, int force_fail,
                                        sl_stomp_auth_cb cb, void *arg);
/* The callback of job will not be called (its argument is going away). */
void sl_stomp_auth_cancel(sl_stomp_auth_job *job);

/* One line of the users file (stomp-users-file): LOGIN HASH. */
typedef struct sl_stomp_user {
    char *login; /* owned */
    char *hash;  /* owned: pbkdf2-sha256$ITERATIONS$SALT_HEX$HASH_HEX */
} sl_stomp_user;

/*
 * Parse a users file from f (`name` names it in errors): one `LOGIN HASH`
 * per line, blank lines and # comments skipped. Appends to *users / *n
 * (the caller frees them with sl_stomp_users_free, also on error).
 * SL_OK; SL_ERR_INVALID_CONFIG with err naming file:line; SL_ERR_NOMEM.
 * A file without any user is an error. @thread any
 */
sl_err sl_stomp_users_read(FILE *f, const char *name, sl_stomp_user **users,
                           size_t *n, char *err, size_t errlen);
void sl_stomp_users_free(sl_stomp_user *users, size_t n);

#endif
