/*
 * stomp_send.c - SEND, and transactions (BEGIN, COMMIT, ABORT).
 *
 * SEND appends a one-record batch (key = JMSXGroupID, value = body,
 * headers = the frame's headers minus the protocol ones) with
 * sl_ops_append, to the partition of its key or round-robin over the
 * topic's partitions. Consecutive SENDs to the same partition within one
 * read are coalesced into one batch (one write(2), one CRC), cut at
 * BATCH_CUT_BYTES, and appended before any other frame is handled
 * (stomp.c). A receipt for a persistent SEND is answered after
 * sl_ops_wait_durable says the batch is fsynced; for a non-persistent one
 * once it is appended.
 *
 * A reply-to naming /temp-queue/X creates and subscribes this session's
 * temp queue (stomp_sub.c) and is rewritten to the queue's real name.
 *
 * A transaction buffers its SENDs (a flat copy each, bounded by
 * stomp-max-tx-bytes) and its ACK/NACKs. COMMIT appends the SENDs (one
 * batch per partition, in order of first use), settles the ACK/NACKs,
 * then answers the COMMIT's receipt once all of it is durable. ABORT drops
 * them. The receipt of a frame inside a transaction is answered when the
 * frame is received and buffered (as ActiveMQ and RabbitMQ do: a client
 * such as Net::Stomp waits for it before it sends COMMIT), so it does not
 * mean stored; the COMMIT's receipt does.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/config.h"
#include "broker/stomp_int.h"
#include "protocol/hash.h"

/* Coalesced SEND batches are cut at this size. */
#define BATCH_CUT_BYTES (256u * 1024)

/* ---- SEND batches -------------------------------------------------------- */

/* Append the coalesced batch, if any. Receipts attached to it complete
 * when it is appended (non-persistent) or fsynced (persistent). */
sl_err stomp_batch_flush(stomp_conn *c)
{
    const uint8_t *bp;
    size_t blen;
    int64_t base = 0, next = 0;
    sl_wait *w = c->bb_w;
    sl_err rc;
    if (!c->bb_active)
        return SL_OK;
    c->bb_active = 0;
    c->bb_w = NULL;
    rc = sl_bb_finish(&c->bb, &bp, &blen);
    if (rc == SL_OK)
        /* without a receipt that waits for the fsync, the batch starts
         * no round of its own (flush-lazy-ms) */
        rc = (w && c->bb_durable ? sl_ops_append : sl_ops_append_lazy)(
            c->s->b, c->bb_topic, c->bb_part, SL_OPS_AUTO_CREATE, (uint8_t *)bp,
            blen, &base, &next);
    if (rc == SL_ERR_NOT_LEADER) {
        /* cluster: another node leads the partition; the receipt comes
         * with the leader's answer (docs/cluster.md 5.1) */
        if (w)
            sl_wait_hold(w);
        rc = sl_ops_forward_append(c->s->b, c->bb_topic, c->bb_part, bp, blen,
                                   w && c->bb_durable, w ? stomp_wait_cb : NULL,
                                   w);
        if (rc != SL_OK && w)
            sl_wait_release(w, SL_OK); /* the failure is reported below */
        else if (w) {
            sl_bb_reset(&c->bb);
            sl_wait_built(w);
            sl_wait_unref(w);
            return SL_OK;
        }
    }
    sl_bb_reset(&c->bb);
    if (rc != SL_OK) {
        sl_log(SL_WARN, STOMP_SUBSYS, "peer %s: append to %s/%d failed: %s",
               c->peer, c->bb_topic, c->bb_part, sl_strerror(rc));
        if (w) {
            sl_wait_set_what(w, "SEND to topic %s", c->bb_topic);
            sl_wait_fail(w, rc);
            sl_wait_built(w);
            sl_wait_unref(w);
        } else {
            char d[400];
            snprintf(d, sizeof(d), "SEND to topic %s: %s", c->bb_topic,
                     sl_strerror(rc));
            stomp_send_error(c, NULL, "message not stored", d);
        }
        return rc;
    }
    if (w) {
        if (c->bb_durable) {
            sl_ops_wait *ow = NULL;
            sl_wait_hold(w);
            rc = sl_ops_wait_durable(c->s->b, c->bb_topic, c->bb_part, next,
                                     stomp_wait_cb, w, &ow);
            if (rc != SL_OK || !ow)
                sl_wait_release(w, rc); /* no callback will come */
        }
        sl_wait_built(w); /* drop the "being built" count */
        sl_wait_unref(w); /* batch's reference */
    }
    return SL_OK;
}

