/*
 * binary_fetch.c - the binary protocol's FETCH (api 6: zero copy, long
 * poll, a follower's fetch in a cluster) and LIST_OFFSETS (api 7).
 *
 * Visibility: a fetch returns records below the partition's "visible"
 * offset (sl_ops_visible_offset): the durable offset for flush=always
 * topics, so a consumer never sees a record a crash could take back; the
 * log end for flush=interval|never topics.
 * @thread loop
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/binary_int.h"
#include "broker/broker.h"
#include "protocol/api.h"
#include "protocol/log.h"
#include "storage/fsutil.h"

/* ---- 6 FETCH
 * ------------------------------------------------------------------- */

typedef struct fetch_ctx {
    sl_broker *b;
    sl_conn *c;
    sl_reply *r;
    uint32_t corr;
    sl_arena a; /* request arrays + copied names */
    sl_fetch_req q;
    sl_ops_watch *watch;
} fetch_ctx;

static void fetch_ctx_free(fetch_ctx *x)
{
    sl_ops_watch_free(x->watch);
    sl_arena_fini(&x->a);
    free(x);
}

typedef struct fetch_slot {
    sl_part_slice sl;
    size_t split;
    uint8_t *copy; /* a small slice read at once (sl.fd closed), or NULL */
} fetch_slot;

/* Slices up to this size are copied into the reply instead of sent from
 * a dup of the segment's descriptor: a FETCH over thousands of
 * partitions with a few records each held one descriptor per partition
 * until the reply was written (19,800 descriptors for 10,000 partitions
 * next to storage's bounded open-file cache), and a copy of a few KiB
 * costs less than setting up a sendfile. */
#define SL_FETCH_COPY_MAX 4096

/* Replace a small slice's descriptor by a copy of its bytes. */
static void fetch_copy_small(fetch_slot *s)
{
    size_t got = 0;
    if (s->sl.fd < 0 || s->sl.len == 0 || s->sl.len > SL_FETCH_COPY_MAX)
        return;
    uint8_t *b = malloc(s->sl.len);
    if (!b)
        return; /* keep the descriptor: sendfile as before */
    if (sl_fs_pread_all(s->sl.fd, b, s->sl.len, (off_t)s->sl.file_pos, &got) !=
            SL_OK ||
        got != s->sl.len) {
        free(b);
        return;
    }
    close(s->sl.fd);
    s->sl.fd = -1;
    s->copy = b;
}

/*
 * Read every requested partition. When final, or min_bytes is reached, or
 * a partition has an error, encode and send the reply and return 1.
 * Otherwise close the slices and return 0 (the caller waits).
 */
