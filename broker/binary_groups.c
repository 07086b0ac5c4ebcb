/*
 * binary_groups.c - the binary protocol's group APIs as a module of
 * sluiced, over groups/groups.h: the helpers its handler files share,
 * GROUP_LIST and GROUP_DESCRIBE (15-16, both kinds of group), and the
 * module's start and stop. The handlers:
 *   binary_stream_groups.c  stream groups: 10 GROUP_JOIN, 11 HEARTBEAT,
 *                           12 LEAVE, 13 OFFSET_COMMIT, 14 OFFSET_FETCH
 *   binary_queue_groups.c   queue groups: the consumer registry, 20
 *                           QUEUE_ACQUIRE, 21-24 ACK NACK REJECT TOUCH,
 *                           27 QUEUE_GROUP_CONFIG
 *   binary_dlq.c            25 DLQ_LIST, 26 DLQ_REDRIVE (the rules are
 *                           groups/dlq.c's)
 * @thread loop
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "broker/acl.h"
#include "broker/binary.h"
#include "broker/binary_groups.h"
#include "broker/broker.h"
#include "broker/config.h"
#include "broker/group_route.h"
#include "broker/ops_groups.h"
#include "groups/dlq.h"
#include "protocol/api.h"
#include "protocol/log.h"

/* ---- small helpers ------------------------------------------------------ */

int sl_bg_cstr(sl_str s, char *buf, size_t size)
{
    if (!s.p || s.len >= size)
        return -1;
    memcpy(buf, s.p, s.len);
    buf[s.len] = 0;
    return 0;
}

void sl_bg_reply_frame(sl_reply *r, sl_wb *wb)
{
    if (wb->err) {
        sl_reply_error(r, SL_ERR_NOMEM, "out of memory");
        return;
    }
    sl_reply_add(r, wb->p, wb->len);
    sl_reply_done(r);
}

sl_groups *sl_bg_groups(sl_broker *b, sl_reply *r)
{
    sl_groups *g = sl_ops_groups(b);
    if (!g)
        sl_reply_error(r, SL_ERR_SHUTTING_DOWN, "groups are shutting down");
    return g;
}

static int served(sl_broker *b, const char *group, const char *what,
                  sl_reply *r, int settle)
{
    char msg[700], full[800];
    if (settle ? sl_ops_group_settles(b, group, msg, sizeof(msg))
               : sl_ops_group_coordinated(b, group, msg, sizeof(msg)))
        return 1;
    snprintf(full, sizeof(full), "%s: %s", what, msg);
    sl_reply_error(r, SL_ERR_NOT_COORDINATOR, full);
    return 0;
}

int sl_bg_coordinated(sl_broker *b, const char *group, const char *what,
                      sl_reply *r)
{
    return served(b, group, what, r, 0);
}

int sl_bg_settles(sl_broker *b, const char *group, const char *what,
                  sl_reply *r)
{
    return served(b, group, what, r, 1);
}

/* A reply waiting for a groups commit. */
typedef struct dwait {
    sl_reply *r;
    sl_wb wb;
    int cancelled;
} dwait;

static void dwait_cancel(void *arg)
{
    ((dwait *)arg)->cancelled = 1; /* the groups waiter frees it */
}

static void dwait_done(void *arg, sl_err rc)
{
    dwait *w = arg;
    if (!w->cancelled) {
        sl_reply_set_cancel(w->r, NULL, NULL);
        if (rc == SL_OK)
            sl_bg_reply_frame(w->r, &w->wb);
        else if (rc == SL_ERR_NOT_COORDINATOR || rc == SL_ERR_NOT_LEADER ||
                 rc == SL_ERR_FENCED_LEADER_EPOCH)
            /* The group's state partition moved to another node (a
             * failover, a controlled shutdown's fence) before the change
             * reached the replicated state log: the new coordinator's
             * state does not have it and this node dropped the group.
             * Retriable there: libsluice looks the coordinator up again,
             * and the records not settled there come again. */
            sl_reply_error(w->r, SL_ERR_NOT_COORDINATOR,
                           "not applied: this node stopped coordinating the "
                           "group (it moved to another node: a failover or "
                           "a controlled shutdown) before the change was "
                           "replicated; ask the new coordinator, which "
                           "delivers the records again");
        else if (rc == SL_ERR_SHUTTING_DOWN)
            sl_reply_error(w->r, rc,
                           "not confirmed: the broker stopped before the "
                           "change was durable; records it did not settle "
                           "come again");
        else if (rc == SL_ERR_NOT_ENOUGH_REPLICAS || rc == SL_ERR_TIMEOUT) {
            /* the state stays here and the next round carries it again */
            char msg[300];
            snprintf(msg, sizeof(msg),
                     "applied but not yet durable: the replicated group "
                     "state log could not be written (%s). It is written by "
                     "the next round that succeeds; if this node stops "
                     "coordinating the group before that, it is undone "
                     "(records are redelivered)",
                     sl_strerror(rc));
            sl_reply_error(w->r, rc, msg);
        } else
            /* Honest about what happened (issue 18, finding 13): the
             * change (ack, nack, reject, offset commit) is already applied
             * in memory and is written with the next commit that succeeds
             * (e.g. once the disk has space again); only a broker stop
             * before then undoes it. */
            sl_reply_error(w->r, rc,
                           "applied but not yet durable: groups.db could not "
                           "be written (see the broker log; a full disk?). "
                           "It is written by the next commit that succeeds; "
                           "if the broker stops before that, it is undone "
                           "(records are redelivered)");
    }
    sl_wb_fini(&w->wb);
    free(w);
}