static int is_protocol_header(const char *n)
{
    static const char *const skip[] = {
        "destination", "receipt",      "transaction", "content-length",
        "message-id",  "subscription", "ack",         "redelivered",
        NULL};
    size_t i;
    for (i = 0; skip[i]; i++) {
        if (strcmp(n, skip[i]) == 0)
            return 1;
    }
    return 0;
}

/* The record headers of a SEND: every header but the protocol ones, first
 * occurrence only. *out is malloc'd (caller frees); values borrow from f,
 * except reply-to and the scheduled-delay translation, which use bufs. */
static sl_err send_headers(stomp_conn *c, const sl_stomp_frame *f,
                           const char *reply_to, char *nb_buf, size_t nbl,
                           sl_header **out, size_t *nout)
{
    sl_header *h = calloc(f->header_count + 2, sizeof(*h));
    size_t n = 0;
    uint32_t i, j;
    if (!h)
        return SL_ERR_NOMEM;
    for (i = 0; i < f->header_count; i++) {
        const sl_stomp_header *sh = &f->headers[i];
        int dup = 0;
        if (is_protocol_header(sh->name))
            continue;
        for (j = 0; j < i; j++) {
            if (f->headers[j].name_len == sh->name_len &&
                memcmp(f->headers[j].name, sh->name, sh->name_len) == 0)
                dup = 1;
        }
        if (dup)
            continue; /* repeated header: the first counts */
        h[n].key = sh->name;
        h[n].key_len = sh->name_len;
        if (reply_to && strcmp(sh->name, "reply-to") == 0) {
            h[n].value = reply_to;
            h[n].value_len = strlen(reply_to);
        } else {
            h[n].value = sh->value;
            h[n].value_len = sh->value_len;
        }
        if (strcmp(sh->name, "AMQ_SCHEDULED_DELAY") == 0 &&
            !sl_stomp_frame_get(f, HDR_DELAY_MS)) {
            int ok;
            int64_t d = parse_i64(sh->value, &ok);
            if (ok && d > 0) {
                int l = snprintf(nb_buf, nbl, "%" PRId64, d);
                n++;
                h[n].key = HDR_DELAY_MS;
                h[n].key_len = strlen(HDR_DELAY_MS);
                h[n].value = nb_buf;
                h[n].value_len = (size_t)l;
            }
        }
        /* RabbitMQ's per-message TTL (ms from now) */
        if (strcmp(sh->name, "expiration") == 0 &&
            !sl_stomp_frame_get(f, HDR_TTL_MS)) {
            int ok;
            int64_t t = parse_i64(sh->value, &ok);
            if (ok && t >= 0) {
                n++;
                h[n].key = HDR_TTL_MS;
                h[n].key_len = strlen(HDR_TTL_MS);
                h[n].value = sh->value;
                h[n].value_len = sh->value_len;
            }
        }
        n++;
    }
    *out = h;
    *nout = n;
    return SL_OK;
}

/* ---- transactions -------------------------------------------------------- */

stomp_tx *stomp_tx_find(stomp_conn *c, const char *id)
{
    stomp_tx *t;
    for (t = c->txs; t; t = t->next) {
        if (strcmp(t->id, id) == 0)
            return t;
    }
    return NULL;
}

static void tx_op_free(tx_op *o)
{
    free(o->rec);
    free(o->hdrs);
    free(o->msgid);
    free(o->subid);
    free(o);
}

