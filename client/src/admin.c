/*
 * admin.c - sluice_admin: topics, groups and dead-letter topics, all as
 * synchronous request/reply calls on one connection. This file: the
 * handle, topics, cluster status and the ADMIN verbs; admin_groups.c the
 * groups, dead-letter topics and queue-group settings (admin_int.h
 * between them).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/src/admin_int.h"
#include "client/src/conn.h"
#include "client/src/internal.h"
#include "protocol/api.h"

sluice_err sluice_admin_new(const sluice_conf *conf, sluice_admin **out,
                            char *errstr, size_t errstr_size)
{
    sluice_admin *a;
    sl_err rc;

    sl_cl_clear_err();
    a = calloc(1, sizeof(*a));
    if (!a) {
        rc = sl_cl_fail(SL_ERR_NOMEM, "admin");
        goto fail;
    }
    rc = sl_cl_cfg_load(&a->cfg, conf);
    if (rc != SL_OK) {
        free(a);
        goto fail;
    }
    pthread_mutex_init(&a->mu, NULL);
    sl_cl_conn_init(&a->conn, &a->cfg);
    sl_arena_init(&a->arena);
    rc = sl_cl_conn_ensure(&a->conn);
    if (rc != SL_OK) {
        sluice_admin_free(a);
        goto fail;
    }
    *out = a;
    return SLUICE_OK;
fail:
    sl_cl_errstr_copy(errstr, errstr_size);
    return (sluice_err)rc;
}

void sluice_admin_free(sluice_admin *a)
{
    if (!a)
        return;
    sl_cl_conn_fini(&a->conn);
    sl_arena_fini(&a->arena);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

/* Send the request already encoded with corr, wait for the reply and check
 * its top-level error. On SL_OK *fr holds the reply (caller unrefs). */
sl_err sl_cl_admin_roundtrip(sluice_admin *a, uint32_t corr, const char *what,
                             sl_chunk **fr, const uint8_t **body, size_t *len)
{
    uint32_t rcorr;
    sl_err rc = sl_cl_conn_call(&a->conn, corr,
                                sl_cl_deadline(a->cfg.request_timeout_ms), fr);
    if (rc != SL_OK)
        return rc;
    *body = sl_frame_body(*fr, len, &rcorr);
    rc = sl_cl_resp_check(*body, *len, what);
    if (rc != SL_OK) {
        sl_chunk_unref(*fr);
        *fr = NULL;
    }
    return rc;
}

char *sl_cl_admin_dupstr(sl_str s)
{
    if (!s.p)
        return NULL;
    return strndup(s.p, s.len);
}

/* ---- topics ----------------------------------------------------------- */

static sl_err topic_result(sl_topics_result_resp *r, const char *what,
                           const char *name)
{
    if (r->ntopics < 1)
        return sl_cl_fail(SL_ERR_PROTOCOL, "%s '%s': empty reply", what, name);
    if (r->topics[0].error != SL_OK) {
        if (r->topics[0].message.p && r->topics[0].message.len)
            return sl_cl_fail((sl_err)r->topics[0].error, "%s '%s': %.*s", what,
                              name, (int)r->topics[0].message.len,
                              r->topics[0].message.p);
        return sl_cl_fail((sl_err)r->topics[0].error, "%s '%s'", what, name);
    }
    return SL_OK;
}

