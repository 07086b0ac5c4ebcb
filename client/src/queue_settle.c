/*
 * queue_settle.c - a sluice_queue_consumer's settlements: ack, nack,
 * reject (coalesced into ranges by ackr.c and written in batches without
 * waiting, queue.c's essay), flush, touch and the count of held records.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/src/queue_int.h"

/* Encode and write the pending settlements (no waiting for replies). */
sl_err sl_qc_send_settlements(sluice_queue_consumer *q)
{
    static const uint16_t apis[SL_ACKR__N] = {
        SL_API_QUEUE_ACK, SL_API_QUEUE_NACK, SL_API_QUEUE_REJECT};
    sl_qsettle_req req;
    size_t items;
    uint32_t corr;
    sl_err rc;
    int op;

    if (sl_ackr_pending(&q->ackr) == 0)
        return SL_OK;
    rc = sl_qc_ensure_conn(q);
    if (rc != SL_OK)
        return rc;
    for (op = 0; op < SL_ACKR__N; op++) {
        if (q->ackr.n[op] == 0)
            continue;
        sl_arena_reset(&q->arena);
        memset(&req, 0, sizeof(req));
        req.group = sl_str_c(q->group);
        req.topic = sl_str_c(q->topic);
        req.consumer_id = sl_str_c(q->consumer_id);
        rc = sl_ackr_take(&q->ackr, op, &q->arena, &req.parts, &req.nparts,
                          &items);
        if (rc != SL_OK)
            return sl_cl_fail(rc, "settle");
        if (q->npend == q->pend_cap) {
            size_t ncap = q->pend_cap ? q->pend_cap * 2 : 16;
            pending *n = realloc(q->pend, ncap * sizeof(*n));
            if (!n)
                return sl_cl_fail(SL_ERR_NOMEM, "settle");
            q->pend = n;
            q->pend_cap = ncap;
        }
        corr = sl_cl_conn_corr(&q->conn);
        rc = sl_qsettle_req_encode(&q->conn.out, apis[op], corr, &req);
        if (rc != SL_OK)
            return sl_cl_fail(rc, "settle");
        q->pend[q->npend].corr = corr;
        q->pend[q->npend].api = apis[op];
        q->pend[q->npend].items = items;
        q->npend++;
    }
    rc = sl_cl_conn_write(&q->conn, sl_cl_deadline(q->cfg.request_timeout_ms));
    if (rc != SL_OK)
        sl_qc_on_disconnect(q, rc);
    return rc;
}

static sluice_err settle(sluice_queue_consumer *qc, int op, int32_t partition,
                         int64_t offset, int64_t delay_ms, const char *reason)
{
    sl_err rc;
    if (partition < 0 || offset < 0)
        return (sluice_err)sl_cl_fail(SL_ERR_INVALID_ARG,
                                      "settle: partition %d offset %lld",
                                      (int)partition, (long long)offset);
    if (delay_ms > INT32_MAX)
        delay_ms = INT32_MAX;
    if (delay_ms < -1)
        delay_ms = -1;
    pthread_mutex_lock(&qc->mu);
    rc = sl_ackr_add(&qc->ackr, op, partition, offset, (int32_t)delay_ms,
                     reason, sl_cl_now_ms());
    if (rc != SL_OK)
        rc = sl_cl_fail(rc, "settle");
    else
        sl_qc_held_remove(qc, partition, offset);
    if (rc == SL_OK && sl_ackr_pending(&qc->ackr) >= sl_qc_ack_batch(qc))
        sl_qc_send_settlements(qc); /* failures surface in flush */
    pthread_mutex_unlock(&qc->mu);
    return (sluice_err)rc;
}

sluice_err sluice_queue_consumer_ack(sluice_queue_consumer *qc,
                                     int32_t partition, int64_t offset)
{
    return settle(qc, SL_ACKR_ACK, partition, offset, 0, NULL);
}

sluice_err sluice_queue_consumer_nack(sluice_queue_consumer *qc,
                                      int32_t partition, int64_t offset,
                                      int64_t delay_ms)
{
    return settle(qc, SL_ACKR_NACK, partition, offset, delay_ms, NULL);
}

sluice_err sluice_queue_consumer_reject(sluice_queue_consumer *qc,
                                        int32_t partition, int64_t offset,
                                        const char *reason)
{
    return settle(qc, SL_ACKR_REJECT, partition, offset, 0, reason);
}

