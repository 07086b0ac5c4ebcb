/*
 * stomp_selector.h - JMS message selectors (the `selector` header of
 * SUBSCRIBE): the SQL-92 subset JMS defines, over a message's headers.
 * Pure: no socket, no broker state (tests/unit/test_stomp_selector.c).
 * @thread any (a compiled selector is read-only)
 */
#ifndef SL_STOMP_SELECTOR_H
#define SL_STOMP_SELECTOR_H

#include <stddef.h>

typedef struct sl_selector sl_selector;

/* The value of header `name` of the message being tested (NUL-terminated,
 * valid until the next call), or NULL when it has none. */
typedef const char *(*sl_selector_lookup)(void *arg, const char *name);

/* Compile text. NULL with err set (naming the position) when it is not a
 * valid selector or deeper than the nesting limit. */
sl_selector *sl_selector_compile(const char *text, char *err, size_t errlen);
/* 1 when the message matches (the selector is TRUE), 0 when it is FALSE
 * or unknown (a NULL operand). */
int sl_selector_match(const sl_selector *s, sl_selector_lookup lookup,
                      void *arg);
void sl_selector_free(sl_selector *s);

#endif