sluice_err sluice_admin_create_topic(sluice_admin *a, const char *name,
                                     int32_t partitions,
                                     const sluice_kv *configs, size_t count)
{
    sl_create_topics_req req;
    sl_create_topic t;
    sl_create_topics_resp resp;
    sl_chunk *fr = NULL;
    const uint8_t *body;
    size_t len, i;
    uint32_t corr;
    sl_err rc;

    if (!name || !*name)
        return (sluice_err)sl_cl_fail(SL_ERR_INVALID_TOPIC,
                                      "create topic: empty name");
    BEGIN(a);
    memset(&t, 0, sizeof(t));
    t.name = sl_str_c(name);
    t.partitions = partitions > 0 ? (uint32_t)partitions : 0;
    t.nconfigs = (uint32_t)count;
    if (count) {
        t.configs = sl_arena_alloc(&a->arena, count * sizeof(sl_kv));
        if (!t.configs) {
            rc = sl_cl_fail(SL_ERR_NOMEM, "create topic");
            goto out;
        }
        for (i = 0; i < count; i++) {
            t.configs[i].key = sl_str_c(configs[i].key);
            t.configs[i].value = sl_str_c(configs[i].value);
        }
    }
    req.ntopics = 1;
    req.topics = &t;
    rc = sl_create_topics_req_encode(&a->conn.out, corr, &req);
    if (rc != SL_OK) {
        rc = sl_cl_fail(rc, "create topic '%s'", name);
        goto out;
    }
    rc = sl_cl_admin_roundtrip(a, corr, "create topic", &fr, &body, &len);
    if (rc != SL_OK)
        goto out;
    rc = sl_create_topics_resp_decode(body, len, &a->arena, &resp);
    if (rc != SL_OK) {
        rc = sl_cl_bad_reply(rc, "create topic");
        goto out;
    }
    rc = topic_result(&resp, "create topic", name);
out:
    sl_chunk_unref(fr);
    pthread_mutex_unlock(&a->mu);
    return (sluice_err)rc;
}

sluice_err sluice_admin_delete_topic(sluice_admin *a, const char *name)
{
    sl_delete_topics_req req;
    sl_str n = sl_str_c(name);
    sl_delete_topics_resp resp;
    sl_chunk *fr = NULL;
    const uint8_t *body;
    size_t len;
    uint32_t corr;
    sl_err rc;

    if (!name || !*name)
        return (sluice_err)sl_cl_fail(SL_ERR_INVALID_TOPIC,
                                      "delete topic: empty name");
    BEGIN(a);
    req.ntopics = 1;
    req.topics = &n;
    rc = sl_delete_topics_req_encode(&a->conn.out, corr, &req);
    if (rc != SL_OK) {
        rc = sl_cl_fail(rc, "delete topic '%s'", name);
        goto out;
    }
    rc = sl_cl_admin_roundtrip(a, corr, "delete topic", &fr, &body, &len);
    if (rc != SL_OK)
        goto out;
    rc = sl_delete_topics_resp_decode(body, len, &a->arena, &resp);
    if (rc != SL_OK) {
        rc = sl_cl_bad_reply(rc, "delete topic");
        goto out;
    }
    rc = topic_result(&resp, "delete topic", name);
out:
    sl_chunk_unref(fr);
    pthread_mutex_unlock(&a->mu);
    return (sluice_err)rc;
}

static void topic_info_fini(sluice_topic_info *t)
{
    size_t i;
    free(t->name);
    free(t->partitions);
    for (i = 0; i < t->config_count; i++) {
        free(t->configs[i].key);
        free(t->configs[i].value);
    }
    free(t->configs);
}

void sluice_topic_list_free(sluice_topic_list *list)
{
    size_t i;
    if (!list)
        return;
    for (i = 0; i < list->count; i++)
        topic_info_fini(&list->topics[i]);
    free(list->topics);
    free(list);
}

void sluice_topic_info_free(sluice_topic_info *info)
{
    if (!info)
        return;
    topic_info_fini(info);
    free(info);
}

/* Copy one METADATA topic (partitions with offsets, configs) into t,
 * which the caller zeroed; on failure t holds what was copied (free it
 * with topic_info_fini). */
static sl_err topic_info_fill(sluice_topic_info *t, const sl_meta_topic *mt)
{
    size_t i;
    t->name = sl_cl_admin_dupstr(mt->name);
    t->partition_count = (int32_t)mt->nparts;
    t->partitions = calloc(mt->nparts + 1, sizeof(*t->partitions));
    t->configs = calloc(mt->nconfigs + 1, sizeof(*t->configs));
    if (!t->name || !t->partitions || !t->configs)
        return SL_ERR_NOMEM;
    for (i = 0; i < mt->nparts; i++) {
        t->partitions[i].partition = (int32_t)mt->parts[i].partition;
        t->partitions[i].log_start = mt->parts[i].start_offset;
        t->partitions[i].log_end = mt->parts[i].end_offset;
    }
    for (i = 0; i < mt->nconfigs; i++) {
        t->configs[i].key = sl_cl_admin_dupstr(mt->configs[i].key);
        t->configs[i].value = sl_cl_admin_dupstr(mt->configs[i].value);
        t->config_count++;
        if (!t->configs[i].key ||
            (!t->configs[i].value && mt->configs[i].value.p))
            return SL_ERR_NOMEM;
    }
    return SL_OK;
}

