/* Unit tests: libsluice ack-range coalescing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "client/src/ackr.h"

static void test_in_order_one_range(void **state)
{
    sl_ackr r;
    sl_arena a;
    sl_qsettle_part *parts;
    uint32_t np;
    size_t n;
    int64_t i;
    (void)state;

    sl_ackr_init(&r);
    sl_arena_init(&a);
    for (i = 100; i < 356; i++)
        assert_int_equal(sl_ackr_add(&r, SL_ACKR_ACK, 0, i, 0, NULL, 5), SL_OK);
    assert_int_equal(sl_ackr_pending(&r), 256);
    assert_int_equal(r.oldest_ms, 5);
    assert_int_equal(sl_ackr_take(&r, SL_ACKR_ACK, &a, &parts, &np, &n), SL_OK);
    assert_int_equal(n, 256);
    assert_int_equal(np, 1);
    assert_int_equal(parts[0].partition, 0);
    assert_int_equal(parts[0].nranges, 1);
    assert_int_equal(parts[0].ranges[0].first, 100);
    assert_int_equal(parts[0].ranges[0].last, 355);
    assert_int_equal(sl_ackr_pending(&r), 0);
    /* nothing pending: empty result */
    assert_int_equal(sl_ackr_take(&r, SL_ACKR_ACK, &a, &parts, &np, &n), SL_OK);
    assert_int_equal(np, 0);
    assert_int_equal(n, 0);
    sl_arena_fini(&a);
    sl_ackr_fini(&r);
}

static void test_out_of_order_gaps_partitions(void **state)
{
    sl_ackr r;
    sl_arena a;
    sl_qsettle_part *parts;
    uint32_t np;
    size_t n;
    /* partition 2: 7 5 6 9 9 (dup) 10 ; partition 0: 3 1 */
    int32_t pp[] = {2, 2, 0, 2, 2, 2, 0, 2};
    int64_t oo[] = {7, 5, 3, 6, 9, 9, 1, 10};
    size_t i;
    (void)state;

    sl_ackr_init(&r);
    sl_arena_init(&a);
    for (i = 0; i < sizeof(oo) / sizeof(oo[0]); i++)
        assert_int_equal(sl_ackr_add(&r, SL_ACKR_ACK, pp[i], oo[i], 0, NULL, 0),
                         SL_OK);
    assert_int_equal(sl_ackr_take(&r, SL_ACKR_ACK, &a, &parts, &np, &n), SL_OK);
    assert_int_equal(n, 8);
    assert_int_equal(np, 2);
    /* sorted by partition */
    assert_int_equal(parts[0].partition, 0);
    assert_int_equal(parts[0].nranges, 2); /* 1, 3 */
    assert_int_equal(parts[0].ranges[0].first, 1);
    assert_int_equal(parts[0].ranges[0].last, 1);
    assert_int_equal(parts[0].ranges[1].first, 3);
    assert_int_equal(parts[0].ranges[1].last, 3);
    assert_int_equal(parts[1].partition, 2);
    assert_int_equal(parts[1].nranges, 2); /* 5-7, 9-10 */
    assert_int_equal(parts[1].ranges[0].first, 5);
    assert_int_equal(parts[1].ranges[0].last, 7);
    assert_int_equal(parts[1].ranges[1].first, 9);
    assert_int_equal(parts[1].ranges[1].last, 10);
    sl_arena_fini(&a);
    sl_ackr_fini(&r);
}