void stomp_tx_free(stomp_tx *t)
{
    tx_op *o, *n;
    for (o = t->ops; o; o = n) {
        n = o->next;
        tx_op_free(o);
    }
    free(t->id);
    free(t);
}

static void tx_unlink(stomp_conn *c, stomp_tx *t)
{
    stomp_tx **pp;
    for (pp = &c->txs; *pp; pp = &(*pp)->next) {
        if (*pp == t) {
            *pp = t->next;
            return;
        }
    }
}

void stomp_tx_push(stomp_tx *t, tx_op *o)
{
    if (t->ops_tail)
        t->ops_tail->next = o;
    else
        t->ops = o;
    t->ops_tail = o;
}

/* Copy a SEND into the transaction (one flat allocation for key, body and
 * header strings). */
static sl_err tx_add_send(stomp_tx *t, const char *topic, int32_t part,
                          const char *key, const sl_stomp_frame *f,
                          const sl_header *h, size_t nh)
{
    tx_op *o = calloc(1, sizeof(*o));
    size_t total = 0, i, kl = key ? strlen(key) : 0;
    uint8_t *w;
    if (!o)
        return SL_ERR_NOMEM;
    for (i = 0; i < nh; i++)
        total += h[i].key_len + h[i].value_len;
    total += kl + f->body_len + 1;
    o->rec = malloc(total);
    o->hdrs = calloc(nh ? nh : 1, sizeof(*o->hdrs));
    if (!o->rec || !o->hdrs) {
        tx_op_free(o);
        return SL_ERR_NOMEM;
    }
    o->cmd = SL_STOMP_SEND;
    snprintf(o->topic, sizeof(o->topic), "%s", topic);
    o->partition = part;
    w = o->rec;
    o->has_key = key != NULL;
    o->key_len = kl;
    memcpy(w, key ? key : "", kl);
    w += kl;
    o->body_len = f->body_len;
    if (f->body_len)
        memcpy(w, f->body, f->body_len);
    w += f->body_len;
    for (i = 0; i < nh; i++) {
        memcpy(w, h[i].key, h[i].key_len);
        o->hdrs[i].key = (const char *)w;
        o->hdrs[i].key_len = h[i].key_len;
        w += h[i].key_len;
        memcpy(w, h[i].value, h[i].value_len);
        o->hdrs[i].value = w;
        o->hdrs[i].value_len = h[i].value_len;
        w += h[i].value_len;
    }
    o->nhdrs = nh;
    stomp_tx_push(t, o);
    t->bytes += total + nh * sizeof(sl_header);
    return SL_OK;
}

/* A SEND to a temp queue of another node (relay.c). */
static void send_remote_temp(stomp_conn *c, const sl_stomp_frame *f,
                             const dest *d, stomp_tx *t, const char *reply_to,
                             const char *receipt)
{
    int32_t node = stomp_relay_temp_owner(c->s, d->name);
    char why[300], dst[SL_TOPIC_NAME_MAX + 16];
    sl_wait *w;
    sl_err rc;
    if (t) {
        snprintf(why, sizeof(why),
                 "%.100s is a temp queue of node %d: a SEND to it cannot be "
                 "part of a transaction on another node",
                 d->name, (int)node);
        stomp_send_error(c, receipt, "Invalid destination", why);
        return;
    }
    if (stomp_batch_flush(c) != SL_OK)
        return; /* its error is sent */
    snprintf(dst, sizeof(dst), "/queue/%s", d->name);
    w = receipt ? sl_wait_new(c->conn) : NULL;
    rc = node > 0 ? stomp_relay_send(c, node, dst, f, reply_to, w)
                  : SL_ERR_DISCONNECTED;
    if (rc != SL_OK) {
        if (w) {
            sl_wait_built(w);
            sl_wait_unref(w);
        }
        snprintf(why, sizeof(why),
                 "%.100s is a temp queue of node %d, which cannot be reached "
                 "now: %s",
                 d->name, (int)node, sl_strerror(rc));
        stomp_send_error(c, receipt, "message not stored", why);
        return;
    }
    stomp_owe_receipt(c, receipt, w);
    if (w) {
        sl_wait_built(w);
        sl_wait_unref(w);
    }
}