/* One METADATA round trip for the topics in names (none = every topic). */
static sl_err metadata(sluice_admin *a, uint32_t corr, const char *what,
                       sl_str *names, uint32_t nnames, sl_chunk **fr,
                       sl_metadata_resp *resp)
{
    sl_metadata_req req;
    const uint8_t *body;
    size_t len;
    sl_err rc;

    req.ntopics = nnames;
    req.topics = names;
    rc = sl_metadata_req_encode(&a->conn.out, corr, &req);
    if (rc != SL_OK)
        return sl_cl_fail(rc, "%s", what);
    rc = sl_cl_admin_roundtrip(a, corr, what, fr, &body, &len);
    if (rc != SL_OK)
        return rc;
    rc = sl_metadata_resp_decode(body, len, &a->arena, resp);
    if (rc != SL_OK)
        return sl_cl_bad_reply(rc, what);
    return SL_OK;
}

/* Read-your-writes (docs/cluster.md 2.7): an admin read first. On a
 * cluster node it runs once the node's copy of the metadata holds every
 * change answered before, through any node; METADATA, which follows on
 * the same connection, reads that copy (it does not wait itself:
 * producers and consumers use it, and a paused metadata leader must not
 * slow them). Its errors (an older broker, a user without admin rights:
 * the broker waits before it checks rights) are METADATA's to report,
 * but for a failed login: the broker closes the connection after it,
 * so that error is the caller's (SLUICE_ERR_AUTH), else SLUICE_OK. */
static sluice_err read_barrier_first(sluice_admin *a, const char *topic)
{
    sluice_kv kv = {(char *)"topic", (char *)topic};
    char *json = NULL;
    sluice_err rc =
        sluice_admin_call(a, topic ? "topic" : "topics", topic ? &kv : NULL,
                          topic ? 1 : 0, &json, NULL);
    if (rc == SLUICE_OK)
        sluice_free(json);
    return rc == SLUICE_ERR_AUTH ? rc : SLUICE_OK;
}

/* Every topic with its partitions and configs: one METADATA request with
 * an empty topic list (LIST_TOPICS carries names and counts only, and
 * Admin.topics() in Python promised configs). */
sluice_err sluice_admin_list_topics(sluice_admin *a, sluice_topic_list **out)
{
    sl_metadata_resp resp;
    sluice_topic_list *l = NULL;
    sl_chunk *fr = NULL;
    size_t i;
    uint32_t corr;
    sl_err rc;

    if (read_barrier_first(a, NULL) != SLUICE_OK)
        return SLUICE_ERR_AUTH;
    BEGIN(a);
    rc = metadata(a, corr, "list topics", NULL, 0, &fr, &resp);
    if (rc != SL_OK)
        goto out;
    l = calloc(1, sizeof(*l));
    if (!l || !(l->topics = calloc(resp.ntopics + 1, sizeof(*l->topics)))) {
        rc = sl_cl_fail(SL_ERR_NOMEM, "list topics");
        goto out;
    }
    for (i = 0; i < resp.ntopics; i++) {
        if (resp.topics[i].error != SL_OK)
            continue; /* deleted between the listing and the lookup */
        l->count++;
        rc = topic_info_fill(&l->topics[l->count - 1], &resp.topics[i]);
        if (rc != SL_OK) {
            rc = sl_cl_fail(rc, "list topics");
            goto out;
        }
    }
    *out = l;
    l = NULL;
out:
    sluice_topic_list_free(l);
    sl_chunk_unref(fr);
    pthread_mutex_unlock(&a->mu);
    return (sluice_err)rc;
}