static int fetch_try(fetch_ctx *x, int final)
{
    sl_broker *b = x->b;
    sl_fetch_req *q = &x->q;
    fetch_slot *slots;
    size_t nslots = 0, total = 0, k = 0, prev = 0;
    size_t remaining = q->max_bytes;
    int any_err = 0, sent = 0;
    sl_resp_enc e;
    sl_wb wb;
    sl_err rc;

    for (uint32_t t = 0; t < q->ntopics; t++)
        nslots += q->topics[t].nparts;
    slots = calloc(nslots + 1, sizeof(*slots));
    if (!slots) {
        sl_reply_error(x->r, SL_ERR_NOMEM, "out of memory");
        return 1;
    }
    if (remaining > (size_t)b->cfg.fetch_max_bytes)
        remaining = (size_t)b->cfg.fetch_max_bytes;
    sl_wb_init(&wb, 256);
    sl_fetch_resp_begin(&e, &wb, x->corr);
    for (uint32_t t = 0; t < q->ntopics; t++) {
        sl_fetch_topic *ft = &q->topics[t];
        char name[SL_TOPIC_NAME_MAX + 1];
        sl_err trc = sl_bin_topic_cstr(ft->topic, name, sizeof(name));

        sl_resp_enc_topic(&e, ft->topic);
        for (uint32_t p = 0; p < ft->nparts; p++, k++) {
            sl_fetch_part *fp = &ft->parts[p];
            sl_fetch_part_resp ph;
            sl_part *part = NULL;
            size_t maxb = fp->max_bytes;

            memset(&ph, 0, sizeof(ph));
            slots[k].sl.fd = -1;
            ph.partition = fp->partition;
            ph.high_watermark = ph.log_start_offset = ph.log_end_offset = -1;
            rc = trc;
            if (rc == SL_OK)
                rc = sl_ops_part(b, name, (int32_t)fp->partition,
                                 SL_OPS_NO_CREATE, &part);
            if (rc == SL_OK && fp->refused)
                rc = fp->refused; /* a follower's stale epoch */
            if (rc == SL_OK && q->replica_id) {
                /* a follower: everything written, and the leader's HW */
                int64_t vis = sl_part_end_offset(part);
                ph.high_watermark =
                    vis < sl_part_read_cap(part) ? vis : sl_part_read_cap(part);
                ph.log_start_offset = sl_part_start_offset(part);
                ph.log_end_offset = vis;
                if (maxb > remaining)
                    maxb = remaining;
                if (maxb > 0 && fp->fetch_offset < vis)
                    rc = sl_part_read(part, fp->fetch_offset, maxb, vis,
                                      &slots[k].sl);
                else if (fp->fetch_offset < ph.log_start_offset ||
                         fp->fetch_offset > vis)
                    rc = SL_ERR_OFFSET_OUT_OF_RANGE;
            } else if (rc == SL_OK) {
                int64_t vis = 0;
                sl_ops_visible_offset(b, name, (int32_t)fp->partition, &vis);
                ph.high_watermark = vis;
                ph.log_start_offset = sl_part_start_offset(part);
                ph.log_end_offset = sl_part_end_offset(part);
                if (maxb > remaining)
                    maxb = remaining;
                if (maxb > 0 && fp->fetch_offset < vis) {
                    rc = sl_part_read(part, fp->fetch_offset, maxb, vis,
                                      &slots[k].sl);
                    /* Only the first data of the response may exceed the
                     * budget (one whole batch larger than max_bytes);
                     * later partitions must fit or wait for the next
                     * fetch. */
                    if (rc == SL_OK && total > 0 &&
                        slots[k].sl.len > remaining) {
                        if (slots[k].sl.fd >= 0)
                            close(slots[k].sl.fd);
                        slots[k].sl.fd = -1;
                        slots[k].sl.len = 0;
                    }
                    if (rc == SL_OK)
                        fetch_copy_small(&slots[k]);
                } else if (fp->fetch_offset < ph.log_start_offset ||
                           fp->fetch_offset > ph.log_end_offset) {
                    rc = SL_ERR_OFFSET_OUT_OF_RANGE;
                }
            }
            if (rc != SL_OK) {
                ph.error = rc;
                any_err = 1;
                slots[k].sl.len = 0;
                slots[k].sl.fd = -1;
            }
            ph.records_len = slots[k].sl.len;
            total += slots[k].sl.len;
            remaining -=
                slots[k].sl.len < remaining ? slots[k].sl.len : remaining;
            slots[k].split = sl_fetch_resp_part(&e, &ph, 1);
        }
    }
    rc = sl_resp_enc_finish(&e);
    if (!final && !any_err && total < q->min_bytes && rc == SL_OK)
        goto out; /* wait for more */
    sent = 1;
    if (rc != SL_OK) {
        sl_reply_error(x->r, rc, "FETCH: cannot encode the reply");
        goto out;
    }
    for (k = 0; k < nslots; k++) {
        if (slots[k].sl.len == 0)
            continue;
        sl_reply_add(x->r, wb.p + prev, slots[k].split - prev);
        prev = slots[k].split;
        if (slots[k].copy) {
            sl_reply_add(x->r, slots[k].copy, slots[k].sl.len);
            continue;
        }
        /* sl_reply_add_file owns the fd from here, also on error */
        sl_reply_add_file(x->r, slots[k].sl.fd, slots[k].sl.file_pos,
                          slots[k].sl.len);
        slots[k].sl.fd = -1;
    }
    sl_reply_add(x->r, wb.p + prev, wb.len - prev);
    sl_reply_done(x->r);
out:
    for (k = 0; k < nslots; k++) {
        if (slots[k].sl.fd >= 0)
            close(slots[k].sl.fd);
        free(slots[k].copy);
    }
    free(slots);
    sl_wb_fini(&wb);
    return sent;
}

static void fetch_watch_cb(void *arg, int timed_out)
{
    fetch_ctx *x = arg;
    if (fetch_try(x, timed_out || sl_broker_stopping(x->b)))
        fetch_ctx_free(x);
}

static void fetch_cancel(void *arg)
{
    fetch_ctx_free(arg);
}

