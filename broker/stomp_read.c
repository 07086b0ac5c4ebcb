/*
 * stomp_read.c - STOMP frames out of a libevent input buffer (the essay
 * is at the top of stomp_read.h).
 *
 * @thread loop (any, as long as one thread owns the parser and buffer)
 */
#include "broker/stomp_read.h"

#include <event2/buffer.h>

int sl_stomp_read(sl_stomp_parser *p, struct evbuffer *in, sl_stomp_frame *f)
{
    while (evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v;
        size_t used = 0;
        int rc;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            break;
        rc = sl_stomp_parse(p, v.iov_base, v.iov_len, &used, f);
        evbuffer_drain(in, used);
        if (rc != SL_STOMP_NEED_MORE)
            return rc;
    }
    return SL_STOMP_NEED_MORE;
}
