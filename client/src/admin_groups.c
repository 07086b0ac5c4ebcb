/*
 * admin_groups.c - sluice_admin's group calls (admin.c has the handle):
 * list and describe groups, dead-letter topics (list, redrive) and
 * queue-group settings, each a synchronous request/reply on the admin
 * connection.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/src/admin_int.h"
#include "client/src/conn.h"
#include "client/src/internal.h"
#include "protocol/api.h"

/* ---- groups ----------------------------------------------------------- */

static void group_info_fini(sluice_group_info *g)
{
    size_t i;
    free(g->name);
    free(g->state);
    free(g->dlq_topic);
    for (i = 0; g->members && i < g->member_count; i++) {
        free(g->members[i].member_id);
        free(g->members[i].client_id);
        sluice_topic_partitions_free(g->members[i].assignments,
                                     g->members[i].assignment_count);
    }
    free(g->members);
    for (i = 0; g->partitions && i < g->partition_count; i++)
        free(g->partitions[i].topic);
    free(g->partitions);
}

void sluice_group_list_free(sluice_group_list *list)
{
    size_t i;
    if (!list)
        return;
    for (i = 0; i < list->count; i++)
        group_info_fini(&list->groups[i]);
    free(list->groups);
    free(list);
}

void sluice_group_info_free(sluice_group_info *info)
{
    if (!info)
        return;
    group_info_fini(info);
    free(info);
}

sluice_err sluice_admin_list_groups(sluice_admin *a, sluice_group_list **out)
{
    sl_group_list_resp resp;
    sluice_group_list *l = NULL;
    sl_chunk *fr = NULL;
    const uint8_t *body;
    size_t len, i;
    uint32_t corr;
    sl_err rc;

    BEGIN(a);
    rc = sl_group_list_req_encode(&a->conn.out, corr);
    if (rc != SL_OK) {
        rc = sl_cl_fail(rc, "list groups");
        goto out;
    }
    rc = sl_cl_admin_roundtrip(a, corr, "list groups", &fr, &body, &len);
    if (rc != SL_OK)
        goto out;
    rc = sl_group_list_resp_decode(body, len, &a->arena, &resp);
    if (rc != SL_OK) {
        rc = sl_cl_bad_reply(rc, "list groups");
        goto out;
    }
    l = calloc(1, sizeof(*l));
    if (!l || !(l->groups = calloc(resp.ngroups + 1, sizeof(*l->groups)))) {
        rc = sl_cl_fail(SL_ERR_NOMEM, "list groups");
        goto out;
    }
    for (i = 0; i < resp.ngroups; i++) {
        sluice_group_info *g = &l->groups[i];
        l->count++;
        g->name = sl_cl_admin_dupstr(resp.groups[i].group);
        g->state = sl_cl_admin_dupstr(resp.groups[i].state);
        g->kind = resp.groups[i].kind == SL_GROUP_QUEUE ? SLUICE_GROUP_QUEUE
                                                        : SLUICE_GROUP_STREAM;
        g->member_count = resp.groups[i].members; /* members stays NULL */
        g->dlq_depth = -1;
        if (!g->name) {
            rc = sl_cl_fail(SL_ERR_NOMEM, "list groups");
            goto out;
        }
    }
    *out = l;
    l = NULL;
out:
    sluice_group_list_free(l);
    sl_chunk_unref(fr);
    pthread_mutex_unlock(&a->mu);
    return (sluice_err)rc;
}

