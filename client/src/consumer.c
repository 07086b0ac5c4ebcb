/*
 * consumer.c - sluice_consumer: stream consumption with assign or group
 * subscribe, seek by offset or time, pipelined fetches, commit. This file
 * holds the public calls and the request plumbing; consumer_fetch.c the
 * fetch pipeline and its routing, consumer_offsets.c the positions (list
 * offsets, seek, watermarks), consumer_group.c the group membership and
 * commits; consumer_int.h the structure they share.
 *
 * Groups: GROUP_JOIN returns this member's assignment; positions start at
 * the committed offsets (OFFSET_FETCH), else auto.offset.reset. Heartbeats
 * are sent from poll every heartbeat interval; a heartbeat answered with
 * SLUICE_ERR_REBALANCE or _UNKNOWN_MEMBER makes the next poll rejoin
 * (committing positions first when enable.auto.commit is set).
 */
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/src/conn.h"
#include "client/src/consumer_int.h"
#include "client/src/cursor.h"
#include "client/src/internal.h"
#include "client/src/route.h"
#include "protocol/api.h"

/* ---- helpers ---------------------------------------------------------- */

static void clear_buffers(sluice_consumer *c)
{
    fbuf *b, *n;
    for (b = c->bhead; b; b = n) {
        n = b->next;
        sl_cursor_fini(&b->cu);
        free(b);
    }
    c->bhead = c->btail = NULL;
    c->buffered_bytes = 0;
}

/* Positions changed: forget prefetched data and the fetch in flight. */
void sl_cons_reset_pipeline(sluice_consumer *c)
{
    size_t i;
    clear_buffers(c);
    c->gen++;
    for (i = 0; i < c->nparts; i++)
        c->parts[i].fetch_pos = c->parts[i].position;
}

void sl_cons_clear_parts(sluice_consumer *c)
{
    size_t i;
    for (i = 0; i < c->nparts; i++)
        free(c->parts[i].topic);
    c->nparts = 0;
    sl_cons_reset_pipeline(c);
}

int sl_cons_find_part(sluice_consumer *c, const char *topic, int32_t part)
{
    size_t i;
    for (i = 0; i < c->nparts; i++)
        if (c->parts[i].partition == part &&
            strcmp(c->parts[i].topic, topic) == 0)
            return (int)i;
    return -1;
}

sl_err sl_cons_add_part(sluice_consumer *c, const char *topic, size_t tlen,
                        int32_t part, int64_t offset)
{
    cpart *cp;
    if (c->nparts == c->pcap) {
        size_t ncap = c->pcap ? c->pcap * 2 : 16;
        cpart *n = realloc(c->parts, ncap * sizeof(*n));
        if (!n)
            return sl_cl_fail(SL_ERR_NOMEM, "assign");
        c->parts = n;
        c->pcap = ncap;
    }
    cp = &c->parts[c->nparts];
    cp->topic = strndup(topic, tlen);
    if (!cp->topic)
        return sl_cl_fail(SL_ERR_NOMEM, "assign");
    cp->partition = part;
    cp->position = offset;
    cp->fetch_pos = offset;
    cp->committed = -1;
    c->nparts++;
    c->rt_stale = 1; /* where does it live? */
    return SL_OK;
}

/* Send what is in on->out (one request with corr) and wait for its reply,
 * dispatching other replies (fetch, heartbeat) meanwhile. */