sluice_err sluice_admin_describe_topic(sluice_admin *a, const char *name,
                                       sluice_topic_info **out)
{
    sl_metadata_resp resp;
    sl_str n = sl_str_c(name);
    sluice_topic_info *t = NULL;
    sl_meta_topic *mt;
    sl_chunk *fr = NULL;
    uint32_t corr;
    sl_err rc;

    if (read_barrier_first(a, name) != SLUICE_OK)
        return SLUICE_ERR_AUTH;
    BEGIN(a);
    rc = metadata(a, corr, "describe topic", &n, 1, &fr, &resp);
    if (rc != SL_OK)
        goto out;
    if (resp.ntopics != 1) {
        rc =
            sl_cl_fail(SL_ERR_PROTOCOL, "describe topic '%s': bad reply", name);
        goto out;
    }
    mt = &resp.topics[0];
    if (mt->error != SL_OK) {
        rc = sl_cl_fail((sl_err)mt->error, "topic '%s'", name);
        goto out;
    }
    t = calloc(1, sizeof(*t));
    if (!t) {
        rc = sl_cl_fail(SL_ERR_NOMEM, "describe topic");
        goto out;
    }
    rc = topic_info_fill(t, mt);
    if (rc != SL_OK) {
        rc = sl_cl_fail(rc, "describe topic");
        goto out;
    }
    *out = t;
    t = NULL;
out:
    sluice_topic_info_free(t);
    sl_chunk_unref(fr);
    pthread_mutex_unlock(&a->mu);
    return (sluice_err)rc;
}

/* ---- cluster ---------------------------------------------------------- */

void sluice_cluster_status_free(sluice_cluster_status *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->node_count; i++) {
        free(s->nodes[i].raft_addr);
        free(s->nodes[i].addr);
        free(s->nodes[i].stomp_addr);
    }
    free(s->nodes);
    for (size_t i = 0; i < s->partition_count; i++) {
        free(s->partitions[i].replicas);
        free(s->partitions[i].isr);
    }
    free(s->partitions);
    free(s);
}

static int32_t *dup_ids(const int32_t *ids, uint32_t n)
{
    int32_t *p = calloc(n + 1, sizeof(int32_t));
    if (p && n)
        memcpy(p, ids, n * sizeof(int32_t));
    return p;
}

sluice_err sluice_admin_cluster_status(sluice_admin *a, const char *topic,
                                       sluice_cluster_status **out)
{
    sl_cluster_status_req req;
    sl_cluster_status_resp resp;
    sl_str n = sl_str_c(topic ? topic : "");
    sluice_cluster_status *st = NULL;
    sl_chunk *fr = NULL;
    const uint8_t *body;
    size_t len;
    uint32_t corr;
    sl_err rc;

    BEGIN(a);
    req.ntopics = topic ? 1 : 0;
    req.topics = &n;
    rc = sl_cluster_status_req_encode(&a->conn.out, corr, &req);
    if (rc != SL_OK) {
        rc = sl_cl_fail(rc, "cluster status");
        goto out;
    }
    rc = sl_cl_admin_roundtrip(a, corr, "cluster status", &fr, &body, &len);
    if (rc != SL_OK)
        goto out;
    rc = sl_cluster_status_resp_decode(body, len, &a->arena, &resp);
    if (rc != SL_OK) {
        rc = sl_cl_bad_reply(rc, "cluster status");
        goto out;
    }
    if (topic && resp.node_id != 0 &&
        (resp.ntopics != 1 || resp.topics[0].error != SL_OK)) {
        rc = sl_cl_fail(resp.ntopics == 1 ? (sl_err)resp.topics[0].error
                                          : SL_ERR_PROTOCOL,
                        "topic '%s'", topic);
        goto out;
    }
    st = calloc(1, sizeof(*st));
    if (!st || !(st->nodes = calloc(resp.nnodes + 1, sizeof(*st->nodes)))) {
        rc = sl_cl_fail(SL_ERR_NOMEM, "cluster status");
        goto out;
    }
    st->node_id = resp.node_id;
    st->leader_id = resp.leader_id;
    st->term = resp.term;
    st->applied = resp.applied;
    for (uint32_t i = 0; i < resp.nnodes; i++) {
        sluice_cluster_node *d = &st->nodes[i];
        st->node_count++;
        d->id = resp.nodes[i].id;
        d->up = resp.nodes[i].up;
        d->raft_addr =
            strndup(resp.nodes[i].raft_addr.p ? resp.nodes[i].raft_addr.p : "",
                    resp.nodes[i].raft_addr.len);
        d->addr = strndup(resp.nodes[i].addr.p ? resp.nodes[i].addr.p : "",
                          resp.nodes[i].addr.len);
        d->stomp_addr = strndup(
            resp.nodes[i].stomp_addr.p ? resp.nodes[i].stomp_addr.p : "",
            resp.nodes[i].stomp_addr.len);
        if (!d->raft_addr || !d->addr || !d->stomp_addr) {
            rc = sl_cl_fail(SL_ERR_NOMEM, "cluster status");
            goto out;
        }
    }
    if (resp.ntopics == 1 && resp.topics[0].error == SL_OK) {
        const sl_cl_topic *t = &resp.topics[0];
        st->partitions = calloc(t->nparts + 1, sizeof(*st->partitions));
        if (!st->partitions) {
            rc = sl_cl_fail(SL_ERR_NOMEM, "cluster status");
            goto out;
        }
        for (uint32_t i = 0; i < t->nparts; i++) {
            sluice_cluster_partition *d = &st->partitions[i];
            st->partition_count++;
            d->partition = (int32_t)t->parts[i].partition;
            d->leader = t->parts[i].leader;
            d->leader_epoch = t->parts[i].leader_epoch;
            d->replicas = dup_ids(t->parts[i].replicas, t->parts[i].nreplicas);
            d->replica_count = t->parts[i].nreplicas;
            d->isr = dup_ids(t->parts[i].isr, t->parts[i].nisr);
            d->isr_count = t->parts[i].nisr;
            if (!d->replicas || !d->isr) {
                rc = sl_cl_fail(SL_ERR_NOMEM, "cluster status");
                goto out;
            }
        }
    }
    *out = st;
    st = NULL;
out:
    sluice_cluster_status_free(st);
    sl_chunk_unref(fr);
    pthread_mutex_unlock(&a->mu);
    return (sluice_err)rc;
}