sluice_err sluice_admin_describe_group(sluice_admin *a, const char *group,
                                       sluice_group_info **out)
{
    sl_group_describe_req req;
    sl_group_describe_resp resp;
    sluice_group_info *g = NULL;
    sl_chunk *fr = NULL;
    const uint8_t *body;
    size_t len, i, k;
    uint32_t corr;
    sl_err rc;

    BEGIN(a);
    req.group = sl_str_c(group);
    rc = sl_group_describe_req_encode(&a->conn.out, corr, &req);
    if (rc != SL_OK) {
        rc = sl_cl_fail(rc, "describe group '%s'", group);
        goto out;
    }
    rc = sl_cl_admin_roundtrip(a, corr, "describe group", &fr, &body, &len);
    if (rc != SL_OK)
        goto out;
    rc = sl_group_describe_resp_decode(body, len, &a->arena, &resp);
    if (rc != SL_OK) {
        rc = sl_cl_bad_reply(rc, "describe group");
        goto out;
    }
    g = calloc(1, sizeof(*g));
    if (!g) {
        rc = sl_cl_fail(SL_ERR_NOMEM, "describe group");
        goto out;
    }
    g->name = resp.group.p ? sl_cl_admin_dupstr(resp.group) : strdup(group);
    g->kind =
        resp.kind == SL_GROUP_QUEUE ? SLUICE_GROUP_QUEUE : SLUICE_GROUP_STREAM;
    g->state = sl_cl_admin_dupstr(resp.state);
    g->generation = resp.generation;
    g->dlq_topic = sl_cl_admin_dupstr(resp.dlq_topic);
    g->dlq_depth = resp.dlq_depth;
    g->members = calloc(resp.nmembers + 1, sizeof(*g->members));
    g->partitions = calloc(resp.nparts + 1, sizeof(*g->partitions));
    if (!g->name || !g->members || !g->partitions) {
        rc = sl_cl_fail(SL_ERR_NOMEM, "describe group");
        goto out;
    }
    for (i = 0; i < resp.nmembers; i++) {
        sl_member_desc *md = &resp.members[i];
        sluice_group_member *m = &g->members[i];
        g->member_count++;
        m->member_id = sl_cl_admin_dupstr(md->member_id);
        m->client_id = sl_cl_admin_dupstr(md->client_id);
        m->assignments = calloc(md->nassigned + 1, sizeof(*m->assignments));
        if (!m->assignments) {
            rc = sl_cl_fail(SL_ERR_NOMEM, "describe group");
            goto out;
        }
        for (k = 0; k < md->nassigned; k++) {
            m->assignments[k].topic = sl_cl_admin_dupstr(md->assigned[k].topic);
            m->assignments[k].partition = (int32_t)md->assigned[k].partition;
            m->assignments[k].offset = -1;
            m->assignment_count++;
        }
    }
    for (i = 0; i < resp.nparts; i++) {
        sl_group_part_desc *pd = &resp.parts[i];
        sluice_group_partition *p = &g->partitions[i];
        g->partition_count++;
        p->topic = sl_cl_admin_dupstr(pd->topic);
        p->partition = (int32_t)pd->partition;
        p->committed = pd->committed;
        p->log_end = pd->log_end;
        p->lag = pd->lag;
        p->in_flight =
            g->kind == SLUICE_GROUP_QUEUE ? (int64_t)pd->in_flight : -1;
        p->available = -1;
    }
    *out = g;
    g = NULL;
out:
    sluice_group_info_free(g);
    sl_chunk_unref(fr);
    pthread_mutex_unlock(&a->mu);
    return (sluice_err)rc;
}

/* ---- dead-letter topics ----------------------------------------------- */

void sluice_dlq_list_free(sluice_dlq_list *list)
{
    size_t i;
    if (!list)
        return;
    for (i = 0; i < list->count; i++) {
        free(list->dlqs[i].topic);
        free(list->dlqs[i].source_topic);
    }
    free(list->dlqs);
    free(list);
}

