/*
 * cluster.c - the broker's side of cluster mode (docs/cluster.md): starts
 * this node's member of the metadata quorum (cluster/node.c), keeps the
 * loop's copy of the metadata image, answers CLUSTER_STATUS from it on
 * every node, and sends topic creation through the quorum.
 *
 * The Raft thread calls notify() after each applied command; that activates
 * drain_ev on the loop, which applies the same commands to b->cluster->image
 * (cluster/node.h) and then creates, on this node, the partitions of every
 * topic the image has and the local registry lacks. A CREATE_TOPICS is
 * answered when its command was applied to the loop's image, so a describe
 * on the same node right after it sees the topic.
 *
 * Files: cluster.c (this one: the image on the loop, CLUSTER_STATUS,
 * METADATA's cluster fields, the append guards, start/stop),
 * cluster_fwd.c (commands sent to the metadata leader, CLUSTER_FORWARD,
 * this node's registration), cluster_topics.c (CREATE_TOPICS,
 * DELETE_TOPICS and auto-creation through the quorum); cluster_int.h is
 * what they share.
 *
 * Without --node-id none of this runs (sl_bcluster_start returns at once)
 * except CLUSTER_STATUS, which answers node_id 0 ("a single node").
 *
 * Not yet built (docs/cluster.md section 9): forwarding a metadata write
 * from a follower to the leader (a follower answers SL_ERR_BUSY naming the
 * leader), DELETE_TOPICS through the quorum (refused in cluster mode),
 * partition data replication and leadership enforcement on produce/fetch.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "broker/binary.h"
#include "broker/broker.h"
#include "broker/cluster.h"
#include "broker/cluster_int.h"
#include "broker/cluster_ops.h"
#include "broker/cluster_users.h"
#include "broker/forward.h"
#include "broker/group_state.h"
#include "broker/observer.h"
#include "broker/ops.h"
#include "broker/ops_groups.h"
#include "broker/peer_auth.h"
#include "broker/replica.h"
#include "cluster/node.h"
#include "protocol/api.h"
#include "protocol/log.h"

/* @thread raft */
static void notify(void *arg)
{
    sl_broker *b = arg;
    event_active(b->cluster->drain_ev, 0, 0);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Delete locally the topics the image had at the last drain and has no
 * more (a DELETE_TOPIC applied), then remember the image's names. A node
 * that was down when a topic was deleted does not see it go: its copy
 * stays until removed by hand (docs/cluster.md 9). */
static void reconcile_deleted(sl_broker *b)
{
    sl_bcluster *bc = b->cluster;
    const sl_meta *m = &bc->image;
    char **now;
    size_t n = 0;
    for (size_t i = 0; i < bc->nknown; i++)
        if (!sl_meta_topic_find(m, bc->known[i])) {
            sl_err rc;
            /* first: its high-water marks leave the checkpoint file
             * before its files go (a crash between the two must not
             * leave a mark for a topic made anew under its name) */
            if (bc->replicas)
                sl_replicas_topic_deleted(bc->replicas, bc->known[i]);
            rc = sl_ops_topic_delete(b, bc->known[i]);
            if (rc != SL_OK && rc != SL_ERR_UNKNOWN_TOPIC)
                sl_log(SL_ERROR, "cluster",
                       "topic %s was deleted through the metadata log but "
                       "cannot be deleted here: %s",
                       bc->known[i], sl_strerror(rc));
            else
                sl_log(SL_INFO, "cluster", "topic %s deleted", bc->known[i]);
        }
    now = calloc(m->ntopics + 1, sizeof(*now));
    if (!now)
        return; /* keep the old list: deletions are found next time */
    for (size_t i = 0; i < m->ntopics; i++) {
        if (!(now[n] = strdup(m->topics[i]->name)))
            break;
        n++;
    }
    if (n < m->ntopics) {
        while (n)
            free(now[--n]);
        free(now);
        return;
    }
    qsort(now, n, sizeof(*now), cmp_str);
    for (size_t i = 0; i < bc->nknown; i++)
        free(bc->known[i]);
    free(bc->known);
    bc->known = now;
    bc->nknown = n;
}

/* Create locally what the image has and this node lacks; delete what it
 * no longer has. */
void sl_bcluster_reconcile(sl_broker *b)
{
    const sl_meta *m = &b->cluster->image;
    reconcile_deleted(b);
    for (size_t i = 0; i < m->ntopics; i++) {
        const sl_mi_topic *t = m->topics[i];
        char err[256] = "";
        int32_t np;
        sl_err rc;
        if (sl_ops_topic_get(b, t->name, SL_OPS_NO_CREATE, &np) == SL_OK)
            continue;
        rc = sl_ops_topic_create(
            b, t->name, t->nparts, (const char *const *)t->keys,
            (const char *const *)t->vals, t->ncfg, err, sizeof(err));
        if (rc != SL_OK && rc != SL_ERR_TOPIC_EXISTS)
            sl_log(SL_ERROR, "cluster",
                   "topic %s from the metadata log cannot be created here: "
                   "%s",
                   t->name, err[0] ? err : sl_strerror(rc));
        else
            sl_log(SL_INFO, "cluster", "topic %s: %d partition(s), RF %d",
                   t->name, (int)t->nparts, (int)t->rf);
    }
    sl_bops_sync_topics(b); /* partitions added, configs changed */
    if (b->cluster->replicas)
        sl_replicas_update(b->cluster->replicas);
    sl_gstate_on_image(b); /* group coordinators follow the leaders */
    if (b->observer)
        sl_observer_refresh(b->observer); /* and what they read */
    sl_bcluster_ac_poll(b);
    sl_cluster_users_sync(b);
    sl_bops_changed(b->cluster->ops);
}

static void drain_now(sl_broker *b);

static void drain_delayed_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    drain_now(arg);
}

