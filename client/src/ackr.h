/*
 * ackr.h - pending queue settlements (ack, nack, reject, touch), coalesced
 * into offset ranges per partition before they are sent. Consecutive
 * offsets with the same operation and parameters (nack delay, reject
 * reason) become one range. Pure data structure, unit-tested in
 * tests/unit/test_client_ackr.c. Not thread-safe.
 */
#ifndef SL_CLIENT_ACKR_H
#define SL_CLIENT_ACKR_H

#include <stddef.h>
#include <stdint.h>

#include "protocol/api.h"

enum sl_ackr_op {
    SL_ACKR_ACK = 0,
    SL_ACKR_NACK = 1,
    SL_ACKR_REJECT = 2,
    SL_ACKR__N = 3
};

typedef struct sl_ackr_item {
    int32_t partition;
    int64_t offset;
    int32_t delay_ms; /* nack */
    char *reason;     /* reject; owned, may be NULL */
} sl_ackr_item;

typedef struct sl_ackr {
    sl_ackr_item *items[SL_ACKR__N];
    size_t n[SL_ACKR__N], cap[SL_ACKR__N];
    int64_t oldest_ms; /* monotonic time of the oldest pending item */
} sl_ackr;

void sl_ackr_init(sl_ackr *r);
void sl_ackr_fini(sl_ackr *r);
/* Queue one settlement (reason copied). SL_OK or SL_ERR_NOMEM. */
sl_err sl_ackr_add(sl_ackr *r, int op, int32_t partition, int64_t offset,
                   int32_t delay_ms, const char *reason, int64_t now_ms);
size_t sl_ackr_pending(const sl_ackr *r);
/*
 * Coalesce and remove the pending items of op: parts sorted by partition,
 * ranges by offset, neighbouring offsets with equal parameters merged
 * (duplicates collapse). Arrays and reason strings are allocated in arena
 * (strings copied), so the result lives as long as the arena.
 * *nitems = settlements taken. SL_OK or SL_ERR_NOMEM (nothing removed).
 */
sl_err sl_ackr_take(sl_ackr *r, int op, sl_arena *arena,
                    sl_qsettle_part **parts, uint32_t *nparts, size_t *nitems);

#endif