/* ---- ADMIN: management verbs answering JSON --------------------------- */

sluice_err sluice_admin_call(sluice_admin *a, const char *verb,
                             const sluice_kv *args, size_t count,
                             char **json_out, size_t *json_len)
{
    sl_admin_req req;
    sl_admin_resp resp;
    sl_chunk *fr = NULL;
    const uint8_t *body;
    size_t len, i;
    uint32_t corr;
    sl_err rc;
    char what[160];

    if (!verb || !*verb || strlen(verb) >= 128)
        return (sluice_err)sl_cl_fail(SL_ERR_INVALID_ARG,
                                      "admin: missing or too long verb");
    if (count > 64 || (count && !args))
        return (sluice_err)sl_cl_fail(SL_ERR_INVALID_ARG,
                                      "admin %s: bad arguments", verb);
    for (i = 0; i < count; i++)
        if (!args[i].key || !args[i].value || strlen(args[i].key) >= 65535 ||
            strlen(args[i].value) >= 65535)
            return (sluice_err)sl_cl_fail(
                SL_ERR_INVALID_ARG, "admin %s: bad argument %zu", verb, i);
    snprintf(what, sizeof(what), "%s", verb);
    BEGIN(a);
    memset(&req, 0, sizeof(req));
    req.verb = sl_str_c(verb);
    req.nargs = (uint32_t)count;
    if (count) {
        req.args = sl_arena_alloc(&a->arena, count * sizeof(sl_kv));
        if (!req.args) {
            rc = sl_cl_fail(SL_ERR_NOMEM, "admin %s", verb);
            goto out;
        }
        for (i = 0; i < count; i++) {
            req.args[i].key = sl_str_c(args[i].key);
            req.args[i].value = sl_str_c(args[i].value);
        }
    }
    rc = sl_admin_req_encode(&a->conn.out, corr, &req);
    if (rc != SL_OK) {
        rc = sl_cl_fail(rc, "admin %s", verb);
        goto out;
    }
    rc = sl_cl_admin_roundtrip(a, corr, what, &fr, &body, &len);
    if (rc != SL_OK)
        goto out;
    rc = sl_admin_resp_decode(body, len, &resp);
    if (rc != SL_OK) {
        rc = sl_cl_bad_reply(rc, "admin");
        goto out;
    }
    if (json_out) {
        char *j = malloc(resp.json_len + 1);
        if (!j) {
            rc = sl_cl_fail(SL_ERR_NOMEM, "admin %s", verb);
            goto out;
        }
        memcpy(j, resp.json, resp.json_len);
        j[resp.json_len] = 0;
        *json_out = j;
        if (json_len)
            *json_len = resp.json_len;
    }
out:
    sl_chunk_unref(fr);
    pthread_mutex_unlock(&a->mu);
    return (sluice_err)rc;
}

void sluice_free(void *p)
{
    free(p);
}