void sl_bg_reply_when_durable(sl_groups *g, sl_reply *r, sl_wb *wb)
{
    dwait *w = calloc(1, sizeof(*w));
    if (!w) {
        sl_wb_fini(wb);
        sl_reply_error(r, SL_ERR_NOMEM, "out of memory");
        return;
    }
    w->r = r;
    w->wb = *wb;
    sl_reply_set_cancel(r, dwait_cancel, w);
    sl_groups_wait(g, dwait_done, w);
}

/* ---- 15 GROUP_LIST, 16 GROUP_DESCRIBE ------------------------------------ */

/* This node's groups, those c may see (c NULL: all), as a GROUP_LIST
 * response frame with correlation id corr. */
static sl_err list_encode(sl_broker *b, sl_conn *c, uint32_t corr, sl_wb *wb)
{
    sl_group_list_resp resp;
    char **names = NULL;
    int *kinds = NULL;
    size_t n = 0;
    sl_group_info **infos = NULL;
    sl_groups *g = sl_ops_groups(b);
    sl_err rc = SL_ERR_NOMEM;
    if (!g)
        return SL_ERR_SHUTTING_DOWN;
    memset(&resp, 0, sizeof(resp));
    if (sl_groups_list(g, &names, &kinds, &n) != SL_OK)
        goto out;
    resp.groups = calloc(n + 1, sizeof(*resp.groups));
    infos = calloc(n + 1, sizeof(*infos));
    if (!resp.groups || !infos)
        goto out;
    for (size_t i = 0; i < n; i++) {
        sl_group_entry *e = &resp.groups[resp.ngroups];
        if ((c && !sl_acl_conn_may_list(b, c, SL_RES_GROUP, names[i])) ||
            sl_groups_describe(g, names[i], &infos[i]) != SL_OK)
            continue;
        e->group = sl_str_c(names[i]);
        e->kind = (uint8_t)infos[i]->kind;
        e->state = sl_str_c(infos[i]->state);
        e->members = (uint32_t)infos[i]->nmembers;
        resp.ngroups++;
    }
    rc = sl_group_list_resp_encode(wb, corr, &resp);
out:
    for (size_t i = 0; i < n; i++) {
        free(names[i]);
        if (infos)
            sl_group_info_free(infos[i]);
    }
    free(names);
    free(kinds);
    free(infos);
    free(resp.groups);
    return rc;
}

static sl_err list_local(sl_broker *b, sl_wb *wb)
{
    return list_encode(b, NULL, 0, wb);
}

/* In a cluster, version 1 is answered for every node (group_route.c);
 * version 2 and a single node answer with this node's groups. */
static void h_list(sl_broker *b, sl_conn *c, const sl_req *req, sl_reply *r)
{
    sl_wb wb;
    sl_err rc;
    if (!sl_bg_groups(b, r) || sl_groute_list(b, c, req, r, list_local))
        return;
    sl_wb_init(&wb, 256);
    rc = list_encode(b, c, req->correlation_id, &wb);
    if (rc == SL_OK)
        sl_bg_reply_frame(r, &wb);
    else
        sl_reply_error(r, rc, "GROUP_LIST: out of memory");
    sl_wb_fini(&wb);
}