void stomp_h_send(stomp_conn *c, const sl_stomp_frame *f)
{
    const char *dv = sl_stomp_frame_value(f, "destination");
    const char *txid = sl_stomp_frame_value(f, "transaction");
    const char *receipt = RECEIPT(f);
    const char *key = sl_stomp_frame_value(f, "JMSXGroupID");
    const char *pers = sl_stomp_frame_value(f, "persistent");
    const char *rt = sl_stomp_frame_value(f, "reply-to");
    char why[512], rtbuf[SL_TOPIC_NAME_MAX + 32], nb[32];
    const char *reply_to = NULL;
    sl_header *h = NULL;
    size_t nh = 0;
    int32_t np = 0, part;
    dest d;
    sl_err rc;
    stomp_tx *t = NULL;

    if (stomp_dest_resolve(c, dv, &d, why, sizeof(why)) != SL_OK) {
        stomp_send_error(c, receipt, d.err, why);
        return;
    }
    if (d.kind == DEST_TOPIC && d.wildcard) {
        snprintf(why, sizeof(why),
                 "cannot SEND to a wildcard destination '%.100s'", dv);
        stomp_send_error(c, receipt, "Invalid destination", why);
        return;
    }
    if (sl_acl_stomp_send(c->s->b, c->conn, d.name, d.kind == DEST_TEMP, why,
                          sizeof(why)) != SL_OK) {
        stomp_send_error(c, receipt, "access refused", why);
        return;
    }
    if (txid) {
        t = stomp_tx_find(c, txid);
        if (!t) {
            snprintf(why, sizeof(why), "SEND in unknown transaction '%.100s'",
                     txid);
            stomp_send_error(c, receipt, "Bad transaction", why);
            return;
        }
    }
    /* request/reply: a temp queue in reply-to is created, subscribed
     * (auto ack, subscription = the temp-queue name) and rewritten */
    if (rt && strncmp(rt, "/temp-queue/", 12) == 0) {
        dest td;
        if (stomp_dest_resolve(c, rt, &td, why, sizeof(why)) != SL_OK) {
            stomp_send_error(c, receipt, "Invalid header", why);
            return;
        }
        if (!stomp_sub_find(c, rt)) {
            stomp_sub *s;
            rc = stomp_sub_create(c, rt, rt, &td, ACK_AUTO,
                                  c->s->cfg->stomp_prefetch, NULL, NULL, why,
                                  sizeof(why), &s);
            if (rc != SL_OK) {
                stomp_send_error(c, receipt, "cannot create temp queue", why);
                return;
            }
            stomp_sub_link(c, s);
            stomp_sub_pump(s);
        }
        snprintf(rtbuf, sizeof(rtbuf), "/queue/%s", td.name);
        reply_to = rtbuf;
    }
    if (d.kind == DEST_QUEUE && stomp_relay_temp_owner(c->s, d.name)) {
        /* cluster: another node's temp queue (a reply): sent there */
        send_remote_temp(c, f, &d, t, reply_to, receipt);
        return;
    }
    rc = stomp_dest_topic(c, &d, &np);
    if (rc != SL_OK || np < 1) {
        snprintf(why, sizeof(why), "destination %.100s: %s", dv,
                 sl_strerror(rc != SL_OK ? rc : SL_ERR_UNKNOWN_TOPIC));
        stomp_send_error(c, receipt, "Invalid destination", why);
        return;
    }
    if (key && np > 1) {
        part = sl_partition_for_key(key, strlen(key), np);
    } else {
        part = np > 1 ? (int32_t)(c->rr++ % (uint32_t)np) : 0;
    }
    if (send_headers(c, f, reply_to, nb, sizeof(nb), &h, &nh) != SL_OK) {
        stomp_send_error(c, receipt, "out of memory", NULL);
        return;
    }
    if (t) {
        if (t->bytes + f->body_len > (size_t)c->s->cfg->stomp_max_tx_bytes) {
            snprintf(why, sizeof(why),
                     "transaction '%.100s' exceeds %" PRId64
                     " bytes (stomp-max-tx-bytes)",
                     txid, c->s->cfg->stomp_max_tx_bytes);
            stomp_send_error(c, receipt, "transaction too large", why);
        } else if (tx_add_send(t, d.name, part, key, f, h, nh) != SL_OK) {
            stomp_send_error(c, receipt, "out of memory", NULL);
        } else {
            /* the receipt says "received", as ActiveMQ and RabbitMQ
             * answer it: Net::Stomp's send_transactional waits for it
             * before it sends COMMIT */
            stomp_owe_receipt(c, receipt, NULL);
        }
        free(h);
        return;
    }
    /* coalesce with the batch being built when it is the same partition */
    if (c->bb_active &&
        (strcmp(c->bb_topic, d.name) != 0 || c->bb_part != part ||
         sl_bb_size(&c->bb) > BATCH_CUT_BYTES)) {
        if (stomp_batch_flush(c) != SL_OK) {
            free(h);
            return;
        }
    }
    if (!c->bb_active) {
        c->bb_active = 1;
        snprintf(c->bb_topic, sizeof(c->bb_topic), "%s", d.name);
        c->bb_part = part;
        c->bb_durable = 0;
    }
    rc = sl_bb_add(&c->bb, sl_now_ms(), key, key ? strlen(key) : 0, f->body,
                   f->body_len, h, nh);
    free(h);
    if (rc != SL_OK) {
        stomp_send_error(c, receipt, "out of memory", NULL);
        return;
    }
    if (stomp_header_bool(pers, 0))
        c->bb_durable = 1;
    if (receipt) {
        if (!c->bb_w) {
            c->bb_w = sl_wait_new(c->conn);
            if (!c->bb_w) {
                stomp_send_error(c, receipt, "out of memory", NULL);
                return;
            }
        }
        stomp_owe_receipt(c, receipt, c->bb_w);
    }
}

