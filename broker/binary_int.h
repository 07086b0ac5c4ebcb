/*
 * binary_int.h - inside the binary protocol module: the helpers its
 * handler files (binary_topics.c, binary_produce.c, binary_fetch.c) share
 * (defined in binary.c) and the registration of each file's handlers
 * (binary_conn.c calls them). Not for other modules.
 * @thread loop
 */
#ifndef SL_BINARY_INT_H
#define SL_BINARY_INT_H

#include <stddef.h>

#include "broker/binary.h"
#include "protocol/api.h"

/* Copy a wire topic name into buf. SL_OK or SL_ERR_INVALID_TOPIC. */
sl_err sl_bin_topic_cstr(sl_str s, char *buf, size_t n);
/* Copy an sl_str into the arena (requests' strings borrow the frame). */
sl_str sl_bin_arena_str(sl_arena *a, sl_str s);
/* Send a whole encoded frame (or an error if encoding failed). */
void sl_bin_reply_wb(sl_reply *r, sl_wb *wb, sl_err enc_rc, const char *api);
/* Answer SL_ERR_MALFORMED "<api>: malformed request body", log the peer. */
void sl_bin_malformed(sl_conn *c, sl_reply *r, const char *api);

/* binary_topics.c: register 0-4 (handshake, metadata, topics). */
void sl_binary_topics_register(sl_broker *b);
/* binary_produce.c: register 5 PRODUCE. */
void sl_binary_produce_register(sl_broker *b);
/* binary_fetch.c: register 6 FETCH and 7 LIST_OFFSETS. */
void sl_binary_fetch_register(sl_broker *b);

#endif
