/*
 * relay_frame.c - find whole MESSAGE frames in a relay session's input
 * without parsing them.
 *
 * A relaying node used to parse every MESSAGE the coordinator sent (the
 * parser copies the frame into its own buffer and unescapes each header)
 * and encode it again for its client (escaping each header): about 3 us
 * a message, which held a relayed queue to half the rate of a direct
 * connection (docs/benchmarks.md, issue 13). For a STOMP 1.2 client the
 * frame it would encode is the coordinator's, byte for byte: the relay
 * session subscribed with the client's subscription id and destination,
 * so the coordinator wrote those, and its ack id "message-id#sub-id"
 * (relay.c checks all three). So the fast path only finds where each
 * frame ends and where those values are, and copies the frames out.
 *
 * Only the form a Sluice node writes is taken here: "MESSAGE" LF, header
 * lines ending in LF, a blank line, content-length bytes of body, NUL.
 * Anything else (a CR, a frame without content-length, another command)
 * is left to the full parser, which applies the limits and reports the
 * errors. The first header of a name counts, as in the parser. Other
 * header lines are passed on as the node wrote them, unchecked: the
 * session is to a node of this cluster (authenticated with the cluster
 * secret when there is one), whose encoder wrote them.
 *
 * @thread any (pure)
 */
#include "broker/relay_frame.h"

#include <stdint.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define MSG_CMD "MESSAGE\n"
#define MSG_CMD_LEN 8

/* LF bits of 64 bytes of a frame's header block, p[base..base+64). */
typedef struct lf_blk {
    size_t base;
    uint64_t m;
    int has;
} lf_blk;

#if defined(__SSE2__)
static inline uint64_t lf_bits16(const char *q)
{
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)q);
    return (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('\n')));
}
#endif

/* The first LF in p[from..lim), or NULL (from only grows between calls
 * of one scan, b remembers the last 64-byte block). A MESSAGE's header
 * lines are short (10-40 bytes), and memchr's call and set-up cost more
 * than such a search: here the LFs of 64 bytes are found at once and the
 * lines in them read off the bits (a frame of 11 header lines: about 75
 * -> 53 ns). Only bytes below lim are read: a block is loaded when 64
 * bytes remain, memchr takes the rest (and everything without SSE2). */
static inline const char *next_lf(const char *p, size_t from, size_t lim,
                                  lf_blk *b)
{
#if defined(__SSE2__)
    for (;;) {
        uint64_t m;
        if (!b->has || from >= b->base + 64) {
            const char *q = p + from;
            if (lim - from < 64)
                break;
            b->m = lf_bits16(q) | lf_bits16(q + 16) << 16 |
                   lf_bits16(q + 32) << 32 | lf_bits16(q + 48) << 48;
            b->base = from;
            b->has = 1;
        }
        m = b->m >> (from - b->base);
        if (m)
            return p + from + (unsigned)__builtin_ctzll(m);
        from = b->base + 64;
    }
#else
    (void)b;
#endif
    return memchr(p + from, '\n', lim - from);
}

int rl_scan_frame(const char *p, size_t n, size_t max_hdr, size_t max_frame,
                  rl_scan *out)
{
    rl_scan sc;
    size_t pos, cl = 0, lim;
    int have_cl = 0;

    if (memcmp(p, MSG_CMD, n < MSG_CMD_LEN ? n : MSG_CMD_LEN) != 0)
        return RL_SCAN_OTHER;
    if (n < MSG_CMD_LEN)
        return RL_SCAN_MORE;
    lf_blk blk = {0, 0, 0};
    memset(&sc, 0, sizeof(sc));
    pos = MSG_CMD_LEN;
    lim = n < max_hdr ? n : max_hdr;
    for (;;) {
        const char *line = p + pos, *eol;
        size_t ll;
        if (pos >= lim)
            return n >= max_hdr ? RL_SCAN_OTHER : RL_SCAN_MORE;
        eol = next_lf(p, pos, lim, &blk);
        if (!eol)
            return n >= max_hdr ? RL_SCAN_OTHER : RL_SCAN_MORE;
        ll = (size_t)(eol - line);
        pos += ll + 1;
        if (ll == 0)
            break; /* the blank line: the body follows */
        if (line[ll - 1] == '\r')
            return RL_SCAN_OTHER;
        /* only five names matter: tell them by their first byte and
         * length before comparing (most lines are none of them) */
        switch (line[0]) {
        case 's':
            if (!sc.sub && ll > 12 && memcmp(line, "subscription:", 13) == 0) {
                sc.sub = line + 13;
                sc.sub_len = ll - 13;
                sc.escaped |= memchr(sc.sub, '\\', sc.sub_len) != NULL;
            }
            break;
        case 'm':
            if (!sc.mid && ll > 10 && memcmp(line, "message-id:", 11) == 0) {
                sc.mid = line + 11;
                sc.mid_len = ll - 11;
                sc.escaped |= memchr(sc.mid, '\\', sc.mid_len) != NULL;
            }
            break;
        case 'd':
            if (!sc.dest && ll > 11 && memcmp(line, "destination:", 12) == 0) {
                sc.dest = line + 12;
                sc.dest_len = ll - 12;
                sc.escaped |= memchr(sc.dest, '\\', sc.dest_len) != NULL;
            }
            break;
        case 'a':
            if (!sc.ack && ll > 3 && memcmp(line, "ack:", 4) == 0) {
                sc.ack = line + 4;
                sc.ack_len = ll - 4;
                sc.escaped |= memchr(sc.ack, '\\', sc.ack_len) != NULL;
            }
            break;
        case 'c':
            if (!have_cl && ll > 14 &&
                memcmp(line, "content-length:", 15) == 0) {
                const char *v = line + 15;
                size_t i, vl = ll - 15;
                if (vl > 12)
                    return RL_SCAN_OTHER;
                for (i = 0; i < vl; i++) {
                    if (v[i] < '0' || v[i] > '9')
                        return RL_SCAN_OTHER;
                    cl = cl * 10 + (size_t)(v[i] - '0');
                }
                have_cl = 1;
            }
            break;
        default:
            break;
        }
    }
    if (!have_cl || cl > max_frame || !sc.sub || !sc.mid || !sc.dest)
        return RL_SCAN_OTHER;
    if (n - pos < cl + 1)
        return RL_SCAN_MORE;
    if (p[pos + cl] != 0)
        return RL_SCAN_OTHER;
    sc.len = pos + cl + 1;
    *out = sc;
    return RL_SCAN_MESSAGE;
}
