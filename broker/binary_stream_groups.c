/*
 * binary_stream_groups.c - binary protocol handlers for stream groups
 * (Kafka's classic consumer groups): 10 GROUP_JOIN, 11 GROUP_HEARTBEAT,
 * 12 GROUP_LEAVE, 13 OFFSET_COMMIT, 14 OFFSET_FETCH. Offset commits,
 * joins and leaves are answered after the SQLite transaction holding them
 * committed (sl_groups_wait; in a cluster also once replicated in the
 * state log, docs/cluster.md 6). Heartbeats and OFFSET_FETCH answer from
 * memory: a heartbeat's REBALANCE from a generation not yet replicated
 * costs at most a rejoin; an offset fetched before its commit is
 * replicated (and answered) may be lost with a failover, but a
 * failover never makes OFFSET_FETCH answer less than an acknowledged
 * commit: a new coordinator serves the group only once rebuilt from its
 * log, which holds every acknowledged commit (docs/cluster.md 6,
 * "Offset fetches and heartbeats answered from memory").
 * docs/groups.md section 1 describes the protocol.
 * @thread loop
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "broker/binary.h"
#include "broker/binary_groups.h"
#include "broker/broker.h"
#include "broker/config.h"
#include "broker/ops_groups.h"
#include "protocol/api.h"
#include "protocol/log.h"

/* ---- 10 GROUP_JOIN, 11 HEARTBEAT, 12 LEAVE ------------------------------- */

/* Test hook (tests/cluster, bindings/python/tests/test_cluster_groups.py):
 * with SLUICE_TEST_HOLD_JOIN_REPLY=PATH set and the file PATH present, the
 * next join answered by any node removes PATH, waits until its state is
 * replicated as every join does, logs "test hook: join ... is replicated,
 * its reply held" and never answers: the test then kills this node, as
 * if it died between replicating the join and sending its reply. */
typedef struct held_join {
    char line[400];
    sl_reply *r;
    int cancelled;
} held_join;

static void held_cancel(void *arg)
{
    ((held_join *)arg)->cancelled = 1; /* the groups waiter frees it */
}

static void held_done(void *arg, sl_err rc)
{
    held_join *h = arg;
    if (!h->cancelled) {
        sl_reply_set_cancel(h->r, NULL, NULL);
        if (rc == SL_OK) {
            sl_log(SL_WARN, "groups",
                   "test hook: %s is replicated, its reply "
                   "held",
                   h->line);
            sl_reply_drop(h->r);
        } else {
            sl_reply_error(h->r, rc, "GROUP_JOIN: not replicated");
        }
    }
    free(h);
}

/* 1 = this join's reply is held (the hook's file was there). */
static int hold_join(sl_groups *g, sl_reply *r, const char *group,
                     const char *member, int32_t gen)
{
    const char *path = getenv("SLUICE_TEST_HOLD_JOIN_REPLY");
    held_join *h;
    if (!path || !path[0] || unlink(path) != 0)
        return 0;
    h = calloc(1, sizeof(*h));
    if (!h)
        return 0;
    snprintf(h->line, sizeof(h->line),
             "join of member %s to group %s (generation %d)", member, group,
             (int)gen);
    h->r = r;
    sl_reply_set_cancel(r, held_cancel, h);
    sl_groups_wait(g, held_done, h);
    return 1;
}