static void h_fetch(sl_broker *b, sl_conn *c, const sl_req *req, sl_reply *r)
{
    fetch_ctx *x = calloc(1, sizeof(*x));
    sl_err rc;

    if (!x) {
        sl_reply_error(r, SL_ERR_NOMEM, "out of memory");
        return;
    }
    x->b = b;
    x->c = c;
    x->r = r;
    x->corr = req->correlation_id;
    sl_arena_init(&x->a);
    if (sl_fetch_req_decode(req->body, req->len, &x->a, &x->q) != SL_OK) {
        sl_bin_malformed(c, r, "FETCH");
        fetch_ctx_free(x);
        return;
    }
    /* the names borrow the frame, which goes away after this call */
    for (uint32_t t = 0; t < x->q.ntopics; t++)
        x->q.topics[t].topic = sl_bin_arena_str(&x->a, x->q.topics[t].topic);
    if (x->q.replica_id) {
        if (!b->replica_fetch) {
            sl_reply_error(r, SL_ERR_INVALID_ARG,
                           "FETCH version 2 is a follower's fetch; this "
                           "broker is not in a cluster");
            fetch_ctx_free(x);
            return;
        }
        b->replica_fetch(b, &x->q);
    }
    if (fetch_try(x, x->q.max_wait_ms == 0 || b->stopping)) {
        fetch_ctx_free(x);
        return;
    }
    rc = sl_ops_watch_new(b, x->q.max_wait_ms, fetch_watch_cb, x, &x->watch);
    for (uint32_t t = 0; rc == SL_OK && t < x->q.ntopics; t++) {
        char name[SL_TOPIC_NAME_MAX + 1];
        if (sl_bin_topic_cstr(x->q.topics[t].topic, name, sizeof(name)) !=
            SL_OK)
            continue;
        for (uint32_t p = 0; rc == SL_OK && p < x->q.topics[t].nparts; p++)
            rc = sl_ops_watch_add(x->watch, name,
                                  (int32_t)x->q.topics[t].parts[p].partition);
    }
    if (rc != SL_OK) {
        fetch_try(x, 1);
        fetch_ctx_free(x);
        return;
    }
    sl_reply_set_cancel(r, fetch_cancel, x);
}

/* ---- 7 LIST_OFFSETS
 * ------------------------------------------------------------- */

static void h_list_offsets(sl_broker *b, sl_conn *c, const sl_req *req,
                           sl_reply *r)
{
    sl_arena a;
    sl_wb wb;
    sl_list_offsets_req q;
    sl_list_offsets_resp s;

    sl_arena_init(&a);
    sl_wb_init(&wb, 256);
    if (sl_list_offsets_req_decode(req->body, req->len, &a, &q) != SL_OK) {
        sl_bin_malformed(c, r, "LIST_OFFSETS");
        goto out;
    }
    memset(&s, 0, sizeof(s));
    s.ntopics = q.ntopics;
    s.topics = sl_arena_alloc(&a, sizeof(sl_lo_topic_resp) * (q.ntopics + 1));
    if (!s.topics) {
        sl_reply_error(r, SL_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (uint32_t t = 0; t < q.ntopics; t++) {
        sl_lo_topic *lt = &q.topics[t];
        sl_lo_topic_resp *rt = &s.topics[t];
        char name[SL_TOPIC_NAME_MAX + 1];
        sl_err trc = sl_bin_topic_cstr(lt->topic, name, sizeof(name));

        rt->topic = lt->topic;
        rt->nparts = lt->nparts;
        rt->parts =
            sl_arena_alloc(&a, sizeof(sl_lo_part_resp) * (lt->nparts + 1));
        if (!rt->parts) {
            sl_reply_error(r, SL_ERR_NOMEM, "out of memory");
            goto out;
        }
        for (uint32_t p = 0; p < lt->nparts; p++) {
            int64_t off = -1;
            sl_err rc = trc;
            if (rc == SL_OK)
                rc =
                    sl_ops_list_offset(b, name, (int32_t)lt->parts[p].partition,
                                       lt->parts[p].timestamp, &off);
            rt->parts[p].partition = lt->parts[p].partition;
            rt->parts[p].error = rc;
            rt->parts[p].offset = rc == SL_OK ? off : -1;
        }
    }
    sl_bin_reply_wb(r, &wb,
                    sl_list_offsets_resp_encode(&wb, req->correlation_id, &s),
                    "LIST_OFFSETS");
out:
    sl_wb_fini(&wb);
    sl_arena_fini(&a);
}

void sl_binary_fetch_register(sl_broker *b)
{
    sl_binary_register(b, SL_API_FETCH, 1, 3, h_fetch);
    sl_binary_register(b, SL_API_LIST_OFFSETS, 1, 1, h_list_offsets);
}
