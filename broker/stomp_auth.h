/*
 * stomp_auth.h - the STOMP users file (stomp_auth.c); the checks are
 * broker/auth.c's.
 */
#ifndef SL_STOMP_AUTH_H
#define SL_STOMP_AUTH_H

#include <stddef.h>
#include <stdio.h>

#include "protocol/err.h"

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
