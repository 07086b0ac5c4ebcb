/*
 * parse.h - parsing numbers out of text (config values, STOMP headers,
 * record headers, command-line arguments) the same way everywhere.
 * @thread any
 */
#ifndef SL_PARSE_H
#define SL_PARSE_H

#include <stdint.h>

/*
 * A whole decimal int64 (strtoll's syntax: optional leading space and
 * sign; nothing may follow the digits). 0 and *out written, or -1 for
 * NULL, an empty string, trailing characters or overflow (*out untouched).
 */
int sl_parse_i64(const char *s, int64_t *out);

#endif