static void drain_cb(evutil_socket_t fd, short what, void *arg)
{
    sl_broker *b = arg;
    sl_bcluster *bc = b->cluster;
    (void)fd;
    (void)what;
    /* test hook (tests/cluster/test_cluster_read_your_writes.py): a
     * follower applies the log this much later, so that its copy lags
     * the leader's every time, not only now and then */
    if (bc->test_delay_ms > 0 && bc->delay_ev) {
        sl_cluster_status st;
        sl_cluster_status_get(bc->node, &st);
        if (st.role != 3) {
            if (!evtimer_pending(bc->delay_ev, NULL)) {
                struct timeval tv = {bc->test_delay_ms / 1000,
                                     (bc->test_delay_ms % 1000) * 1000};
                evtimer_add(bc->delay_ev, &tv);
            }
            return;
        }
    }
    drain_now(b);
}

static void drain_now(sl_broker *b)
{
    /* completions run inside drain, after the image applied their command;
     * reconcile first would be too late for them, so reconcile in the
     * completion too (create_done) */
    if (sl_cluster_drain(b->cluster->node, &b->cluster->image) > 0)
        sl_bcluster_reconcile(b);
    sl_bcluster_read_check(b); /* after reconcile: the store has it too */
}

/* ---- 28 CLUSTER_STATUS ------------------------------------------------ */

static void fill_topic(sl_arena *a, const sl_mi_topic *t, sl_cl_topic *ct)
{
    ct->name = sl_str_c(t->name);
    ct->error = SL_OK;
    ct->parts = sl_arena_alloc(a, sizeof(*ct->parts) * (size_t)t->nparts);
    if (!ct->parts) {
        ct->error = SL_ERR_NOMEM;
        return;
    }
    ct->nparts = (uint32_t)t->nparts;
    for (int32_t p = 0; p < t->nparts; p++) {
        const sl_mi_part *mp = &t->parts[p];
        sl_cl_part *cp = &ct->parts[p];
        cp->partition = (uint32_t)p;
        cp->leader = mp->leader;
        cp->leader_epoch = mp->leader_epoch;
        cp->nreplicas = (uint32_t)mp->nrep;
        cp->replicas = (int32_t *)mp->rep;
        cp->nisr = (uint32_t)mp->nisr;
        cp->isr = (int32_t *)mp->isr;
    }
}

