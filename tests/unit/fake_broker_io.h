/*
 * fake_broker_io.h - what the unit tests' fake brokers on loopback share
 * (test_producer_retry.c, test_producer_inflight.c): whole reads and
 * writes of a socket, and the HANDSHAKE and error replies they send.
 * Include after cmocka.h and protocol/api.h.
 */
#ifndef SL_TEST_FAKE_BROKER_IO_H
#define SL_TEST_FAKE_BROKER_IO_H

#include <errno.h>
#include <string.h>
#include <unistd.h>

static int read_full(int fd, uint8_t *p, size_t n)
{
    while (n) {
        ssize_t r = read(fd, p, n);
        if (r <= 0) {
            if (r < 0 && errno == EINTR)
                continue;
            return -1;
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Writes wb whole (0) or fails (-1); wb is emptied either way. */
static int write_wb(int fd, sl_wb *wb)
{
    size_t off = 0;
    int rc = 0;
    while (off < wb->len) {
        ssize_t w = write(fd, wb->p + off, wb->len - off);
        if (w <= 0) {
            if (w < 0 && errno == EINTR)
                continue;
            rc = -1;
            break;
        }
        off += (size_t)w;
    }
    sl_wb_reset(wb);
    return rc;
}

static void send_handshake(int fd, uint32_t corr)
{
    sl_handshake_resp r;
    sl_wb wb;
    memset(&r, 0, sizeof(r));
    r.server_name = sl_str_c("fake");
    r.server_version = sl_str_c("0");
    r.max_frame = 1u << 24;
    sl_wb_init(&wb, 64);
    assert_int_equal(sl_handshake_resp_encode(&wb, corr, &r), SL_OK);
    write_wb(fd, &wb);
    sl_wb_fini(&wb);
}

static void send_error(int fd, uint32_t corr, int32_t err, const char *msg)
{
    sl_wb wb;
    sl_wb_init(&wb, 64);
    assert_int_equal(sl_resp_error_encode(&wb, corr, err, msg), SL_OK);
    write_wb(fd, &wb);
    sl_wb_fini(&wb);
}

#endif
