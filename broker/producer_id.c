/*
 * producer_id.c - INIT_PRODUCER_ID (33): producer ids for the idempotent
 * producer (docs/cluster.md 4, docs/protocol.md 4.33).
 *
 * An id must be unique cluster-wide and never handed out twice, also
 * across restarts: two producers with one id would deduplicate each
 * other's batches away. Kafka allocates blocks of ids through its
 * controller quorum (KIP-730). Here an id is derived, with no round trip
 * to anyone:
 *
 *     producer_id = node_id << 42 | counter
 *
 * node_id is --node-id (0 on a single node, at most 1,000,000 < 2^20, so
 * ids stay positive), the counter is this node's, 42 bits. The counter is
 * reserved in blocks of SL_PID_BLOCK: before the first id of a block is
 * handed out, the block's end is written durably to DATA/producer-ids
 * (sl_fs_write_durable); a restart continues from that end, so ids given
 * before a crash are never given again (at most a block's unused rest is
 * skipped). A node whose data directory is missing or wiped starts its
 * counter at the wall clock in ms (1.8e12 < 2^42 until the year 2109):
 * larger than any counter it reached before unless it handed out more
 * than one id per millisecond on average since it was first started.
 *
 * Epochs. A new id starts at epoch 0. A client that holds an id and needs
 * its sequences reset (a batch failed for good, so the next sequence would
 * be out of order) asks with its id and epoch and gets epoch + 1: the
 * partitions accept sequence 0 of a higher epoch and fence the lower one
 * (PRODUCER_FENCED). At epoch 32767 it gets a new id instead. The broker
 * does not check that the id was its own: ids are not secrets, and
 * bumping another producer's epoch only makes that producer's next batch
 * fail with PRODUCER_FENCED (its client then takes a new id).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/binary.h"
#include "broker/broker.h"
#include "protocol/api.h"
#include "protocol/log.h"
#include "storage/fsutil.h"

#define SL_PID_BLOCK 1000
#define SL_PID_COUNTER_BITS 42
#define SL_PID_FILE "producer-ids"

/* Next counter value to hand out, reserving a new block when needed. */
static sl_err next_counter(sl_broker *b, int64_t *out)
{
    char path[PATH_MAX], text[64];
    if (b->pid_next < 0) { /* first use since start: where to continue */
        FILE *f;
        long long v = -1;
        snprintf(path, sizeof(path), "%s/%s", b->cfg.data, SL_PID_FILE);
        f = fopen(path, "r");
        if (f) {
            if (fscanf(f, "%lld", &v) != 1)
                v = -1;
            fclose(f);
        }
        if (v < 0) {
            if (f)
                sl_log(SL_WARN, "producer",
                       "%s unreadable: continuing from the clock", path);
            v = sl_fs_now_ms();
        }
        b->pid_next = b->pid_end = v;
    }
    if (b->pid_next >= ((int64_t)1 << SL_PID_COUNTER_BITS))
        return SL_ERR_UNKNOWN; /* 4.4e12 ids from one node */
    if (b->pid_next >= b->pid_end) {
        int64_t end = b->pid_next + SL_PID_BLOCK;
        int n = snprintf(text, sizeof(text), "%lld\n", (long long)end);
        sl_err rc;
        snprintf(path, sizeof(path), "%s/%s", b->cfg.data, SL_PID_FILE);
        rc = sl_fs_write_durable(path, text, (size_t)n);
        if (rc != SL_OK) {
            sl_log(SL_ERROR, "producer",
                   "cannot reserve producer ids in %s: %s", path,
                   sl_strerror(rc));
            return rc;
        }
        b->pid_end = end;
    }
    *out = b->pid_next++;
    return SL_OK;
}

static void h_init_producer_id(sl_broker *b, sl_conn *c, const sl_req *req,
                               sl_reply *r)
{
    sl_init_pid_req q;
    sl_init_pid_resp s;
    sl_wb wb;
    sl_err rc;

    if (sl_init_pid_req_decode(req->body, req->len, &q) != SL_OK ||
        (q.producer_id >= 0 && q.producer_epoch < 0)) {
        sl_conn_warn(c, "malformed", "INIT_PRODUCER_ID: malformed request");
        sl_reply_error(r, SL_ERR_MALFORMED,
                       "INIT_PRODUCER_ID: malformed request body");
        return;
    }
    memset(&s, 0, sizeof(s));
    if (q.producer_id >= 0 && q.producer_epoch < INT16_MAX) {
        s.producer_id = q.producer_id;
        s.producer_epoch = (int16_t)(q.producer_epoch + 1);
    } else {
        int64_t ctr;
        rc = next_counter(b, &ctr);
        if (rc != SL_OK) {
            sl_reply_error(r, rc, "INIT_PRODUCER_ID: no producer id left");
            return;
        }
        s.producer_id = (b->cfg.node_id << SL_PID_COUNTER_BITS) | ctr;
        s.producer_epoch = 0;
    }
    sl_log(SL_DEBUG, "producer", "peer %s: producer id %lld epoch %d",
           sl_conn_peer(c), (long long)s.producer_id, s.producer_epoch);
    sl_wb_init(&wb, 32);
    rc = sl_init_pid_resp_encode(&wb, req->correlation_id, &s);
    if (rc != SL_OK || sl_reply_add(r, wb.p, wb.len) != SL_OK)
        sl_reply_error(r, SL_ERR_NOMEM, "out of memory");
    else
        sl_reply_done(r);
    sl_wb_fini(&wb);
}

void sl_producer_id_init(sl_broker *b)
{
    b->pid_next = b->pid_end = -1;
    sl_binary_register(b, SL_API_INIT_PRODUCER_ID, 1, 1, h_init_producer_id);
}