void stomp_h_begin(stomp_conn *c, const sl_stomp_frame *f)
{
    const char *txid = sl_stomp_frame_value(f, "transaction");
    const char *receipt = RECEIPT(f);
    char why[256];
    stomp_tx *t;
    if (!txid) {
        stomp_send_error(c, receipt, "Missing header",
                         "missing transaction header: BEGIN needs one");
        return;
    }
    if (stomp_tx_find(c, txid)) {
        snprintf(why, sizeof(why),
                 "duplicate transaction '%.100s': it is already open", txid);
        stomp_send_error(c, receipt, "Bad transaction", why);
        return;
    }
    t = calloc(1, sizeof(*t));
    if (!t || !(t->id = strdup(txid))) {
        free(t);
        stomp_send_error(c, receipt, "out of memory", NULL);
        return;
    }
    t->next = c->txs;
    c->txs = t;
    stomp_owe_receipt(c, receipt, NULL);
}

/* COMMIT: append the transaction's SENDs (one batch per partition, in
 * order of first use), settle its ACK/NACKs, then answer the receipts of
 * its frames and of the COMMIT once all of it is durable. */
void stomp_h_commit(stomp_conn *c, const sl_stomp_frame *f, int abort)
{
    const char *txid = sl_stomp_frame_value(f, "transaction");
    const char *receipt = RECEIPT(f);
    char why[512];
    stomp_tx *t;
    sl_wait *w;
    tx_op *o, *p;
    int queue = 0;
    sl_err rc = SL_OK;
    if (!txid) {
        stomp_send_error(c, receipt, "Missing header",
                         abort ? "missing transaction header: ABORT needs one"
                               : "missing transaction header: COMMIT needs "
                                 "one");
        return;
    }
    t = stomp_tx_find(c, txid);
    if (!t) {
        snprintf(why, sizeof(why),
                 "unknown transaction '%.100s': no open transaction of that "
                 "name",
                 txid);
        stomp_send_error(c, receipt, "Bad transaction", why);
        return;
    }
    tx_unlink(c, t);
    if (abort) {
        /* the buffered frames are dropped (their receipts were sent as
         * they came) */
        stomp_tx_free(t);
        stomp_owe_receipt(c, receipt, NULL);
        return;
    }
    w = sl_wait_new(c->conn);
    if (!w) {
        stomp_tx_free(t);
        stomp_send_error(c, receipt, "out of memory", NULL);
        return;
    }
    sl_wait_set_what(w, "COMMIT of transaction %s", txid);
    /* SENDs: for each not-yet-sent op, batch every later op of the same
     * partition with it */
    for (o = t->ops; o && rc == SL_OK; o = o->next) {
        sl_batch_builder bb;
        const uint8_t *bp;
        size_t blen;
        int64_t base, next;
        int fwd = 0;
        if (o->cmd != SL_STOMP_SEND || o->partition < 0)
            continue;
        sl_bb_init(&bb, SL_CODEC_NONE);
        for (p = o; p; p = p->next) {
            if (p->cmd != SL_STOMP_SEND || p->partition != o->partition ||
                strcmp(p->topic, o->topic) != 0)
                continue;
            rc = sl_bb_add(&bb, sl_now_ms(), p->has_key ? p->rec : NULL,
                           p->key_len, p->rec + p->key_len, p->body_len,
                           p->hdrs, p->nhdrs);
            if (p != o)
                p->partition = -1; /* done */
            if (rc != SL_OK)
                break;
        }
        if (rc == SL_OK)
            rc = sl_bb_finish(&bb, &bp, &blen);
        if (rc == SL_OK)
            rc = sl_ops_append(c->s->b, o->topic, o->partition,
                               SL_OPS_AUTO_CREATE, (uint8_t *)bp, blen, &base,
                               &next);
        if (rc == SL_ERR_NOT_LEADER) {
            /* cluster: another node leads it; the COMMIT's receipt waits
             * for that leader's durable ack (docs/cluster.md 5.1) */
            sl_wait_hold(w);
            rc = sl_ops_forward_append(c->s->b, o->topic, o->partition, bp,
                                       blen, 1, stomp_wait_cb, w);
            if (rc != SL_OK)
                sl_wait_release(w, SL_OK); /* the failure is reported below */
            else
                fwd = 1; /* no local durable wait */
        }
        if (fwd) {
            /* the leader's answer releases w */
        } else if (rc == SL_OK) {
            sl_ops_wait *ow = NULL;
            sl_wait_hold(w);
            rc = sl_ops_wait_durable(c->s->b, o->topic, o->partition, next,
                                     stomp_wait_cb, w, &ow);
            if (rc != SL_OK || !ow)
                sl_wait_release(w, SL_OK); /* no callback will come */
        } else {
            snprintf(why, sizeof(why),
                     "COMMIT of transaction %.60s: SEND "
                     "to %s: %s",
                     txid, o->topic, sl_strerror(rc));
        }
        o->partition = -1;
        sl_bb_fini(&bb);
    }
    if (rc != SL_OK) {
        /* appends are not undone; say so and close */
        sl_wait_built(w);
        sl_wait_unref(w);
        stomp_tx_free(t);
        stomp_send_error(c, receipt, "transaction failed", why);
        return;
    }
    for (o = t->ops; o; o = o->next) {
        if (o->cmd == SL_STOMP_SEND)
            continue;
        if (stomp_do_ack(c, o->cmd, o->msgid, o->subid, 0, o->requeue, w,
                         &queue) != SL_OK)
            sl_log(SL_INFO, STOMP_SUBSYS,
                   "peer %s session %s: COMMIT %s: %s of unknown message "
                   "%s ignored",
                   c->peer, c->session, txid,
                   o->cmd == SL_STOMP_ACK ? "ACK" : "NACK", o->msgid);
    }
    if (queue && srv_groups(c->s)) {
        sl_wait_hold(w);
        sl_groups_wait(srv_groups(c->s), stomp_wait_cb, w);
    }
    stomp_owe_receipt(c, receipt, w);
    sl_wait_built(w);
    sl_wait_unref(w);
    stomp_tx_free(t);
}