/* Wait until every settlement reply is in. */
sl_err sl_qc_wait_settled(sluice_queue_consumer *q, int64_t deadline)
{
    sl_err rc = SL_OK;
    while (q->npend && rc == SL_OK)
        rc = sl_qc_pump(q, deadline);
    if (rc == SL_ERR_TIMEOUT)
        rc = sl_cl_fail(rc, "flush: %zu settlement replies outstanding",
                        q->npend);
    return rc;
}

sluice_err sluice_queue_consumer_flush(sluice_queue_consumer *qc,
                                       int timeout_ms)
{
    sl_err rc;
    sl_cl_clear_err();
    pthread_mutex_lock(&qc->mu);
    rc = sl_qc_send_settlements(qc);
    if (rc == SL_OK)
        rc = sl_qc_wait_settled(qc, sl_cl_deadline(timeout_ms));
    if (rc == SL_OK && qc->first_err != SL_OK) {
        rc = sl_cl_fail(qc->first_err, "%s (%zu failed)", qc->first_err_msg,
                        qc->nfailed);
    }
    qc->first_err = SL_OK;
    qc->nfailed = 0;
    pthread_mutex_unlock(&qc->mu);
    return (sluice_err)rc;
}

sluice_err sluice_queue_consumer_touch(sluice_queue_consumer *qc,
                                       int32_t partition, int64_t offset,
                                       int64_t lock_ms, int64_t *deadline)
{
    sl_qsettle_req req;
    sl_qsettle_part part;
    sl_qrange range;
    sl_qsettle_resp resp;
    sl_chunk *fr = NULL;
    const uint8_t *body;
    size_t len;
    uint32_t corr, rcorr;
    int64_t dl = sl_cl_deadline(qc->cfg.request_timeout_ms);
    sl_err rc;

    sl_cl_clear_err();
    pthread_mutex_lock(&qc->mu);
    rc = sl_qc_send_settlements(qc);
    if (rc != SL_OK)
        goto out;
    memset(&range, 0, sizeof(range));
    range.first = range.last = offset;
    range.extend_ms = (uint32_t)(lock_ms > 0 ? lock_ms : 0);
    part.partition = (uint32_t)partition;
    part.nranges = 1;
    part.ranges = &range;
    memset(&req, 0, sizeof(req));
    req.group = sl_str_c(qc->group);
    req.topic = sl_str_c(qc->topic);
    req.consumer_id = sl_str_c(qc->consumer_id);
    req.nparts = 1;
    req.parts = &part;
    corr = sl_cl_conn_corr(&qc->conn);
    rc = sl_qsettle_req_encode(&qc->conn.out, SL_API_QUEUE_TOUCH, corr, &req);
    if (rc != SL_OK) {
        rc = sl_cl_fail(rc, "touch");
        goto out;
    }
    rc = sl_cl_conn_write(&qc->conn, dl);
    for (;;) {
        if (rc != SL_OK)
            break;
        fr = NULL;
        rc = sl_cl_conn_read(&qc->conn, dl, &fr);
        if (rc != SL_OK)
            break;
        sl_frame_body(fr, &len, &rcorr);
        if (rcorr == corr)
            break;
        sl_qc_handle_frame(qc, fr);
        sl_chunk_unref(fr);
        fr = NULL;
    }
    if (rc != SL_OK) {
        if (rc != SL_ERR_TIMEOUT)
            sl_qc_on_disconnect(qc, rc);
        goto out;
    }
    body = sl_frame_body(fr, &len, &rcorr);
    rc = sl_cl_resp_check(body, len, "touch");
    if (rc != SL_OK)
        goto out;
    sl_arena_reset(&qc->arena);
    rc = sl_qsettle_resp_decode(body, len, &qc->arena, &resp);
    if (rc != SL_OK) {
        rc = sl_cl_bad_reply(rc, "touch");
        goto out;
    }
    if (resp.nparts == 1 && resp.parts[0].nranges == 1 &&
        resp.parts[0].ranges[0].error != SL_OK) {
        rc = sl_cl_fail((sl_err)resp.parts[0].ranges[0].error,
                        "touch topic '%s' partition %d offset %lld", qc->topic,
                        (int)partition, (long long)offset);
        goto out;
    }
    if (deadline) /* the reply does not carry it: computed here */
        *deadline = lock_ms > 0 ? sl_cl_wall_ms() + lock_ms : 0;
out:
    sl_chunk_unref(fr);
    pthread_mutex_unlock(&qc->mu);
    return (sluice_err)rc;
}

size_t sluice_queue_consumer_held(sluice_queue_consumer *qc)
{
    size_t n;
    pthread_mutex_lock(&qc->mu);
    n = qc->held;
    pthread_mutex_unlock(&qc->mu);
    return n;
}