sluice_err sluice_admin_dlq_list(sluice_admin *a, const char *source_topic,
                                 sluice_dlq_list **out)
{
    sl_dlq_list_req req;
    sl_dlq_list_resp resp;
    sluice_dlq_list *l = NULL;
    sl_chunk *fr = NULL;
    const uint8_t *body;
    size_t len, i, j;
    uint32_t corr;
    sl_err rc;

    BEGIN(a);
    req.topic = sl_str_c(source_topic);
    req.group = sl_str_c(NULL);
    rc = sl_dlq_list_req_encode(&a->conn.out, corr, &req);
    if (rc != SL_OK) {
        rc = sl_cl_fail(rc, "list dead-letter topics");
        goto out;
    }
    rc = sl_cl_admin_roundtrip(a, corr, "list dead-letter topics", &fr, &body,
                               &len);
    if (rc != SL_OK)
        goto out;
    rc = sl_dlq_list_resp_decode(body, len, &a->arena, &resp);
    if (rc != SL_OK) {
        rc = sl_cl_bad_reply(rc, "list dead-letter topics");
        goto out;
    }
    l = calloc(1, sizeof(*l));
    if (!l || !(l->dlqs = calloc(resp.ndlqs + 1, sizeof(*l->dlqs)))) {
        rc = sl_cl_fail(SL_ERR_NOMEM, "list dead-letter topics");
        goto out;
    }
    for (i = 0; i < resp.ndlqs; i++) {
        sl_dlq_entry *e = &resp.dlqs[i];
        /* one DLQ topic may serve several groups: list it once */
        for (j = 0; j < l->count; j++)
            if (sl_str_eq(e->dlq_topic, l->dlqs[j].topic))
                break;
        if (j < l->count)
            continue;
        l->dlqs[j].topic = sl_cl_admin_dupstr(e->dlq_topic);
        l->dlqs[j].source_topic = sl_cl_admin_dupstr(e->source_topic);
        l->dlqs[j].depth = e->depth;
        l->count++;
        if (!l->dlqs[j].topic) {
            rc = sl_cl_fail(SL_ERR_NOMEM, "list dead-letter topics");
            goto out;
        }
    }
    *out = l;
    l = NULL;
out:
    sluice_dlq_list_free(l);
    sl_chunk_unref(fr);
    pthread_mutex_unlock(&a->mu);
    return (sluice_err)rc;
}

sluice_err sluice_admin_dlq_redrive(sluice_admin *a, const char *dlq_topic,
                                    const char *to_topic, double rate,
                                    const char *reason, int64_t max_records,
                                    int64_t *moved)
{
    sl_dlq_redrive_req req;
    sl_dlq_redrive_resp resp;
    sl_chunk *fr = NULL;
    const uint8_t *body;
    size_t len;
    uint32_t corr;
    sl_err rc;

    if (!dlq_topic || !*dlq_topic)
        return (sluice_err)sl_cl_fail(SL_ERR_INVALID_TOPIC,
                                      "redrive: empty topic name");
    if (rate < 0)
        return (sluice_err)sl_cl_fail(SL_ERR_INVALID_ARG,
                                      "redrive: negative rate");
    BEGIN(a);
    req.dlq_topic = sl_str_c(dlq_topic);
    req.target_topic = sl_str_c(to_topic);
    req.reason = sl_str_c(reason);
    req.max_records = max_records < 0            ? 0
                      : max_records > UINT32_MAX ? UINT32_MAX
                                                 : (uint32_t)max_records;
    req.rate_per_sec = rate <= 0           ? 0
                       : rate < 1          ? 1
                       : rate > UINT32_MAX ? UINT32_MAX
                                           : (uint32_t)rate;
    rc = sl_dlq_redrive_req_encode(&a->conn.out, corr, &req);
    if (rc != SL_OK) {
        rc = sl_cl_fail(rc, "redrive '%s'", dlq_topic);
        goto out;
    }
    rc = sl_cl_admin_roundtrip(a, corr, "redrive", &fr, &body, &len);
    if (rc != SL_OK)
        goto out;
    rc = sl_dlq_redrive_resp_decode(body, len, &resp);
    if (rc != SL_OK) {
        rc = sl_cl_bad_reply(rc, "redrive");
        goto out;
    }
    if (moved)
        *moved = resp.moved;
out:
    sl_chunk_unref(fr);
    pthread_mutex_unlock(&a->mu);
    return (sluice_err)rc;
}

/* ---- queue-group settings ---------------------------------------------- */

void sluice_kv_array_free(sluice_kv *kvs, size_t count)
{
    size_t i;
    if (!kvs)
        return;
    for (i = 0; i < count; i++) {
        free(kvs[i].key);
        free(kvs[i].value);
    }
    free(kvs);
}

