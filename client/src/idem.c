/*
 * idem.c - the idempotent producer's id (docs/cluster.md section 4):
 * INIT_PRODUCER_ID on a short-lived connection of its own.
 *
 * Why a connection of its own: the producer's connections carry pipelined
 * PRODUCE requests whose replies must be matched to their batches, and
 * in a cluster there is one per leader (route.c). A separate connection
 * to any node of the bootstrap list (every node hands out ids unique in
 * the cluster) keeps this synchronous call out of that machinery. It is
 * made once per producer, and again only after a batch failed for good
 * (to get the next epoch): a connect and a handshake, about a millisecond
 * on loopback.
 */
#include "client/src/accum.h"
#include "client/src/conn.h"
#include "client/src/internal.h"
#include "protocol/api.h"

sl_err sl_cl_idem_init(const sl_cl_cfg *cfg, sl_accum *acc, int *off)
{
    sl_cl_conn c;
    sl_init_pid_req q;
    sl_init_pid_resp s;
    sl_chunk *fr = NULL;
    const uint8_t *body;
    size_t len;
    uint32_t corr, cc;
    sl_err rc;

    q.producer_id = acc->pid;
    q.producer_epoch = acc->epoch;
    sl_cl_conn_init(&c, cfg);
    rc = sl_cl_conn_ensure(&c);
    if (rc != SL_OK)
        goto out;
    corr = sl_cl_conn_corr(&c);
    rc = sl_init_pid_req_encode(&c.out, corr, &q);
    if (rc != SL_OK) {
        rc = sl_cl_fail(rc, "producer id");
        goto out;
    }
    rc =
        sl_cl_conn_call(&c, corr, sl_cl_deadline(cfg->request_timeout_ms), &fr);
    if (rc != SL_OK)
        goto out;
    body = sl_frame_body(fr, &len, &cc);
    rc = sl_init_pid_resp_decode(body, len, &s);
    if (rc != SL_OK) {
        rc = sl_cl_bad_reply(rc, "INIT_PRODUCER_ID");
    } else if (s.error == SL_ERR_UNSUPPORTED_API) {
        *off = 1; /* an older broker: this producer is not idempotent */
        sl_accum_set_producer(acc, -1, -1);
    } else if (s.error != SL_OK) {
        rc = sl_cl_fail((sl_err)s.error, "INIT_PRODUCER_ID: %.*s",
                        (int)s.error_msg.len,
                        s.error_msg.p ? s.error_msg.p : "");
    } else {
        sl_accum_set_producer(acc, s.producer_id, s.producer_epoch);
    }
out:
    sl_chunk_unref(fr);
    sl_cl_conn_fini(&c);
    return rc;
}