static void h_join(sl_broker *b, sl_conn *c, const sl_req *req, sl_reply *r)
{
    sl_group_join_req q;
    sl_group_join_resp resp;
    sl_arena a;
    char group[SL_BG_NAME_MAX], member[128], client[128], msg[600];
    char **topics = NULL;
    char *mid = NULL;
    sl_gtp *as = NULL;
    size_t nas = 0;
    int32_t gen;
    sl_groups *g = sl_bg_groups(b, r);
    sl_wb wb;
    sl_err rc;
    (void)c;
    if (!g)
        return;
    sl_arena_init(&a);
    sl_wb_init(&wb, 256);
    if (sl_group_join_req_decode(req->body, req->len, &a, &q) != SL_OK) {
        sl_reply_error(r, SL_ERR_MALFORMED, "GROUP_JOIN: malformed body");
        goto out;
    }
    if (sl_bg_cstr(q.group, group, sizeof(group)) || !group[0] ||
        q.ntopics == 0 || q.ntopics > 256) {
        sl_reply_error(r, SL_ERR_INVALID_ARG,
                       "GROUP_JOIN: needs a group name and 1..256 topics");
        goto out;
    }
    if (!sl_bg_coordinated(b, group, "GROUP_JOIN", r))
        goto out;
    if (sl_bg_cstr(q.member_id, member, sizeof(member)))
        member[0] = 0;
    if (sl_bg_cstr(q.client_id, client, sizeof(client)))
        client[0] = 0;
    topics = calloc(q.ntopics, sizeof(char *));
    if (!topics) {
        sl_reply_error(r, SL_ERR_NOMEM, "GROUP_JOIN: out of memory");
        goto out;
    }
    for (uint32_t i = 0; i < q.ntopics; i++) {
        topics[i] = sl_arena_alloc(&a, SL_BG_NAME_MAX);
        if (!topics[i] || sl_bg_cstr(q.topics[i], topics[i], SL_BG_NAME_MAX)) {
            sl_reply_error(r, SL_ERR_INVALID_ARG, "GROUP_JOIN: bad topic");
            goto out;
        }
    }
    rc = sl_sgroup_join(g, group, member, client, (const char *const *)topics,
                        q.ntopics,
                        q.session_timeout_ms ? q.session_timeout_ms : 10000,
                        &mid, &gen, &as, &nas);
    if (rc != SL_OK) {
        snprintf(msg, sizeof(msg), "GROUP_JOIN %s: %s", group, sl_strerror(rc));
        sl_reply_error(r, rc, msg);
        goto out;
    }
    memset(&resp, 0, sizeof(resp));
    resp.member_id = sl_str_c(mid);
    resp.generation = gen;
    resp.heartbeat_interval_ms =
        (q.session_timeout_ms ? q.session_timeout_ms : 10000) / 3;
    resp.assignment = sl_arena_alloc(&a, (nas + 1) * sizeof(sl_topic_parts));
    if (!resp.assignment) {
        sl_reply_error(r, SL_ERR_NOMEM, "GROUP_JOIN: out of memory");
        goto out;
    }
    for (size_t i = 0; i < nas; i++) {
        sl_topic_parts *tp = NULL;
        for (uint32_t k = 0; k < resp.ntopics; k++)
            if (sl_str_eq(resp.assignment[k].topic, as[i].topic))
                tp = &resp.assignment[k];
        if (!tp) {
            tp = &resp.assignment[resp.ntopics++];
            tp->topic = sl_str_c(as[i].topic);
            tp->parts = sl_arena_alloc(&a, (nas + 1) * sizeof(uint32_t));
            if (!tp->parts) {
                sl_reply_error(r, SL_ERR_NOMEM, "GROUP_JOIN: out of memory");
                goto out;
            }
        }
        tp->parts[tp->nparts++] = (uint32_t)as[i].partition;
    }
    if (sl_group_join_resp_encode(&wb, req->correlation_id, &resp) != SL_OK) {
        sl_reply_error(r, SL_ERR_NOMEM, "GROUP_JOIN: encode failed");
    } else if (hold_join(g, r, group, mid, gen)) {
        /* the test hook above: no reply */
    } else {
        /* the new generation and members are group state: answered once
         * replicated, so the next coordinator knows this member */
        sl_bg_reply_when_durable(g, r, &wb);
        sl_wb_init(&wb, 0);
    }
out:
    free(topics);
    free(mid);
    free(as);
    sl_wb_fini(&wb);
    sl_arena_fini(&a);
}

