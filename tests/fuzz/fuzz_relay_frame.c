/*
 * fuzz_relay_frame.c - the relay's MESSAGE scanner (broker/relay_frame.c)
 * on a byte stream, as relay.c feeds it: heart-beat EOLs skipped, then
 * frame after frame while it finds whole MESSAGEs. The input is copied to
 * a buffer of its exact size, so AddressSanitizer sees any read past it.
 * Checked: a found frame lies inside the input and every value it hands
 * back inside the frame; each shorter cut of it needs more bytes; and
 * where the full STOMP parser (1.2) accepts the same bytes, it finds the
 * same frame length and, for unescaped values, the same subscription,
 * message-id, destination and ack.
 */
#include "tests/fuzz/fuzz_common.h"

#include "broker/relay_frame.h"
#include "broker/stomp_frame.h"

static void same_value(const sl_stomp_frame *f, const char *name, const char *v,
                       size_t vl)
{
    const sl_stomp_header *h = sl_stomp_frame_get(f, name);
    if (!v) {
        if (h && strcmp(name, "ack") == 0)
            abort(); /* the scan missed an ack header */
        return;
    }
    if (!h || h->value_len != vl || memcmp(h->value, v, vl) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t hdr_max, pos = 0;
    char *buf;
    if (size < 1)
        return 0;
    /* tiny or real header limit */
    hdr_max = (data[0] & 1) ? 64 : 65536;
    buf = malloc(size - 1 ? size - 1 : 1);
    if (!buf)
        return 0;
    memcpy(buf, data + 1, size - 1);
    size--;
    while (pos < size) {
        rl_scan sc;
        size_t cut;
        int rc;
        if (buf[pos] == '\n') {
            pos++;
            continue;
        }
        rc = rl_scan_frame(buf + pos, size - pos, hdr_max, 1u << 20, &sc);
        if (rc != RL_SCAN_MESSAGE)
            break;
        if (sc.len == 0 || sc.len > size - pos)
            abort();
#define INSIDE(p, n) ((p) >= buf + pos && (p) + (n) <= buf + pos + sc.len)
        if (!INSIDE(sc.sub, sc.sub_len) || !INSIDE(sc.mid, sc.mid_len) ||
            !INSIDE(sc.dest, sc.dest_len) ||
            (sc.ack && !INSIDE(sc.ack, sc.ack_len)))
            abort();
        for (cut = 1; cut < sc.len && cut < 512; cut++) {
            rl_scan x;
            if (rl_scan_frame(buf + pos, cut, hdr_max, 1u << 20, &x) !=
                RL_SCAN_MORE)
                abort();
        }
        {
            sl_stomp_parser p;
            sl_stomp_frame f;
            size_t used = 0;
            sl_stomp_parser_init(&p, NULL);
            sl_stomp_parser_set_version(&p, SL_STOMP_V12);
            if (sl_stomp_parse(&p, (const uint8_t *)buf + pos, sc.len, &used,
                               &f) == SL_STOMP_FRAME) {
                if (used != sc.len || f.cmd != SL_STOMP_MESSAGE)
                    abort();
                if (!sc.escaped) {
                    same_value(&f, "subscription", sc.sub, sc.sub_len);
                    same_value(&f, "message-id", sc.mid, sc.mid_len);
                    same_value(&f, "destination", sc.dest, sc.dest_len);
                    same_value(&f, "ack", sc.ack, sc.ack_len);
                }
            }
            sl_stomp_parser_fini(&p);
        }
        pos += sc.len;
    }
    free(buf);
    return 0;
}
