/*
 * fuzz_users.c - the STOMP users file parser (sl_stomp_users_read) on
 * fuzzed files. Every accepted user has a non-empty login without blanks
 * and a hash starting with the scheme the checker knows.
 */
#include "tests/fuzz/fuzz_common.h"

#include "broker/stomp_auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FILE *f = fmemopen((void *)data, size, "r");
    sl_stomp_user *u = NULL;
    size_t n = 0, i;
    char err[512];

    if (!f)
        return 0; /* fmemopen refuses size 0 on old glibc */
    if (sl_stomp_users_read(f, "users", &u, &n, err, sizeof(err)) == SL_OK) {
        for (i = 0; i < n; i++) {
            size_t ll = strlen(u[i].login);
            if (ll == 0 || strpbrk(u[i].login, " \t") ||
                strncmp(u[i].hash, "pbkdf2-sha256$", 14) != 0)
                abort();
        }
    } else {
        fz_touch(err, strlen(err));
    }
    sl_stomp_users_free(u, n);
    fclose(f);
    return 0;
}