static void h_member(sl_broker *b, sl_conn *c, const sl_req *req, sl_reply *r)
{
    sl_group_member_req q;
    char group[SL_BG_NAME_MAX], member[128];
    sl_groups *g = sl_bg_groups(b, r);
    sl_wb wb;
    sl_err rc;
    (void)c;
    if (!g)
        return;
    if (sl_group_member_req_decode(req->api_key, req->body, req->len, &q) !=
        SL_OK) {
        sl_reply_error(r, SL_ERR_MALFORMED, "malformed body");
        return;
    }
    if (sl_bg_cstr(q.group, group, sizeof(group)) ||
        sl_bg_cstr(q.member_id, member, sizeof(member))) {
        sl_reply_error(r, SL_ERR_INVALID_ARG, "bad group or member id");
        return;
    }
    if (!sl_bg_coordinated(b, group,
                           req->api_key == SL_API_GROUP_HEARTBEAT
                               ? "GROUP_HEARTBEAT"
                               : "GROUP_LEAVE",
                           r))
        return;
    if (req->api_key == SL_API_GROUP_HEARTBEAT)
        rc = sl_sgroup_heartbeat(g, group, member, q.generation);
    else
        rc = sl_sgroup_leave(g, group, member);
    sl_wb_init(&wb, 64);
    sl_status_resp_encode(&wb, req->correlation_id, rc,
                          rc ? sl_strerror(rc) : NULL);
    if (req->api_key == SL_API_GROUP_LEAVE && rc == SL_OK) {
        /* a leave is a rebalance, group state like a join: answered once
         * replicated. Answered before, a failover could bring the member
         * back at the new coordinator, holding its partitions unread until
         * its session ran out, after its consumer was told it had left. */
        sl_bg_reply_when_durable(g, r, &wb);
        sl_wb_init(&wb, 0);
    } else {
        sl_bg_reply_frame(r, &wb);
    }
    sl_wb_fini(&wb);
}

/* ---- 13 OFFSET_COMMIT, 14 OFFSET_FETCH ----------------------------------- */

static void h_commit(sl_broker *b, sl_conn *c, const sl_req *req, sl_reply *r)
{
    sl_offset_commit_req q;
    sl_offset_commit_resp resp;
    sl_arena a;
    char group[SL_BG_NAME_MAX], member[128], topic[SL_BG_NAME_MAX];
    sl_groups *g = sl_bg_groups(b, r);
    sl_wb wb;
    (void)c;
    if (!g)
        return;
    sl_arena_init(&a);
    sl_wb_init(&wb, 256);
    if (sl_offset_commit_req_decode(req->body, req->len, &a, &q) != SL_OK) {
        sl_reply_error(r, SL_ERR_MALFORMED, "OFFSET_COMMIT: malformed body");
        goto out;
    }
    if (sl_bg_cstr(q.group, group, sizeof(group)) || !group[0]) {
        sl_reply_error(r, SL_ERR_INVALID_ARG, "OFFSET_COMMIT: bad group");
        goto out;
    }
    if (!sl_bg_coordinated(b, group, "OFFSET_COMMIT", r))
        goto out;
    if (sl_bg_cstr(q.member_id, member, sizeof(member)))
        member[0] = 0;
    memset(&resp, 0, sizeof(resp));
    resp.ntopics = q.ntopics;
    resp.topics = sl_arena_alloc(&a, (q.ntopics + 1) * sizeof(*resp.topics));
    if (!resp.topics) {
        sl_reply_error(r, SL_ERR_NOMEM, "OFFSET_COMMIT: out of memory");
        goto out;
    }
    for (uint32_t i = 0; i < q.ntopics; i++) {
        sl_commit_topic *t = &q.topics[i];
        sl_part_err_topic *rt = &resp.topics[i];
        int bad = sl_bg_cstr(t->topic, topic, sizeof(topic));
        rt->topic = t->topic;
        rt->nparts = t->nparts;
        rt->parts = sl_arena_alloc(&a, (t->nparts + 1) * sizeof(*rt->parts));
        if (!rt->parts) {
            sl_reply_error(r, SL_ERR_NOMEM, "OFFSET_COMMIT: out of memory");
            goto out;
        }
        for (uint32_t k = 0; k < t->nparts; k++) {
            rt->parts[k].partition = t->parts[k].partition;
            rt->parts[k].error =
                bad ? SL_ERR_INVALID_TOPIC
                    : sl_sgroup_commit(g, group, member[0] ? member : NULL,
                                       member[0] ? q.generation : -1, topic,
                                       (int32_t)t->parts[k].partition,
                                       t->parts[k].offset);
        }
    }
    if (sl_offset_commit_resp_encode(&wb, req->correlation_id, &resp) !=
        SL_OK) {
        sl_reply_error(r, SL_ERR_NOMEM, "OFFSET_COMMIT: encode failed");
        goto out;
    }
    sl_bg_reply_when_durable(g, r, &wb);
    sl_wb_init(&wb, 0);
out:
    sl_wb_fini(&wb);
    sl_arena_fini(&a);
}