static void test_params_split_ranges(void **state)
{
    sl_ackr r;
    sl_arena a;
    sl_qsettle_part *parts;
    uint32_t np;
    size_t n;
    (void)state;

    sl_ackr_init(&r);
    sl_arena_init(&a);
    /* nacks: 1,2 delay 100; 3 delay 0; 4 delay 0 */
    sl_ackr_add(&r, SL_ACKR_NACK, 0, 1, 100, NULL, 0);
    sl_ackr_add(&r, SL_ACKR_NACK, 0, 2, 100, NULL, 0);
    sl_ackr_add(&r, SL_ACKR_NACK, 0, 3, 0, NULL, 0);
    sl_ackr_add(&r, SL_ACKR_NACK, 0, 4, 0, NULL, 0);
    /* rejects: reasons differ */
    sl_ackr_add(&r, SL_ACKR_REJECT, 1, 10, 0, "bad", 0);
    sl_ackr_add(&r, SL_ACKR_REJECT, 1, 11, 0, "bad", 0);
    sl_ackr_add(&r, SL_ACKR_REJECT, 1, 12, 0, "worse", 0);
    sl_ackr_add(&r, SL_ACKR_REJECT, 1, 13, 0, NULL, 0);
    /* an ack in between stays apart */
    sl_ackr_add(&r, SL_ACKR_ACK, 0, 5, 0, NULL, 0);
    assert_int_equal(sl_ackr_pending(&r), 9);

    assert_int_equal(sl_ackr_take(&r, SL_ACKR_NACK, &a, &parts, &np, &n),
                     SL_OK);
    assert_int_equal(n, 4);
    assert_int_equal(np, 1);
    assert_int_equal(parts[0].nranges, 2);
    assert_int_equal(parts[0].ranges[0].first, 1);
    assert_int_equal(parts[0].ranges[0].last, 2);
    assert_int_equal(parts[0].ranges[0].delay_ms, 100);
    assert_int_equal(parts[0].ranges[1].first, 3);
    assert_int_equal(parts[0].ranges[1].last, 4);
    assert_int_equal(parts[0].ranges[1].delay_ms, 0);

    assert_int_equal(sl_ackr_take(&r, SL_ACKR_REJECT, &a, &parts, &np, &n),
                     SL_OK);
    assert_int_equal(n, 4);
    assert_int_equal(parts[0].nranges, 3);
    assert_int_equal(parts[0].ranges[0].last, 11);
    assert_int_equal(parts[0].ranges[0].reason.len, 3);
    assert_memory_equal(parts[0].ranges[0].reason.p, "bad", 3);
    assert_memory_equal(parts[0].ranges[1].reason.p, "worse", 5);
    assert_null(parts[0].ranges[2].reason.p);
    assert_int_equal(sl_ackr_pending(&r), 1);
    sl_arena_fini(&a);
    sl_ackr_fini(&r);
}

static void test_encodes(void **state)
{
    /* the coalesced ranges go through the real encoder */
    sl_ackr r;
    sl_arena a;
    sl_qsettle_req req;
    sl_wb wb;
    size_t n;
    int64_t i;
    (void)state;

    sl_ackr_init(&r);
    sl_arena_init(&a);
    sl_wb_init(&wb, 64);
    for (i = 0; i < 1000; i++)
        sl_ackr_add(&r, SL_ACKR_ACK, (int32_t)(i % 4), i / 4, 0, NULL, 0);
    memset(&req, 0, sizeof(req));
    req.group = sl_str_c("g");
    req.topic = sl_str_c("t");
    req.consumer_id = sl_str_c("c");
    assert_int_equal(
        sl_ackr_take(&r, SL_ACKR_ACK, &a, &req.parts, &req.nparts, &n), SL_OK);
    assert_int_equal(req.nparts, 4);
    for (i = 0; i < 4; i++) {
        assert_int_equal(req.parts[i].nranges, 1);
        assert_int_equal(req.parts[i].ranges[0].first, 0);
        assert_int_equal(req.parts[i].ranges[0].last, 249);
    }
    assert_int_equal(sl_qsettle_req_encode(&wb, SL_API_QUEUE_ACK, 1, &req),
                     SL_OK);
    /* 1000 acks in well under 200 bytes */
    assert_true(wb.len < 200);
    sl_wb_fini(&wb);
    sl_arena_fini(&a);
    sl_ackr_fini(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_in_order_one_range),
        cmocka_unit_test(test_out_of_order_gaps_partitions),
        cmocka_unit_test(test_params_split_ranges),
        cmocka_unit_test(test_encodes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
