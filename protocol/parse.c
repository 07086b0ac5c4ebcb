/*
 * parse.c - see parse.h.
 */
#include "protocol/parse.h"

#include <errno.h>
#include <stdlib.h>

int sl_parse_i64(const char *s, int64_t *out)
{
    char *end;
    long long v;
    if (!s || !*s)
        return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0')
        return -1;
    *out = (int64_t)v;
    return 0;
}
