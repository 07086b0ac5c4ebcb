/*
 * broker/stomp_auth.c - the STOMP users file (stomp-users-file).
 *
 * The file is imported into the one user store at start (broker/auth.c);
 * logins of every protocol are checked there, on its login threads. What
 * The file: one `LOGIN pbkdf2-sha256$ITERATIONS$SALT_HEX$HASH_HEX` per line;
 * the first 32 bytes of the hash are SCRAM-SHA-256's SaltedPassword, so an
 * imported user logs in with SCRAM on the binary port too.
 */
#include "broker/stomp_auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- users file ---------------------------------------------------------- */

sl_err sl_stomp_users_read(FILE *f, const char *name, sl_stomp_user **users,
                           size_t *nusers, char *err, size_t errlen)
{
    char line[1024];
    int ln = 0;
    while (fgets(line, sizeof(line), f)) {
        char *l = line, *sp, *e;
        sl_stomp_user *n;
        ln++;
        while (*l == ' ' || *l == '\t')
            l++;
        e = l + strlen(l);
        while (e > l && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' '))
            *--e = 0;
        if (!*l || *l == '#')
            continue;
        sp = strpbrk(l, " \t");
        if (!sp) {
            snprintf(err, errlen, "%s:%d: expected `LOGIN HASH`", name, ln);
            return SL_ERR_INVALID_CONFIG;
        }
        *sp++ = 0;
        while (*sp == ' ' || *sp == '\t')
            sp++;
        if (strncmp(sp, "pbkdf2-sha256$", 14) != 0) {
            snprintf(err, errlen,
                     "%s:%d: hash of '%s' must start with pbkdf2-sha256$", name,
                     ln, l);
            return SL_ERR_INVALID_CONFIG;
        }
        n = realloc(*users, (*nusers + 1) * sizeof(*n));
        if (!n)
            return SL_ERR_NOMEM;
        *users = n;
        n[*nusers].login = strdup(l);
        n[*nusers].hash = strdup(sp);
        if (!n[*nusers].login || !n[*nusers].hash) {
            free(n[*nusers].login);
            free(n[*nusers].hash);
            return SL_ERR_NOMEM;
        }
        (*nusers)++;
    }
    if (*nusers == 0) {
        snprintf(err, errlen, "stomp-users-file %s has no users", name);
        return SL_ERR_INVALID_CONFIG;
    }
    return SL_OK;
}

void sl_stomp_users_free(sl_stomp_user *users, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        free(users[i].login);
        free(users[i].hash);
    }
    free(users);
}
