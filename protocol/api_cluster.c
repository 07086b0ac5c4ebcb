/*
 * api_cluster.c - CLUSTER_STATUS (28): the cluster as this node sees it
 * (nodes, which are up, the metadata leader) and, for the topics asked
 * for, each partition's leader, leader epoch, replicas and ISR. Wire
 * layout in docs/protocol.md 4.28.
 */
#include "protocol/api_cluster.h"
#include "protocol/api_common_int.h"
#include "protocol/frame.h"

sl_err sl_cluster_status_req_encode(sl_wb *wb, uint32_t corr,
                                    const sl_cluster_status_req *r)
{
    size_t st = sl_req_begin(wb, SL_API_CLUSTER_STATUS, SL_API_V1, corr);
    sl__put_strs(wb, r->ntopics, r->topics);
    return sl_frame_finish(wb, st);
}

sl_err sl_cluster_status_req_decode(const uint8_t *body, size_t len,
                                    sl_arena *a, sl_cluster_status_req *out)
{
    sl_rd rd;
    sl_cluster_status_req o = {0};
    sl_err rc;

    sl_rd_init(&rd, body, len);
    o.topics = sl__get_strs(&rd, a, &o.ntopics);
    rc = sl__rd_end(&rd);
    if (rc == SL_OK)
        *out = o;
    return rc;
}

static void put_ids(sl_wb *wb, uint32_t n, const int32_t *ids)
{
    sl_wb_u32(wb, n);
    for (uint32_t i = 0; i < n; i++)
        sl_wb_u32(wb, (uint32_t)ids[i]);
}

static int32_t *get_ids(sl_rd *rd, sl_arena *a, uint32_t *n)
{
    int32_t *ids;
    *n = sl__rd_count(rd, 4);
    ids = sl__rd_array(rd, a, *n, sizeof(int32_t));
    for (uint32_t i = 0; i < *n && !rd->err; i++)
        ids[i] = sl_rd_i32(rd);
    return ids;
}

sl_err sl_cluster_status_resp_encode(sl_wb *wb, uint32_t corr,
                                     const sl_cluster_status_resp *r)
{
    size_t st;
    if (r->error != SL_OK)
        return sl__resp_error(wb, corr, r->error, r->error_msg);
    st = sl_resp_begin(wb, corr, SL_OK);
    sl_wb_u32(wb, (uint32_t)r->node_id);
    sl_wb_u32(wb, (uint32_t)r->leader_id);
    sl_wb_u64(wb, r->term);
    sl_wb_u64(wb, r->applied);
    sl_wb_u32(wb, r->nnodes);
    for (uint32_t i = 0; i < r->nnodes; i++) {
        const sl_cl_node *n = &r->nodes[i];
        sl_wb_u32(wb, (uint32_t)n->id);
        sl_wb_u8(wb, n->up);
        sl__wb_str(wb, n->raft_addr);
        sl__wb_str(wb, n->addr);
        sl__wb_str(wb, n->stomp_addr);
    }
    sl_wb_u32(wb, r->ntopics);
    for (uint32_t i = 0; i < r->ntopics; i++) {
        const sl_cl_topic *t = &r->topics[i];
        sl__wb_str(wb, t->name);
        sl_wb_u32(wb, (uint32_t)t->error);
        sl_wb_u32(wb, t->nparts);
        for (uint32_t j = 0; j < t->nparts; j++) {
            const sl_cl_part *p = &t->parts[j];
            sl_wb_u32(wb, p->partition);
            sl_wb_u32(wb, (uint32_t)p->leader);
            sl_wb_u32(wb, (uint32_t)p->leader_epoch);
            put_ids(wb, p->nreplicas, p->replicas);
            put_ids(wb, p->nisr, p->isr);
        }
    }
    return sl_frame_finish(wb, st);
}

sl_err sl_cluster_status_resp_decode(const uint8_t *body, size_t len,
                                     sl_arena *a, sl_cluster_status_resp *out)
{
    sl_rd rd;
    sl_cluster_status_resp o = {0};
    sl_err rc;

    sl_rd_init(&rd, body, len);
    if (!sl__rd_resp_status(&rd, &o.error, &o.error_msg))
        goto out;
    o.node_id = sl_rd_i32(&rd);
    o.leader_id = sl_rd_i32(&rd);
    o.term = sl_rd_u64(&rd);
    o.applied = sl_rd_u64(&rd);
    o.nnodes = sl__rd_count(&rd, 5 + 3 * SL_MIN_STR);
    o.nodes = sl__rd_array(&rd, a, o.nnodes, sizeof(*o.nodes));
    for (uint32_t i = 0; i < o.nnodes && !rd.err; i++) {
        sl_cl_node *n = &o.nodes[i];
        n->id = sl_rd_i32(&rd);
        n->up = sl_rd_u8(&rd);
        n->raft_addr = sl__rd_str(&rd);
        n->addr = sl__rd_str(&rd);
        n->stomp_addr = sl__rd_str(&rd);
    }
    o.ntopics = sl__rd_count(&rd, SL_MIN_STR + 8);
    o.topics = sl__rd_array(&rd, a, o.ntopics, sizeof(*o.topics));
    for (uint32_t i = 0; i < o.ntopics && !rd.err; i++) {
        sl_cl_topic *t = &o.topics[i];
        t->name = sl__rd_str(&rd);
        t->error = sl_rd_i32(&rd);
        t->nparts = sl__rd_count(&rd, 20);
        t->parts = sl__rd_array(&rd, a, t->nparts, sizeof(*t->parts));
        for (uint32_t j = 0; j < t->nparts && !rd.err; j++) {
            sl_cl_part *p = &t->parts[j];
            p->partition = sl_rd_u32(&rd);
            p->leader = sl_rd_i32(&rd);
            p->leader_epoch = sl_rd_i32(&rd);
            p->replicas = get_ids(&rd, a, &p->nreplicas);
            p->isr = get_ids(&rd, a, &p->nisr);
        }
    }
out:
    rc = sl__rd_end(&rd);
    if (rc == SL_OK)
        *out = o;
    return rc;
}

/* ---- 30 CLUSTER_FORWARD ------------------------------------------------ */

sl_err sl_cluster_forward_req_encode(sl_wb *wb, uint32_t corr, const void *cmd,
                                     size_t len)
{
    size_t st = sl_req_begin(wb, SL_API_CLUSTER_FORWARD, SL_API_V1, corr);
    sl_wb_bytes32(wb, cmd, len);
    return sl_frame_finish(wb, st);
}

sl_err sl_cluster_forward_req_decode(const uint8_t *body, size_t len,
                                     const uint8_t **cmd, size_t *cmd_len)
{
    sl_rd rd;
    size_t n = 0;
    const uint8_t *p;
    sl_err rc;

    sl_rd_init(&rd, body, len);
    p = sl__rd_blob(&rd, &n);
    rc = sl__rd_end(&rd);
    if (rc == SL_OK) {
        *cmd = p;
        *cmd_len = n;
    }
    return rc;
}