static void h_cluster_status(sl_broker *b, sl_conn *c, const sl_req *req,
                             sl_reply *r)
{
    sl_arena a;
    sl_wb wb;
    sl_cluster_status_req q;
    sl_cluster_status_resp s;
    (void)c;

    sl_arena_init(&a);
    sl_wb_init(&wb, 512);
    memset(&s, 0, sizeof(s));
    if (sl_cluster_status_req_decode(req->body, req->len, &a, &q) != SL_OK) {
        sl_reply_error(r, SL_ERR_MALFORMED, "CLUSTER_STATUS: bad body");
        goto out;
    }
    if (b->cluster) {
        const sl_meta *m = &b->cluster->image;
        sl_cluster_status st;
        sl_cluster_status_get(b->cluster->node, &st);
        s.node_id = st.node_id;
        s.leader_id = st.leader_id;
        s.term = st.term;
        s.applied = m->applied;
        s.nodes = sl_arena_alloc(&a, sizeof(*s.nodes) * (m->nnodes + 1));
        s.topics = sl_arena_alloc(&a, sizeof(*s.topics) * (q.ntopics + 1));
        if (!s.nodes || !s.topics) {
            sl_reply_error(r, SL_ERR_NOMEM, "out of memory");
            goto out;
        }
        for (size_t i = 0; i < m->nnodes; i++) {
            const sl_mi_node *n = &m->nodes[i];
            s.nodes[i].id = n->id;
            s.nodes[i].up = !n->fenced;
            s.nodes[i].raft_addr = sl_str_c(n->raft_addr);
            s.nodes[i].addr = sl_str_c(n->addr);
            s.nodes[i].stomp_addr = sl_str_c(n->stomp_addr);
        }
        s.nnodes = (uint32_t)m->nnodes;
        for (uint32_t i = 0; i < q.ntopics; i++) {
            char name[256];
            const sl_mi_topic *t = NULL;
            if (q.topics[i].p && q.topics[i].len < sizeof(name)) {
                memcpy(name, q.topics[i].p, q.topics[i].len);
                name[q.topics[i].len] = 0;
                t = sl_meta_topic_find(m, name);
            }
            if (t) {
                fill_topic(&a, t, &s.topics[i]);
            } else {
                s.topics[i].name = q.topics[i];
                s.topics[i].error = SL_ERR_UNKNOWN_TOPIC;
            }
        }
        s.ntopics = q.ntopics;
    }
    if (sl_cluster_status_resp_encode(&wb, req->correlation_id, &s) != SL_OK) {
        sl_reply_error(r, SL_ERR_NOMEM, "CLUSTER_STATUS: cannot encode");
        goto out;
    }
    if (sl_reply_add(r, wb.p, wb.len) != SL_OK)
        sl_reply_error(r, SL_ERR_NOMEM, "out of memory");
    else
        sl_reply_done(r);
out:
    sl_wb_fini(&wb);
    sl_arena_fini(&a);
}

const char *sl_bcluster_tls_addr(const sl_broker *b)
{
    /* as sl_server_binary_tls_addr (server.h would close an include
     * cycle) */
    return b->bin_tls_lis ? b->bin_tls_addr : "";
}

void sl_bcluster_meta_fill(sl_broker *b, sl_arena *a, sl_metadata_resp *r)
{
    const sl_meta *m;
    if (!b->cluster)
        return;
    m = &b->cluster->image;
    r->node_id = (int32_t)b->cfg.node_id;
    r->brokers = sl_arena_alloc(a, sizeof(*r->brokers) * (m->nnodes + 1));
    if (r->brokers) {
        for (size_t i = 0; i < m->nnodes; i++) {
            r->brokers[i].id = m->nodes[i].id;
            r->brokers[i].addr = sl_str_c(m->nodes[i].addr);
            r->brokers[i].up = !m->nodes[i].fenced;
            r->brokers[i].tls_addr = sl_str_c(m->nodes[i].tls_addr);
        }
        r->nbrokers = (uint32_t)m->nnodes;
    }
    for (uint32_t i = 0; i < r->ntopics; i++) {
        sl_meta_topic *t = &r->topics[i];
        char name[256];
        const sl_mi_topic *mt;
        if (t->error != SL_OK || !t->name.p || t->name.len >= sizeof(name))
            continue;
        memcpy(name, t->name.p, t->name.len);
        name[t->name.len] = 0;
        mt = sl_meta_topic_find(m, name);
        if (!mt)
            continue;
        for (uint32_t j = 0; j < t->nparts && (int32_t)j < mt->nparts; j++) {
            const sl_mi_part *mp = &mt->parts[j];
            sl_meta_part *p = &t->parts[j];
            p->leader = mp->leader >= 0 ? mp->leader : SL_META_LEADER_NONE;
            p->leader_epoch = mp->leader_epoch;
            p->nreplicas = (uint32_t)mp->nrep;
            p->replicas = (int32_t *)mp->rep;
            p->nisr = (uint32_t)mp->nisr;
            p->isr = (int32_t *)mp->isr;
        }
    }
}