static void h_describe(sl_broker *b, sl_conn *c, const sl_req *req, sl_reply *r)
{
    sl_group_describe_req q;
    sl_group_describe_resp resp;
    char group[SL_BG_NAME_MAX], msg[400];
    sl_group_info *info = NULL;
    sl_member_desc *mem = NULL;
    sl_group_part_desc *parts = NULL;
    sl_tp **assign = NULL; /* api.h pairs */
    sl_groups *g = sl_bg_groups(b, r);
    sl_wb wb;
    sl_err rc;
    (void)c;
    if (!g)
        return;
    sl_wb_init(&wb, 256);
    if (sl_group_describe_req_decode(req->body, req->len, &q) != SL_OK) {
        sl_reply_error(r, SL_ERR_MALFORMED, "GROUP_DESCRIBE: malformed body");
        goto out;
    }
    if (sl_bg_cstr(q.group, group, sizeof(group))) {
        sl_reply_error(r, SL_ERR_INVALID_ARG, "GROUP_DESCRIBE: bad group");
        goto out;
    }
    if (sl_groute_describe(b, req, group, r))
        goto out; /* at its coordinator (group_route.c) */
    rc = sl_groups_describe(g, group, &info);
    if (rc != SL_OK) {
        snprintf(msg, sizeof(msg), "GROUP_DESCRIBE: group %s: %s", group,
                 sl_strerror(rc));
        sl_reply_error(r, rc, msg);
        goto out;
    }
    memset(&resp, 0, sizeof(resp));
    mem = calloc(info->nmembers + 1, sizeof(*mem));
    parts = calloc(info->nparts + 1, sizeof(*parts));
    assign = calloc(info->nmembers + 1, sizeof(*assign));
    if (!mem || !parts || !assign)
        goto nomem;
    resp.group = sl_str_c(info->name);
    resp.kind = (uint8_t)info->kind;
    resp.state = sl_str_c(info->state);
    resp.generation = info->generation;
    if (info->kind == 1 && info->dlq_topic[0]) {
        resp.dlq_topic = sl_str_c(info->dlq_topic);
        resp.dlq_depth = sl_dlq_depth(g, info->dlq_topic, NULL, NULL);
        if (resp.dlq_depth < 0) /* not created yet: as DLQ_LIST says */
            resp.dlq_depth = 0;
    } else {
        resp.dlq_depth = -1;
    }
    for (size_t i = 0; i < info->nmembers; i++) {
        sl_gmember_info *m = &info->members[i];
        mem[i].member_id = sl_str_c(m->id);
        mem[i].client_id = sl_str_c(m->name);
        if (m->nassign) {
            assign[i] = calloc(m->nassign, sizeof(sl_tp));
            if (!assign[i])
                goto nomem;
            for (size_t k = 0; k < m->nassign; k++) {
                assign[i][k].topic = sl_str_c(m->assign[k].topic);
                assign[i][k].partition = (uint32_t)m->assign[k].partition;
            }
            mem[i].assigned = assign[i];
            mem[i].nassigned = (uint32_t)m->nassign;
        }
    }
    for (size_t i = 0; i < info->nparts; i++) {
        sl_gpart_info *p = &info->parts[i];
        parts[i].topic = sl_str_c(p->topic);
        parts[i].partition = (uint32_t)p->partition;
        parts[i].committed = p->start;
        parts[i].log_end = p->log_end;
        parts[i].lag = p->lag;
        parts[i].in_flight = p->acquired > 0 ? (uint32_t)p->acquired : 0;
    }
    resp.nmembers = (uint32_t)info->nmembers;
    resp.members = mem;
    resp.nparts = (uint32_t)info->nparts;
    resp.parts = parts;
    if (sl_group_describe_resp_encode(&wb, req->correlation_id, &resp) != SL_OK)
        goto nomem;
    sl_bg_reply_frame(r, &wb);
    goto out;
nomem:
    sl_reply_error(r, SL_ERR_NOMEM, "GROUP_DESCRIBE: out of memory");
out:
    for (size_t i = 0; assign && info && i < info->nmembers; i++)
        free(assign[i]);
    free(assign);
    free(mem);
    free(parts);
    sl_group_info_free(info);
    sl_wb_fini(&wb);
}

/* ---- registration
 * ------------------------------------------------------------ */

void sl_binary_groups_module_init(sl_broker *b)
{
    if (sl_bg_queue_init(b) != SL_OK) {
        sl_broker_fail(b, "groups: cannot start the binary group APIs");
        return;
    }
    sl_bg_stream_register(b);
    /* version 2: this node's own (group_route.c asks other nodes so) */
    sl_binary_register(b, SL_API_GROUP_LIST, 1, 2, h_list);
    sl_binary_register(b, SL_API_GROUP_DESCRIBE, 1, 2, h_describe);
    sl_bg_dlq_register(b);
}

void sl_binary_groups_module_fini(sl_broker *b)
{
    sl_bg_queue_fini(b);
}