static void h_fetch_offsets(sl_broker *b, sl_conn *c, const sl_req *req,
                            sl_reply *r)
{
    sl_offset_fetch_req q;
    sl_offset_fetch_resp resp;
    sl_arena a;
    char group[SL_BG_NAME_MAX], topic[SL_BG_NAME_MAX];
    sl_group_info *info = NULL;
    sl_groups *g = sl_bg_groups(b, r);
    sl_wb wb;
    (void)c;
    if (!g)
        return;
    sl_arena_init(&a);
    sl_wb_init(&wb, 256);
    memset(&resp, 0, sizeof(resp));
    if (sl_offset_fetch_req_decode(req->body, req->len, &a, &q) != SL_OK) {
        sl_reply_error(r, SL_ERR_MALFORMED, "OFFSET_FETCH: malformed body");
        goto out;
    }
    if (sl_bg_cstr(q.group, group, sizeof(group))) {
        sl_reply_error(r, SL_ERR_INVALID_ARG, "OFFSET_FETCH: bad group");
        goto out;
    }
    if (!sl_bg_coordinated(b, group, "OFFSET_FETCH", r))
        goto out;
    if (q.ntopics == 0) {
        /* Everything committed by the group. */
        if (sl_groups_describe(g, group, &info) == SL_OK && info->kind == 0) {
            resp.topics =
                sl_arena_alloc(&a, (info->nparts + 1) * sizeof(*resp.topics));
            if (!resp.topics)
                goto nomem;
            for (size_t i = 0; i < info->nparts; i++) {
                sl_committed_topic *t = NULL;
                for (uint32_t k = 0; k < resp.ntopics; k++)
                    if (sl_str_eq(resp.topics[k].topic, info->parts[i].topic))
                        t = &resp.topics[k];
                if (!t) {
                    t = &resp.topics[resp.ntopics++];
                    t->topic = sl_str_c(info->parts[i].topic);
                    t->parts = sl_arena_alloc(&a, (info->nparts + 1) *
                                                      sizeof(*t->parts));
                    if (!t->parts)
                        goto nomem;
                }
                sl_committed_part *p = &t->parts[t->nparts++];
                p->partition = (uint32_t)info->parts[i].partition;
                p->offset = info->parts[i].start;
            }
        }
    } else {
        resp.ntopics = q.ntopics;
        resp.topics =
            sl_arena_alloc(&a, (q.ntopics + 1) * sizeof(*resp.topics));
        if (!resp.topics)
            goto nomem;
        for (uint32_t i = 0; i < q.ntopics; i++) {
            sl_committed_topic *t = &resp.topics[i];
            int bad = sl_bg_cstr(q.topics[i].topic, topic, sizeof(topic));
            t->topic = q.topics[i].topic;
            t->nparts = q.topics[i].nparts;
            t->parts = sl_arena_alloc(&a, (t->nparts + 1) * sizeof(*t->parts));
            if (!t->parts)
                goto nomem;
            for (uint32_t k = 0; k < t->nparts; k++) {
                t->parts[k].partition = q.topics[i].parts[k];
                t->parts[k].error = bad ? SL_ERR_INVALID_TOPIC : SL_OK;
                t->parts[k].offset =
                    bad ? -1
                        : sl_sgroup_committed(g, group, topic,
                                              (int32_t)q.topics[i].parts[k]);
            }
        }
    }
    if (sl_offset_fetch_resp_encode(&wb, req->correlation_id, &resp) != SL_OK)
        goto nomem;
    sl_bg_reply_frame(r, &wb);
    goto out;
nomem:
    sl_reply_error(r, SL_ERR_NOMEM, "OFFSET_FETCH: out of memory");
out:
    sl_group_info_free(info);
    sl_wb_fini(&wb);
    sl_arena_fini(&a);
}

void sl_bg_stream_register(sl_broker *b)
{
    sl_binary_register(b, SL_API_GROUP_JOIN, 1, 1, h_join);
    sl_binary_register(b, SL_API_GROUP_HEARTBEAT, 1, 1, h_member);
    sl_binary_register(b, SL_API_GROUP_LEAVE, 1, 1, h_member);
    sl_binary_register(b, SL_API_OFFSET_COMMIT, 1, 1, h_commit);
    sl_binary_register(b, SL_API_OFFSET_FETCH, 1, 1, h_fetch_offsets);
}