/* Client appends (PRODUCE, STOMP SEND) go to the partition's leader only:
 * a record appended on a follower would make its log diverge from the
 * leader's. Topics the image does not know (created locally, e.g. by
 * auto-create) are not guarded. */
static sl_err append_guard(sl_broker *b, const char *topic, int32_t part)
{
    const sl_mi_topic *t = sl_meta_topic_find(&b->cluster->image, topic);
    if (!t || part < 0 || part >= t->nparts)
        return SL_OK;
    if (t->parts[part].leader == (int32_t)b->cfg.node_id)
        return SL_OK;
    sl_log(SL_DEBUG, "cluster", "append to %s/%d refused: leader is %d", topic,
           (int)part, (int)t->parts[part].leader);
    return SL_ERR_NOT_LEADER;
}

/* A durable produce needs min-insync-replicas in the ISR (docs/cluster.md
 * 3.3); refused before anything is appended. An idempotent producer the
 * partition does not know is then expected to resend the first batch
 * before any later one (sl_part_idem_refused). */
static sl_err durable_guard(sl_broker *b, const char *topic, int32_t part,
                            const uint8_t *records, size_t len)
{
    const sl_mi_topic *t = sl_meta_topic_find(&b->cluster->image, topic);
    const sl_mi_part *mp;
    if (!t || part < 0 || part >= t->nparts)
        return SL_OK;
    mp = &t->parts[part];
    if (mp->leader != (int32_t)b->cfg.node_id ||
        mp->nisr >= sl_replicas_min_insync(b, t, part))
        return SL_OK;
    sl_log(SL_DEBUG, "cluster",
           "durable produce to %s/%d refused: ISR %d < "
           "min-insync-replicas %d",
           topic, (int)part, (int)mp->nisr,
           (int)sl_replicas_min_insync(b, t, part));
    {
        sl_batch_hdr h;
        sl_part *p;
        if (sl_batch_hdr_decode(records, len, &h) == SL_OK &&
            h.producer_id >= 0 &&
            sl_ops_part(b, topic, part, SL_OPS_NO_CREATE, &p) == SL_OK)
            sl_part_idem_refused(p, &h);
    }
    return SL_ERR_NOT_ENOUGH_REPLICAS;
}

static sl_err forward_append(sl_broker *b, const char *topic, int32_t part,
                             const uint8_t *batch, size_t len, int durable,
                             void (*cb)(void *arg, sl_err rc), void *arg)
{
    if (!b->cluster->fwd)
        return SL_ERR_NOT_LEADER;
    return sl_fwd_append(b->cluster->fwd, topic, part, batch, len, durable, cb,
                         arg);
}

static void replica_fetch(sl_broker *b, sl_fetch_req *q)
{
    if (b->cluster->replicas)
        sl_replicas_on_fetch(b->cluster->replicas, q);
}

/* ---- start / stop ------------------------------------------------------- */

/* The topics the queue groups coordinated here read changed
 * (observer.c): the fetchers follow. */
static void observed_changed(sl_broker *b)
{
    if (b->cluster && b->cluster->replicas)
        sl_replicas_update(b->cluster->replicas);
}

/* What the observer asks of the replica fetchers (observer.h). */
static void copy_restart(void *rs, const char *topic, int32_t p, int64_t at,
                         const char *why)
{
    sl_replicas_copy_restart(rs, topic, p, at, why);
}

static int copy_checking(void *rs, const char *topic, int32_t p)
{
    return sl_replicas_checking(rs, topic, p);
}

