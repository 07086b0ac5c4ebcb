/*
 * fuzz_stomp_frame.c - the STOMP frame parser (broker/stomp_frame.c) on a
 * byte stream, as broker/stomp.c feeds it: the first byte picks the
 * negotiated version (escaping) and small limits (so the limit paths run),
 * the second how the stream is cut into reads (1 to 256 bytes), the rest
 * is the stream. Every frame's headers and body are read in full; the
 * parser's promises are checked: *used never exceeds what it was given,
 * a frame's body is NUL-terminated, its header count is within the limit.
 */
#include "tests/fuzz/fuzz_common.h"

#include "broker/stomp_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int vers[] = {SL_STOMP_V10, SL_STOMP_V11, SL_STOMP_V12};
    sl_stomp_parser p;
    sl_stomp_limits lim;
    size_t off = 0, step;
    int frames = 0;

    if (size < 2)
        return 0;
    lim.max_frame = (data[0] & 4) ? 256 : SL_STOMP_DEFAULT_MAX_FRAME;
    lim.max_headers = (data[0] & 8) ? 4 : SL_STOMP_DEFAULT_MAX_HEADERS;
    lim.max_header_len = (data[0] & 16) ? 32 : SL_STOMP_DEFAULT_MAX_HEADER_LEN;
    step = 1 + data[1];
    sl_stomp_parser_init(&p, &lim);
    sl_stomp_parser_set_version(&p, vers[(data[0] & 3) % 3]);
    data += 2;
    size -= 2;
    while (off < size) {
        size_t n = size - off < step ? size - off : step;
        size_t used = 0;
        sl_stomp_frame f;
        int rc = sl_stomp_parse(&p, data + off, n, &used, &f);
        if (used > n)
            abort();
        if (rc == SL_STOMP_PERROR) {
            fz_touch(p.errstr, strlen(p.errstr));
            break;
        }
        if (rc == SL_STOMP_FRAME) {
            uint32_t i;
            if (f.header_count > lim.max_headers || f.body[f.body_len] != 0)
                abort();
            (void)sl_stomp_cmd_name(f.cmd);
            for (i = 0; i < f.header_count; i++) {
                fz_touch(f.headers[i].name, f.headers[i].name_len + 1);
                fz_touch(f.headers[i].value, f.headers[i].value_len + 1);
            }
            fz_touch(f.body, f.body_len + 1);
            (void)sl_stomp_frame_value(&f, "content-length");
            /* CONNECT negotiates 1.2 in the middle of a stream */
            if (++frames == 1 && (data[-2] & 32))
                sl_stomp_parser_set_version(&p, SL_STOMP_V12);
        } else if (used != n) {
            abort(); /* NEED_MORE consumes everything */
        }
        off += used;
        if (rc == SL_STOMP_FRAME && used == 0 && n > 0 && frames > 100000)
            break;
    }
    sl_stomp_parser_fini(&p);
    return 0;
}