sl_err sl_cons_call_on(sluice_consumer *c, sl_cl_conn *on, uint32_t corr,
                       sl_chunk **out)
{
    int64_t deadline = sl_cl_deadline(c->cfg.request_timeout_ms);
    sl_chunk *fr;
    size_t len;
    uint32_t rc_corr;
    sl_err rc;

    rc = sl_cl_conn_write(on, deadline);
    while (rc == SL_OK) {
        fr = NULL;
        rc = sl_cl_conn_read(on, deadline, &fr);
        if (rc != SL_OK)
            break;
        sl_frame_body(fr, &len, &rc_corr);
        if (rc_corr == corr) {
            *out = fr;
            return SL_OK;
        }
        sl_cons_handle_frame(c, on, fr);
        sl_chunk_unref(fr);
    }
    if (rc == SL_ERR_TIMEOUT)
        rc = sl_cl_fail(rc, "broker %s:%s: no reply in time", c->cfg.host,
                        c->cfg.port);
    if (c->fetch_conn == on)
        c->fetch_corr = 0;
    if (on == &c->conn) {
        c->hb_corr = 0;
        /* no reply in time: a paused or cut-off coordinator looks alive
         * to TCP; drop it, so the next request looks the coordinator up
         * again (Kafka disconnects on a request timeout and marks the
         * coordinator unknown). Its late reply is not waited for. */
        if (rc == SL_ERR_TIMEOUT)
            sl_cl_conn_close(on);
    } else {
        sl_cl_conn_close(on); /* a leader's connection: ask again */
        c->rt_stale = 1;
    }
    return rc;
}

sl_err sl_cons_call(sluice_consumer *c, uint32_t corr, sl_chunk **out)
{
    return sl_cons_call_on(c, &c->conn, corr, out);
}

/* The connection serving (topic, partition): its leader's in a cluster,
 * else this one. */
sl_cl_conn *sl_cons_part_conn(sluice_consumer *c, const char *topic,
                              int32_t partition)
{
    sl_cl_conn *to = sl_cl_route_conn(&c->rt, topic, partition);
    if (!to || to == &c->rt.boot)
        return &c->conn;
    return to;
}

sl_err sl_cons_ensure_conn(sluice_consumer *c)
{
    uint64_t epoch = c->conn.epoch;
    sl_err rc;
    if (c->cfg.group_id[0]) {
        rc = sl_cl_coord_ensure(&c->conn, c->cfg.group_id, &c->coord);
        if (rc == SL_OK && c->coord_epoch != c->conn.epoch) {
            sl_cl_coord_move(&c->conn, c->cfg.group_id, &c->coord);
            c->coord_epoch = c->conn.epoch;
        }
    } else {
        rc = sl_cl_conn_ensure(&c->conn);
    }
    if (rc == SL_OK && c->conn.epoch != epoch) {
        c->fetch_corr = 0;
        c->hb_corr = 0;
        c->rt_stale = 1;
        sl_cons_reset_pipeline(c);
    }
    return rc;
}

sl_err sl_cons_coord_check(sluice_consumer *c, sl_err rc)
{
    if (rc != SL_ERR_NOT_COORDINATOR && !c->coord_lost)
        return rc;
    c->coord_lost = 0;
    sl_cl_conn_close(&c->conn);
    c->fetch_corr = 0;
    c->hb_corr = 0;
    c->need_rejoin = c->subscribed;
    return rc;
}

/* ---- public ----------------------------------------------------------- */

sluice_err sluice_consumer_new(const sluice_conf *conf, sluice_consumer **out,
                               char *errstr, size_t errstr_size)
{
    sluice_consumer *c;
    sl_err rc;

    sl_cl_clear_err();
    c = calloc(1, sizeof(*c));
    if (!c) {
        rc = sl_cl_fail(SL_ERR_NOMEM, "consumer");
        goto fail;
    }
    rc = sl_cl_cfg_load(&c->cfg, conf);
    if (rc != SL_OK) {
        free(c);
        goto fail;
    }
    pthread_mutex_init(&c->mu, NULL);
    sl_cl_conn_init(&c->conn, &c->cfg);
    sl_cl_route_init(&c->rt, &c->cfg, NULL, NULL, NULL);
    sl_arena_init(&c->arena);
    rc = sl_cl_conn_ensure(&c->conn);
    if (rc != SL_OK) {
        sluice_consumer_free(c);
        goto fail;
    }
    *out = c;
    return SLUICE_OK;
fail:
    sl_cl_errstr_copy(errstr, errstr_size);
    return (sluice_err)rc;
}

/* With enable.auto.commit: commit the positions before the partitions
 * are given up (close, a new subscribe or assign), synchronously, riding
 * through a coordinator failover as commit() does (Kafka commits on close too),
 * for up to request.timeout.ms (delivery.timeout.ms if shorter; Kafka's close()
 * waits 30 s by default). A failure is counted as an auto-commit failure. */