sl_err sl_bcluster_start(sl_broker *b, char *err, size_t errlen)
{
    sl_cluster_cfg cc;
    sl_bcluster *bc;
    char dir[4096];
    sl_err rc;

    sl_binary_register(b, SL_API_CLUSTER_STATUS, 1, 1, h_cluster_status);
    if (b->cfg.node_id == 0)
        return SL_OK;
    if (!b->cfg.cluster_listen || !b->cfg.cluster_listen[0] ||
        !b->cfg.cluster_peers || !b->cfg.cluster_peers[0]) {
        snprintf(err, errlen,
                 "node-id %d needs cluster-listen and "
                 "cluster-peers (see docs/cluster.md)",
                 (int)b->cfg.node_id);
        return SL_ERR_INVALID_CONFIG;
    }
    bc = calloc(1, sizeof(*bc));
    if (!bc)
        return SL_ERR_NOMEM;
    sl_meta_init(&bc->image);
    bc->drain_ev = event_new(b->base, -1, 0, drain_cb, b);
    if (!bc->drain_ev) {
        free(bc);
        return SL_ERR_NOMEM;
    }
    b->cluster = bc;
    if (getenv("SLUICE_TEST_FOLLOWER_APPLY_DELAY_MS")) {
        bc->test_delay_ms = atoi(getenv("SLUICE_TEST_FOLLOWER_APPLY_DELAY_MS"));
        bc->delay_ev = evtimer_new(b->base, drain_delayed_cb, b);
        sl_log(SL_WARN, "cluster",
               "test hook: a follower applies the metadata log %d ms late "
               "(SLUICE_TEST_FOLLOWER_APPLY_DELAY_MS)",
               bc->test_delay_ms);
    }
    snprintf(dir, sizeof(dir), "%s/raft", b->cfg.data);
    memset(&cc, 0, sizeof(cc));
    cc.node_id = (int32_t)b->cfg.node_id;
    cc.listen = b->cfg.cluster_listen;
    cc.peers = b->cfg.cluster_peers;
    cc.dir = dir;
    cc.addr = sl_peer_my_addr(b, 0); /* the TLS ones with cluster-tls */
    cc.stomp_addr = sl_peer_my_addr(b, 1);
    cc.tls_addr = sl_bcluster_tls_addr(b); /* for TLS clients (METADATA 3) */
    cc.election_ms = (unsigned)b->cfg.cluster_election_timeout_ms;
    cc.heartbeat_ms = (unsigned)b->cfg.cluster_heartbeat_ms;
    cc.session_ms = (unsigned)b->cfg.cluster_session_timeout_ms;
    cc.snapshot_threshold = (unsigned)b->cfg.cluster_snapshot_threshold;
    cc.join = b->cfg.cluster_join;
    cc.notify = notify;
    cc.notify_arg = b;
    cc.secret = sl_peer_secret(b, &cc.secret_len); /* the Raft port too */
    rc = sl_replicas_new(b, cc.node_id, &bc->image, &bc->replicas);
    if (rc == SL_OK)
        rc = sl_fwd_new(b, &bc->image, &bc->fwd);
    if (rc == SL_OK)
        rc = sl_observer_new(
            b, &bc->image,
            &(sl_observer_copies){bc->replicas, copy_restart, copy_checking},
            cc.node_id, sl_ops_groups, observed_changed, &b->observer);
    if (rc == SL_OK)
        rc = sl_cluster_node_start(&cc, &bc->node, err, errlen);
    if (rc == SL_OK)
        rc = sl_bops_new(b, &bc->ops);
    if (rc != SL_OK) {
        sl_bcluster_stop(b);
        return rc;
    }
    bc->reg_ev = event_new(b->base, -1, EV_PERSIST, sl_bcluster_reg_cb, b);
    if (bc->reg_ev) {
        struct timeval tv = {0, 500 * 1000};
        event_add(bc->reg_ev, &tv);
    }
    sl_binary_register(b, SL_API_CLUSTER_FORWARD, 1, 1, sl_bcluster_h_forward);
    b->append_guard = append_guard;
    b->forward_append = forward_append;
    b->durable_guard = durable_guard;
    b->replica_fetch = replica_fetch;
    b->auto_create = sl_bcluster_auto_create;
    b->defer_create = sl_bcluster_defer_create;
    sl_binary_register(b, SL_API_CREATE_TOPICS, 1, 1,
                       sl_bcluster_h_create_topics);
    sl_binary_register(b, SL_API_DELETE_TOPICS, 1, 1,
                       sl_bcluster_h_delete_topics);
    sl_cluster_users_start(b);
    return SL_OK;
}