sluice_err sluice_admin_queue_group_config(sluice_admin *a, const char *topic,
                                           const char *group,
                                           sluice_qgroup_config_mode mode,
                                           const sluice_kv *configs,
                                           size_t count, sluice_kv **out,
                                           size_t *out_count)
{
    sl_queue_group_config_req req;
    sl_queue_group_config_resp resp;
    sl_chunk *fr = NULL;
    sluice_kv *kvs = NULL;
    const uint8_t *body;
    size_t len, i, nkv = 0;
    uint32_t corr;
    sl_err rc;

    if (!topic || !*topic)
        return (sluice_err)sl_cl_fail(SL_ERR_INVALID_TOPIC,
                                      "queue group config: empty topic name");
    if (!group || !*group)
        return (sluice_err)sl_cl_fail(SL_ERR_INVALID_ARG,
                                      "queue group config: empty group name");
    if (mode != SLUICE_QGROUP_UPSERT && mode != SLUICE_QGROUP_ALTER &&
        mode != SLUICE_QGROUP_DESCRIBE)
        return (sluice_err)sl_cl_fail(
            SL_ERR_INVALID_ARG, "queue group config: bad mode %d", (int)mode);
    if (mode == SLUICE_QGROUP_DESCRIBE && count)
        return (sluice_err)sl_cl_fail(
            SL_ERR_INVALID_ARG, "queue group config: describe takes no keys");
    if (count > UINT32_MAX || (count && !configs))
        return (sluice_err)sl_cl_fail(SL_ERR_INVALID_ARG,
                                      "queue group config: bad configs");
    for (i = 0; i < count; i++) {
        if (!configs[i].key || !*configs[i].key)
            return (sluice_err)sl_cl_fail(
                SL_ERR_INVALID_CONFIG,
                "queue group config '%s' on '%s': empty key (entry %zu)", group,
                topic, i);
        if (!configs[i].value)
            return (sluice_err)sl_cl_fail(
                SL_ERR_INVALID_CONFIG,
                "queue group config '%s' on '%s': no value for '%s'", group,
                topic, configs[i].key);
        /* the broker's limits (binary_groups.c): name the key here */
        if (strlen(configs[i].key) >= 128 || strlen(configs[i].value) >= 512)
            return (sluice_err)sl_cl_fail(
                SL_ERR_INVALID_CONFIG,
                "queue group config '%s' on '%s': key or value too long "
                "for setting '%.64s'",
                group, topic, configs[i].key);
    }
    BEGIN(a);
    memset(&req, 0, sizeof(req));
    req.group = sl_str_c(group);
    req.topic = sl_str_c(topic);
    req.mode = (uint8_t)mode;
    req.nconfigs = (uint32_t)count;
    if (count) {
        req.configs = sl_arena_alloc(&a->arena, count * sizeof(sl_kv));
        if (!req.configs) {
            rc = sl_cl_fail(SL_ERR_NOMEM, "queue group config");
            goto out;
        }
        for (i = 0; i < count; i++) {
            req.configs[i].key = sl_str_c(configs[i].key);
            req.configs[i].value = sl_str_c(configs[i].value);
        }
    }
    rc = sl_queue_group_config_req_encode(&a->conn.out, corr, &req);
    if (rc != SL_OK) {
        rc = sl_cl_fail(rc, "queue group config '%s' on '%s'", group, topic);
        goto out;
    }
    {
        char what[600];
        snprintf(what, sizeof(what), "queue group config '%s' on '%s'", group,
                 topic);
        rc = sl_cl_admin_roundtrip(a, corr, what, &fr, &body, &len);
    }
    if (rc != SL_OK)
        goto out;
    rc = sl_queue_group_config_resp_decode(body, len, &a->arena, &resp);
    if (rc != SL_OK) {
        rc = sl_cl_bad_reply(rc, "queue group config");
        goto out;
    }
    if (out) {
        kvs = calloc(resp.nconfigs + 1, sizeof(*kvs));
        if (!kvs) {
            rc = sl_cl_fail(SL_ERR_NOMEM, "queue group config");
            goto out;
        }
        for (nkv = 0; nkv < resp.nconfigs; nkv++) {
            kvs[nkv].key = sl_cl_admin_dupstr(resp.configs[nkv].key);
            kvs[nkv].value = strndup(
                resp.configs[nkv].value.p ? resp.configs[nkv].value.p : "",
                resp.configs[nkv].value.len);
            if (!kvs[nkv].key || !kvs[nkv].value) {
                nkv++;
                rc = sl_cl_fail(SL_ERR_NOMEM, "queue group config");
                goto out;
            }
        }
        *out = kvs;
        if (out_count)
            *out_count = nkv;
        kvs = NULL;
    }
out:
    sluice_kv_array_free(kvs, nkv);
    sl_chunk_unref(fr);
    pthread_mutex_unlock(&a->mu);
    return (sluice_err)rc;
}
