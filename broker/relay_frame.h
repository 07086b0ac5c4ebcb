/*
 * relay_frame.h - find whole MESSAGE frames in a relay session's input
 * without parsing them (the relay's fast path, relay.c).
 *
 * Pure code: bytes in, offsets out; no libevent (tests/unit/
 * test_relay_frame.c).
 */
#ifndef SL_BROKER_RELAY_FRAME_H
#define SL_BROKER_RELAY_FRAME_H

#include <stddef.h>

/* What the scan found out about a MESSAGE frame: pointers into the
 * scanned bytes (the values as they are on the wire, escapes and all). */
typedef struct rl_scan {
    size_t len;                         /* the whole frame, through its NUL */
    const char *sub, *mid, *dest, *ack; /* values; ack NULL when absent */
    size_t sub_len, mid_len, dest_len, ack_len;
    int escaped; /* some header line holds a backslash */
} rl_scan;

enum {
    RL_SCAN_MORE = 0,    /* not a whole frame yet */
    RL_SCAN_MESSAGE = 1, /* *out describes a whole MESSAGE frame */
    RL_SCAN_OTHER = -1   /* anything else: for the STOMP parser */
};

/*
 * Scan the frame at the start of p[0..n) (no leading EOLs), as a Sluice
 * node writes MESSAGEs: "MESSAGE\n", header lines ending in LF, a blank
 * line, a body of exactly content-length bytes, a NUL. RL_SCAN_MESSAGE
 * fills *out; RL_SCAN_MORE when the frame is not whole yet (and could be
 * such a MESSAGE); RL_SCAN_OTHER for any other frame or form (another
 * command, a CR, no content-length, a header block longer than max_hdr or
 * a body longer than max_frame, no NUL after the body), which the caller
 * hands to the full parser, which decides. Never reads past p[n-1].
 */
int rl_scan_frame(const char *p, size_t n, size_t max_hdr, size_t max_frame,
                  rl_scan *out);

#endif