void sl_bcluster_stop(sl_broker *b)
{
    sl_bcluster *bc = b->cluster;
    if (!bc)
        return;
    b->append_guard = NULL;
    b->forward_append = NULL;
    b->durable_guard = NULL;
    b->replica_fetch = NULL;
    b->auto_create = NULL;
    b->defer_create = NULL;
    /* completes what is pending (their replies, if still wanted) */
    sl_cluster_node_stop(bc->node);
    bc->node = NULL;
    while (bc->fwds)
        sl_bcluster_fwd_finish(bc->fwds, SL_ERR_SHUTTING_DOWN,
                               "the broker is stopping");
    sl_bcluster_read_stop(b); /* after the forwards above */
    sl_cluster_users_stop(b); /* after the completions above */
    while (bc->acs) {         /* their requests fail: the topic is not there */
        bc->acs->done = 1;
        bc->acs->rc = SL_ERR_SHUTTING_DOWN;
        sl_bcluster_ac_run(b, bc->acs);
    }
    sl_bops_free(bc->ops); /* after the completions above */
    bc->ops = NULL;
    sl_observer_free(b->observer);
    b->observer = NULL;
    sl_replicas_free(bc->replicas);
    bc->replicas = NULL;
    sl_fwd_free(bc->fwd);
    bc->fwd = NULL;
    if (bc->drain_ev)
        event_free(bc->drain_ev);
    if (bc->delay_ev)
        event_free(bc->delay_ev);
    if (bc->reg_ev)
        event_free(bc->reg_ev);
    sl_meta_fini(&bc->image);
    for (size_t i = 0; i < bc->nknown; i++)
        free(bc->known[i]);
    free(bc->known);
    free(bc);
    b->cluster = NULL;
}

const sl_meta *sl_bcluster_image(sl_broker *b)
{
    return b->cluster ? &b->cluster->image : NULL;
}

sl_cluster_node *sl_bcluster_node(const sl_broker *b)
{
    return b->cluster ? b->cluster->node : NULL;
}

/* ---- /metrics ------------------------------------------------------------ */

int sl_bcluster_stats_get(sl_broker *b, sl_bcluster_stats *out)
{
    const sl_meta *m;
    sl_cluster_status st;
    memset(out, 0, sizeof(*out));
    if (!b->cluster)
        return -1;
    m = &b->cluster->image;
    sl_cluster_status_get(b->cluster->node, &st);
    out->node_id = st.node_id;
    out->leader_id = st.leader_id;
    out->role = st.role;
    out->term = st.term;
    out->applied = m->applied;
    out->nodes = (int64_t)m->nnodes;
    for (size_t i = 0; i < m->nnodes; i++)
        out->nodes_up += !m->nodes[i].fenced;
    for (size_t t = 0; t < m->ntopics; t++)
        for (int32_t p = 0; p < m->topics[t]->nparts; p++) {
            const sl_mi_part *mp = &m->topics[t]->parts[p];
            out->partitions++;
            out->partitions_led += mp->leader == st.node_id;
            out->partitions_offline += mp->leader < 0;
            out->partitions_under_replicated += mp->nisr < mp->nrep;
        }
    sl_replicas_bytes(b->cluster->replicas, &out->replica_fetched_bytes,
                      &out->reassign_copied_bytes);
    return 0;
}

void sl_bcluster_foreach_part(sl_broker *b,
                              void (*fn)(void *arg, const char *topic,
                                         int32_t partition, int32_t leader,
                                         int32_t replicas, int32_t in_sync),
                              void *arg)
{
    const sl_meta *m;
    if (!b->cluster)
        return;
    m = &b->cluster->image;
    for (size_t t = 0; t < m->ntopics; t++)
        for (int32_t p = 0; p < m->topics[t]->nparts; p++) {
            const sl_mi_part *mp = &m->topics[t]->parts[p];
            fn(arg, m->topics[t]->name, p, mp->leader, mp->nrep, mp->nisr);
        }
}