static int coord_retry(sluice_consumer *c, sl_err rc, int64_t start,
                       int window);

static void commit_on_close(sluice_consumer *c)
{
    int64_t start = sl_cl_now_ms();
    int window = c->cfg.delivery_timeout_ms < c->cfg.request_timeout_ms
                     ? c->cfg.delivery_timeout_ms
                     : c->cfg.request_timeout_ms;
    sl_err rc;
    if (!c->cfg.auto_commit || !c->cfg.group_id[0] || c->nparts == 0)
        return;
    do
        rc = sl_cons_commit_locked(c, NULL, 0);
    while (coord_retry(c, rc, start, window));
    if (rc != SL_OK) {
        c->autocommit_failed++;
        sl_cl_errstr_copy(c->autocommit_err, sizeof(c->autocommit_err));
    }
    sl_cl_clear_err();
}

static void leave_group(sluice_consumer *c)
{
    sl_group_member_req req;
    sl_chunk *fr = NULL;
    uint32_t corr;
    if (!c->subscribed || !c->member_id[0] || !sl_cl_conn_connected(&c->conn))
        return;
    req.group = sl_str_c(c->cfg.group_id);
    req.member_id = sl_str_c(c->member_id);
    req.generation = c->generation;
    corr = sl_cl_conn_corr(&c->conn);
    if (sl_group_member_req_encode(&c->conn.out, SL_API_GROUP_LEAVE, corr,
                                   &req) != SL_OK)
        return;
    if (sl_cons_call(c, corr, &fr) == SL_OK)
        sl_chunk_unref(fr);
    c->member_id[0] = '\0';
}

