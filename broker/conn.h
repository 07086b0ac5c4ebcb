/*
 * conn.h - binary-protocol connections: one bufferevent each.
 *
 * Frames are cut with sl_frame_peek before anything is buffered beyond the
 * 12-byte header, so a declared length above max-frame-bytes is refused at
 * once (TOO_LARGE reply, then close). Every request gets a reply slot
 * (sl_reply) appended to a FIFO; slots complete in any order and are sent
 * strictly in request order (the completed prefix moves to the output).
 *
 * Back-pressure (libevent's le-proxy idiom): when the unsent output passes
 * output-high-water, or max-pending-requests replies are pending, reading
 * stops; the write watermark is set to half the high water and the drain
 * callback resumes reading (and processes frames already buffered).
 * Memory per connection is thus bounded by max-frame-bytes (input) +
 * output-high-water + one reply (output; fetch data are file ranges sent
 * with sendfile, not copies).
 *
 * Closing: a connection is never freed inside one of its callbacks. Closed
 * connections go to the broker's reap list and are freed by a deferred
 * event. A protocol error closes after the error reply is sent: write side
 * shut down first, then input is discarded until EOF (at most 1 s) so the
 * peer reads the reply instead of a reset.
 * @thread loop
 */
#ifndef SL_CONN_H
#define SL_CONN_H

#include "broker/binary.h"
#include "broker/broker.h"

#endif
