/*
 * stomp_read.h - STOMP frames out of a libevent input buffer.
 *
 * The frame parser (stomp_frame.c) is pure: bytes in, frames out, no
 * libevent, so it is fuzzed on its own. Every STOMP reader of the broker
 * (a client connection, stomp.c; a relay session to another node,
 * relay.c and relay_send.c) feeds it from an evbuffer the same way: the
 * first chain of the buffer, then drain what the parser used. That loop
 * lives here, once.
 *
 * @thread loop (any, as long as one thread owns the parser and buffer)
 */
#ifndef SL_BROKER_STOMP_READ_H
#define SL_BROKER_STOMP_READ_H

#include "broker/stomp_frame.h"

struct evbuffer;

/* Feed p from the start of in until a frame completes, p fails, or in is
 * empty; what p used is drained from in. Returns SL_STOMP_FRAME (*f
 * borrows from p until its next call; the rest of the frame's bytes stay
 * in in), SL_STOMP_PERROR (p->errstr says why) or SL_STOMP_NEED_MORE (in
 * is empty, p may hold part of a frame). */
int sl_stomp_read(sl_stomp_parser *p, struct evbuffer *in, sl_stomp_frame *f);

#endif