void sluice_consumer_free(sluice_consumer *c)
{
    size_t i;
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    commit_on_close(c);
    pthread_mutex_unlock(&c->mu);
    leave_group(c);
    sl_cons_clear_parts(c);
    free(c->parts);
    for (i = 0; i < c->ntopics; i++)
        free(c->topics[i]);
    free(c->topics);
    sl_cl_conn_fini(&c->conn);
    sl_cl_route_fini(&c->rt);
    sl_arena_fini(&c->arena);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* Before partitions are given up for others (a new assign or subscribe):
 * with enable.auto.commit their positions are committed first, whether
 * they came from the group or from an assign() (Kafka's assign() does the
 * same), so that whoever reads them next in the group starts there. */
static void unsubscribe(sluice_consumer *c)
{
    size_t i;
    commit_on_close(c);
    leave_group(c);
    for (i = 0; i < c->ntopics; i++)
        free(c->topics[i]);
    free(c->topics);
    c->topics = NULL;
    c->ntopics = 0;
    c->subscribed = 0;
}

sluice_err sluice_consumer_assign(sluice_consumer *c,
                                  const sluice_topic_partition *tps,
                                  size_t count)
{
    sl_err rc = SL_OK;
    size_t i;

    sl_cl_clear_err();
    pthread_mutex_lock(&c->mu);
    unsubscribe(c);
    sl_cons_clear_parts(c);
    for (i = 0; i < count && rc == SL_OK; i++) {
        if (!tps[i].topic || tps[i].partition < 0) {
            rc = sl_cl_fail(SL_ERR_INVALID_ARG, "assign: entry %zu", i);
            break;
        }
        rc = sl_cons_add_part(c, tps[i].topic, strlen(tps[i].topic),
                              tps[i].partition, tps[i].offset);
    }
    if (rc == SL_OK)
        rc = sl_cons_resolve_all(c);
    if (rc != SL_OK)
        sl_cons_clear_parts(c);
    pthread_mutex_unlock(&c->mu);
    return (sluice_err)rc;
}

sluice_err sluice_consumer_assign_topic(sluice_consumer *c, const char *topic,
                                        int64_t offset)
{
    sl_meta_topic *mt;
    sl_chunk *fr = NULL;
    sluice_topic_partition *tps = NULL;
    int32_t n;
    uint32_t i;
    sl_err rc;

    sl_cl_clear_err();
    pthread_mutex_lock(&c->mu);
    rc = sl_cons_topic_meta(c, topic, &fr, &mt);
    if (rc == SL_OK) {
        n = (int32_t)mt->nparts;
        tps = calloc((size_t)(n ? n : 1), sizeof(*tps));
        if (!tps)
            rc = sl_cl_fail(SL_ERR_NOMEM, "assign");
        for (i = 0; tps && i < mt->nparts; i++) {
            tps[i].topic = topic;
            tps[i].partition = (int32_t)mt->parts[i].partition;
            tps[i].offset = offset;
        }
    }
    sl_chunk_unref(fr);
    pthread_mutex_unlock(&c->mu);
    if (rc == SL_OK)
        rc = (sl_err)sluice_consumer_assign(c, tps, (size_t)n);
    free(tps);
    return (sluice_err)rc;
}

sluice_err sluice_consumer_subscribe(sluice_consumer *c,
                                     const char *const *topics, size_t count)
{
    sl_err rc = SL_OK;
    size_t i;

    sl_cl_clear_err();
    if (count == 0)
        return (sluice_err)sl_cl_fail(SL_ERR_INVALID_ARG,
                                      "subscribe: no topics");
    pthread_mutex_lock(&c->mu);
    if (!c->cfg.group_id[0]) {
        rc = sl_cl_fail(SL_ERR_INVALID_ARG, "subscribe needs group.id");
        goto out;
    }
    unsubscribe(c);
    sl_cons_clear_parts(c);
    c->topics = calloc(count, sizeof(char *));
    if (!c->topics) {
        rc = sl_cl_fail(SL_ERR_NOMEM, "subscribe");
        goto out;
    }
    for (i = 0; i < count; i++) {
        c->topics[i] = strdup(topics[i]);
        if (!c->topics[i]) {
            rc = sl_cl_fail(SL_ERR_NOMEM, "subscribe");
            goto out;
        }
        c->ntopics++;
    }
    c->subscribed = 1;
    {
        /* a cluster's group moving (the coordinator died with this join
         * unanswered, paused, or answered NOT_COORDINATOR) or its state
         * topic being created: the coordinator is found again and the
         * join sent again, under the same member id, within
         * delivery.timeout.ms (request.timeout.ms when that is 0) */
        int64_t start = sl_cl_now_ms();
        do
            rc = sl_cons_join_group(c);
        while (coord_retry(c, rc, start,
                           c->cfg.delivery_timeout_ms
                               ? c->cfg.delivery_timeout_ms
                               : c->cfg.request_timeout_ms));
    }
    if (rc != SL_OK)
        unsubscribe(c);
out:
    pthread_mutex_unlock(&c->mu);
    return (sluice_err)rc;
}

sluice_err sluice_consumer_assignment(sluice_consumer *c,
                                      sluice_topic_partition **out,
                                      size_t *count)
{
    sluice_topic_partition *v;
    size_t i;
    sl_err rc = SL_OK;

    pthread_mutex_lock(&c->mu);
    v = calloc(c->nparts ? c->nparts : 1, sizeof(*v));
    if (!v) {
        rc = sl_cl_fail(SL_ERR_NOMEM, "assignment");
        goto out;
    }
    for (i = 0; i < c->nparts; i++) {
        v[i].topic = strdup(c->parts[i].topic);
        v[i].partition = c->parts[i].partition;
        v[i].offset = c->parts[i].position;
        if (!v[i].topic) {
            sluice_topic_partitions_free(v, i);
            rc = sl_cl_fail(SL_ERR_NOMEM, "assignment");
            goto out;
        }
    }
    *out = v;
    *count = c->nparts;
out:
    pthread_mutex_unlock(&c->mu);
    return (sluice_err)rc;
}

void sluice_topic_partitions_free(sluice_topic_partition *tps, size_t count)
{
    size_t i;
    if (!tps)
        return;
    for (i = 0; i < count; i++)
        free((char *)tps[i].topic);
    free(tps);
}

static int ride_out(sluice_consumer *c, sl_err *rc, int64_t deadline)
{
    int64_t now = sl_cl_now_ms(), until;
    int backoff =
        c->cfg.reconnect_backoff_ms > 10 ? c->cfg.reconnect_backoff_ms : 10;
    if (*rc != SL_ERR_DISCONNECTED && *rc != SL_ERR_SHUTTING_DOWN &&
        *rc != SL_ERR_NOT_LEADER && *rc != SL_ERR_NOT_ENOUGH_REPLICAS &&
        *rc != SL_ERR_NOT_COORDINATOR)
        return 0;
    if (c->down_since == 0)
        c->down_since = now;
    if (c->cfg.delivery_timeout_ms == 0 ||
        now - c->down_since >= c->cfg.delivery_timeout_ms)
        return 0;
    if (now >= deadline) {
        *rc = sl_cl_fail(SL_ERR_TIMEOUT,
                         "poll: no message (broker not "
                         "reachable since %lld ms)",
                         (long long)(now - c->down_since));
        return 0;
    }
    until = now + backoff < deadline ? now + backoff : deadline;
    pthread_mutex_unlock(&c->mu);
    poll(NULL, 0, sl_cl_left(until));
    pthread_mutex_lock(&c->mu);
    return 1;
}

/* Take the heartbeat reply waiting on the coordinator's connection
 * while the fetches go to another node (a cluster: poll reads only the
 * fetch's connection). Without this the reply stayed unread, no further
 * heartbeat was sent, and the member missed a rebalance and then its
 * session. */
static void take_heartbeat(sluice_consumer *c)
{
    sl_chunk *fr;
    if (!c->hb_corr || !sl_cl_conn_connected(&c->conn))
        return;
    if (sl_cl_now_ms() - c->hb_sent_ms > c->cfg.request_timeout_ms) {
        /* unanswered for request.timeout.ms: the coordinator is paused or
         * cut off; drop it, the group tick finds the new one and rejoins
         * (before, no heartbeat went out again and the session ran out) */
        sl_cl_conn_close(&c->conn);
        c->hb_corr = 0;
        if (c->fetch_conn == &c->conn)
            c->fetch_corr = 0;
        return;
    }
    if (c->fetch_corr && c->fetch_conn == &c->conn)
        return;
    for (;;) {
        fr = NULL;
        if (sl_cl_conn_read(&c->conn, sl_cl_deadline(0), &fr) != SL_OK) {
            if (!sl_cl_conn_connected(&c->conn))
                c->hb_corr = 0; /* lost: the group tick rejoins */
            break;
        }
        sl_cons_handle_frame(c, &c->conn, fr);
        sl_chunk_unref(fr);
        if (!c->hb_corr)
            break;
    }
    sl_cl_clear_err();
}

static sl_err poll_locked(sluice_consumer *c, int timeout_ms,
                          sluice_message **msgs, size_t max, size_t *count)
{
    int64_t deadline = sl_cl_deadline(timeout_ms);
    sl_chunk *fr;
    size_t n = 0;
    sl_err rc = SL_OK, e;
    sluice_message *m;
    sl_cl_conn *on;
    int wait, prefetch;

    for (;;) {
        take_heartbeat(c);
        rc = sl_cons_group_tick(c);
        if (rc != SL_OK) {
            if (n == 0 && ride_out(c, &rc, deadline))
                continue;
            break;
        }
        if (c->nparts == 0 && !c->subscribed) {
            rc = sl_cl_fail(SL_ERR_INVALID_ARG, "poll: no partitions assigned");
            break;
        }
        rc = sl_cons_ensure_conn(c);
        if (rc == SL_OK)
            rc = sl_cons_refresh_placement(c);
        if (rc == SL_OK)
            rc = sl_cons_resolve_all(c);
        if (rc != SL_OK) {
            if (n == 0 && ride_out(c, &rc, deadline))
                continue;
            break;
        }
        while (n < max && (m = sl_cons_next_buffered(c, &e)))
            msgs[n++] = m;
        if (c->perr != SL_OK && n == 0) {
            sl_err pe = c->perr;
            rc = pe;
            c->perr = SL_OK;
            if (ride_out(c, &rc, deadline))
                continue;
            if (rc == pe)
                rc = sl_cl_fail(rc, "%s", c->perr_msg);
            break;
        }
        /* Keep one fetch in flight: a prefetch (no broker wait) while
         * records are buffered, unless the last fetch found nothing new;
         * a long poll once the buffer is empty. At most about
         * 2 x fetch.max.bytes are buffered. */
        prefetch = c->bhead || n;
        wait = prefetch ? 0 : sl_cl_left(deadline);
        if (wait < 0 || wait > c->cfg.fetch_max_wait_ms)
            wait = c->cfg.fetch_max_wait_ms;
        if (c->subscribed && wait > c->hb_interval_ms)
            wait = c->hb_interval_ms;
        if (!c->fetch_corr &&
            c->buffered_bytes < 2 * (size_t)c->cfg.fetch_max_bytes &&
            (!prefetch || !c->caught_up)) {
            rc = sl_cons_send_fetch(c, wait);
            if (rc != SL_OK) {
                if (n == 0 && ride_out(c, &rc, deadline))
                    continue;
                break;
            }
        }
        if (n > 0)
            break;
        if (c->bhead)
            continue;
        if (!c->fetch_corr && !c->hb_corr) {
            /* nothing assigned yet (group) and nothing to wait for */
            int64_t until = c->next_hb_ms < deadline ? c->next_hb_ms : deadline;
            if (sl_cl_now_ms() >= deadline) {
                rc = sl_cl_fail(SL_ERR_TIMEOUT, "poll: no message");
                break;
            }
            pthread_mutex_unlock(&c->mu);
            poll(NULL, 0, sl_cl_left(until));
            pthread_mutex_lock(&c->mu);
            continue;
        }
        /* with the deadline passed this still takes what already arrived
         * (so poll(0) in a loop makes progress) */
        fr = NULL;
        on = c->fetch_corr ? c->fetch_conn : &c->conn;
        rc = sl_cl_conn_read(on, deadline, &fr);
        if (rc == SL_ERR_TIMEOUT) {
            rc = sl_cl_fail(SL_ERR_TIMEOUT, "poll: no message");
            break;
        }
        if (rc != SL_OK) {
            c->fetch_corr = 0;
            if (on == &c->conn)
                c->hb_corr = 0;
            else { /* a leader's connection: ask where to go */
                sl_cl_conn_close(on);
                c->rt_stale = 1;
            }
            if (ride_out(c, &rc, deadline))
                continue;
            break;
        }
        c->down_since = 0;
        sl_cons_handle_frame(c, on, fr);
        sl_chunk_unref(fr);
    }
    if (n > 0) {
        sl_cl_clear_err();
        rc = SL_OK;
    }
    *count = n;
    return rc;
}

sluice_err sluice_consumer_poll(sluice_consumer *c, int timeout_ms,
                                sluice_message **out)
{
    size_t n = 0;
    sl_err rc;
    sluice_message *m = NULL;
    pthread_mutex_lock(&c->mu);
    rc = poll_locked(c, timeout_ms, &m, 1, &n);
    pthread_mutex_unlock(&c->mu);
    if (rc == SL_OK && n == 1)
        *out = m;
    return (sluice_err)rc;
}

sluice_err sluice_consumer_poll_batch(sluice_consumer *c, int timeout_ms,
                                      sluice_message **msgs, size_t max,
                                      size_t *count)
{
    sl_err rc;
    size_t n = 0;
    if (max == 0)
        return (sluice_err)sl_cl_fail(SL_ERR_INVALID_ARG, "poll: max 0");
    pthread_mutex_lock(&c->mu);
    rc = poll_locked(c, timeout_ms, msgs, max, &n);
    pthread_mutex_unlock(&c->mu);
    if (rc == SL_OK)
        *count = n;
    return (sluice_err)rc;
}

/*
 * A commit rides through a coordinator failover (docs/cluster.md 6): on
 * a lost connection, no reply in time, NOT_COORDINATOR or too few
 * in-sync replicas it looks the coordinator up again (coord.c) and sends
 * the same offsets again, reconnect.backoff.ms apart, for up to
 * delivery.timeout.ms, as Kafka's commitSync does after
 * NOT_COORDINATOR. Sending a commit twice is harmless: the same offsets.
 * The new coordinator knows this member and its generation (they are
 * replicated with the offsets), so the commit is accepted; only a real
 * rebalance (SLUICE_ERR_REBALANCE, _UNKNOWN_MEMBER) fails it.
 */
int sl_cons_retriable(sl_err rc)
{
    return rc == SL_ERR_DISCONNECTED || rc == SL_ERR_TIMEOUT ||
           rc == SL_ERR_NOT_COORDINATOR || rc == SL_ERR_SHUTTING_DOWN ||
           rc == SL_ERR_NOT_ENOUGH_REPLICAS;
}

/* After a group request failed with rc (first try at start): 1 = look
 * the coordinator up again and retry (after reconnect.backoff.ms, the
 * mutex released meanwhile), 0 = return rc. */
static int coord_retry(sluice_consumer *c, sl_err rc, int64_t start, int window)
{
    int backoff =
        c->cfg.reconnect_backoff_ms > 10 ? c->cfg.reconnect_backoff_ms : 10;
    if (!sl_cons_retriable(rc) || window == 0 ||
        sl_cl_now_ms() - start + backoff >= window)
        return 0;
    /* whatever answered (or did not) is not the coordinator: find it
     * again on the next try */
    sl_cl_conn_close(&c->conn);
    c->fetch_corr = c->fetch_conn == &c->conn ? 0 : c->fetch_corr;
    c->hb_corr = 0;
    pthread_mutex_unlock(&c->mu);
    poll(NULL, 0, backoff);
    pthread_mutex_lock(&c->mu);
    sl_cl_clear_err();
    return 1;
}

static sl_err commit_riding(sluice_consumer *c,
                            const sluice_topic_partition *tps, size_t n)
{
    int64_t start = sl_cl_now_ms();
    sl_err rc;
    do
        rc = sl_cons_commit_locked(c, tps, n);
    while (coord_retry(c, rc, start, c->cfg.delivery_timeout_ms));
    return rc;
}

sluice_err sluice_consumer_commit(sluice_consumer *c)
{
    sl_err rc;
    sl_cl_clear_err();
    pthread_mutex_lock(&c->mu);
    rc = commit_riding(c, NULL, 0);
    pthread_mutex_unlock(&c->mu);
    return (sluice_err)rc;
}

sluice_err sluice_consumer_commit_offsets(sluice_consumer *c,
                                          const sluice_topic_partition *tps,
                                          size_t count)
{
    sl_err rc;
    sl_cl_clear_err();
    pthread_mutex_lock(&c->mu);
    rc = commit_riding(c, tps, count);
    pthread_mutex_unlock(&c->mu);
    return (sluice_err)rc;
}

uint64_t sluice_consumer_auto_commit_failures(sluice_consumer *c, char *err,
                                              size_t err_size)
{
    uint64_t n;
    pthread_mutex_lock(&c->mu);
    n = c->autocommit_failed;
    if (err && err_size)
        snprintf(err, err_size, "%s", c->autocommit_err);
    pthread_mutex_unlock(&c->mu);
    return n;
}

sluice_err sluice_consumer_committed(sluice_consumer *c, const char *topic,
                                     int32_t partition, int64_t *offset)
{
    sl_err rc;
    int64_t off;
    int64_t start = sl_cl_now_ms();
    sl_cl_clear_err();
    pthread_mutex_lock(&c->mu);
    do /* rides through a coordinator failover, as a commit does */
        rc = sl_cons_fetch_committed(c, topic, partition, &off);
    while (coord_retry(c, rc, start, c->cfg.delivery_timeout_ms));
    pthread_mutex_unlock(&c->mu);
    if (rc == SL_OK)
        *offset = off;
    return (sluice_err)rc;
}
