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
    int64_t d = 0;
    size_t i;
    if (!s || !*s)
        return -1;
    /* up to 18 plain digits cannot overflow: no strtoll (ids and offsets
     * of every STOMP ACK go through here) */
    for (i = 0; i < 18 && s[i] >= '0' && s[i] <= '9'; i++)
        d = d * 10 + (s[i] - '0');
    if (s[i] == '\0') {
        *out = d;
        return 0;
    }
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0')
        return -1;
    *out = (int64_t)v;
    return 0;
}
