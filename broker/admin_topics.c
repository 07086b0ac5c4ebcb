/*
 * admin_topics.c - the admin verbs of the broker and its topics:
 * version, status, topics, topic.*, connections, connection.close.

 * @thread loop
 */
#include "broker/admin_int.h"

#include <event2/event.h>

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/acl.h"
#include "broker/auth.h"
#include "broker/binary.h"
#include "broker/broker.h"
#include "broker/cluster.h"
#include "broker/cluster_ops.h"
#include "broker/json.h"
#include "broker/ops_groups.h"
#include "broker/topic.h"
#include "groups/dlq.h"
#include "protocol/api.h"
#include "protocol/log.h"

/* ---- status and version ------------------------------------------------- */

sl_err v_version(sl_admin_call *x)
{
    sl_jw_obj(&x->j);
    sl_jw_kstr(&x->j, "version", SL_BROKER_VERSION);
    sl_jw_kstr(&x->j, "server", "sluiced");
    sl_jw_end(&x->j);
    return SL_OK;
}

sl_err v_status(sl_admin_call *x)
{
    sl_broker *b = x->b;
    char host[256] = "";
    int64_t now = sl_now_ms();
    gethostname(host, sizeof(host) - 1);
    sl_jw_obj(&x->j);
    sl_jw_kstr(&x->j, "version", SL_BROKER_VERSION);
    sl_jw_ki64(&x->j, "started_ms", x->b->started_ms);
    sl_jw_ki64(&x->j, "uptime_s", (now - x->b->started_ms) / 1000);
    sl_jw_kstr(&x->j, "data_dir", b->cfg.data);
    sl_jw_key(&x->j, "listeners");
    sl_jw_obj(&x->j);
    sl_jw_kstr(&x->j, "binary", b->bin_addr);
    sl_jw_kstr(&x->j, "stomp", b->stomp_addr);
    sl_jw_kstr(&x->j, "http", sl_broker_http_addr(b));
    sl_jw_end(&x->j);
    sl_jw_key(&x->j, "node");
    sl_jw_obj(&x->j);
    sl_jw_kstr(&x->j, "hostname", host);
    sl_jw_ki64(&x->j, "pid", (int64_t)getpid());
    sl_jw_kstr(&x->j, "role", "standalone");
    sl_jw_end(&x->j);
    sl_jw_ki64(&x->j, "topics", (int64_t)sl_topics_count(b->topics));
    sl_jw_ki64(&x->j, "connections", (int64_t)b->nconns);
    sl_jw_key(&x->j, "ready");
    sl_jw_bool(&x->j, !b->stopping);
    sl_jw_end(&x->j);
    return SL_OK;
}

/* ---- topics -------------------------------------------------------------- */

static void topic_json(sl_jw *j, sl_topic *t, int detail)
{
    int64_t records = 0, bytes = 0;
    sl_jw_obj(j);
    sl_jw_kstr(j, "name", t->name);
    sl_jw_ki64(j, "partition_count", t->nparts);
    if (detail) {
        sl_jw_key(j, "partitions");
        sl_jw_arr(j);
    }
    for (int32_t p = 0; p < t->nparts; p++) {
        sl_part *part = t->parts[p]->part;
        size_t nsegs = 0;
        int64_t s = sl_part_start_offset(part), e = sl_part_end_offset(part);
        int64_t sz = (int64_t)sl_part_size_bytes(part, &nsegs);
        records += e - s;
        bytes += sz;
        if (detail) {
            sl_jw_obj(j);
            sl_jw_ki64(j, "partition", p);
            sl_jw_ki64(j, "start_offset", s);
            sl_jw_ki64(j, "end_offset", e);
            sl_jw_ki64(j, "durable_offset", sl_part_durable_offset(part));
            sl_jw_ki64(j, "records", e - s);
            sl_jw_ki64(j, "bytes", sz);
            sl_jw_ki64(j, "segments", (int64_t)nsegs);
            sl_jw_end(j);
        }
    }
    if (detail)
        sl_jw_end(j);
    sl_jw_ki64(j, "records", records);
    sl_jw_ki64(j, "bytes", bytes);
    sl_jw_key(j, "configs");
    sl_jw_obj(j);
    for (size_t i = 0; i < t->ncfg; i++)
        sl_jw_kstr(j, t->cfg_keys[i], t->cfg_values[i]);
    sl_jw_end(j);
    sl_jw_end(j);
}

sl_err v_topics(sl_admin_call *x)
{
    size_t n;
    sl_topic **all = sl_topics_sorted(x->b->topics, &n);
    sl_jw_obj(&x->j);
    sl_jw_key(&x->j, "topics");
    sl_jw_arr(&x->j);
    for (size_t i = 0; i < n; i++)
        if (adm_may_list(x, SL_RES_TOPIC, all[i]->name))
            topic_json(&x->j, all[i], 0);
    sl_jw_end(&x->j);
    sl_jw_end(&x->j);
    free(all);
    return SL_OK;
}

sl_err v_topic(sl_admin_call *x)
{
    const char *name;
    sl_topic *t;
    sl_err rc = adm_need(x, "topic", &name);
    if (rc == SL_OK)
        rc = adm_topic_or_fail(x, name, &t);
    if (rc == SL_OK)
        topic_json(&x->j, t, 1);
    return rc;
}

/* "config" arguments: k=v each. Fills parallel arrays (borrowing into
 * copies the caller frees with free(*buf)). */
static sl_err config_args(sl_admin_call *x, const char ***keys,
                          const char ***values, size_t *n, char **buf)
{
    size_t cnt = 0, total = 0, k = 0;
    char *p;
    for (size_t i = 0; i < x->args->n; i++)
        if (!strcmp(x->args->keys[i], "config")) {
            cnt++;
            total += strlen(x->args->values[i]) + 1;
        }
    *keys = calloc(cnt + 1, sizeof(char *));
    *values = calloc(cnt + 1, sizeof(char *));
    *buf = p = malloc(total + 1);
    if (!*keys || !*values || !p)
        return SL_ERR_NOMEM;
    for (size_t i = 0; i < x->args->n; i++) {
        char *eq;
        if (strcmp(x->args->keys[i], "config"))
            continue;
        strcpy(p, x->args->values[i]);
        eq = strchr(p, '=');
        if (!eq || eq == p) {
            snprintf(x->msg, sizeof(x->msg),
                     "config '%.200s': expected key=value", p);
            return SL_ERR_INVALID_CONFIG;
        }
        *eq = 0;
        (*keys)[k] = p;
        (*values)[k] = eq + 1;
        k++;
        p = eq + 1 + strlen(eq + 1) + 1;
    }
    *n = k;
    return SL_OK;
}

sl_err v_topic_create(sl_admin_call *x)
{
    const char *name, **keys = NULL, **values = NULL;
    char *buf = NULL;
    size_t n = 0;
    int64_t parts;
    sl_err rc = adm_need(x, "topic", &name);
    if (rc == SL_OK)
        rc = adm_int_arg(x, "partitions", 0, 10000, 0, &parts);
    if (rc == SL_OK)
        rc = config_args(x, &keys, &values, &n, &buf);
    if (rc == SL_OK)
        rc = sl_ops_topic_create(x->b, name, (int32_t)parts, keys, values, n,
                                 x->msg, sizeof(x->msg));
    if (rc == SL_OK)
        topic_json(&x->j, sl_topics_find(x->b->topics, name), 1);
    free(keys);
    free(values);
    free(buf);
    return rc;
}

sl_err v_topic_delete(sl_admin_call *x)
{
    const char *name;
    sl_topic *t;
    sl_err rc = adm_need(x, "topic", &name);
    if (rc == SL_OK)
        rc = adm_topic_or_fail(x, name, &t);
    if (rc == SL_OK)
        rc = sl_ops_topic_delete(x->b, name);
    if (rc == SL_OK) {
        sl_jw_obj(&x->j);
        sl_jw_kstr(&x->j, "deleted", name);
        sl_jw_end(&x->j);
    }
    return rc;
}

sl_err v_topic_alter(sl_admin_call *x)
{
    const char *name, **keys = NULL, **values = NULL;
    char *buf = NULL;
    size_t n = 0;
    sl_topic *t;
    sl_err rc = adm_need(x, "topic", &name);
    if (rc == SL_OK)
        rc = adm_topic_or_fail(x, name, &t);
    if (rc == SL_OK)
        rc = config_args(x, &keys, &values, &n, &buf);
    if (rc == SL_OK && n == 0) {
        snprintf(x->msg, sizeof(x->msg), "topic.alter: no config=k=v given");
        rc = SL_ERR_INVALID_ARG;
    }
    if (rc == SL_OK && sl_bcluster_image(x->b)) /* through the quorum */
        rc = sl_bops_topic_alter(x, name, keys, values, n);
    else if (rc == SL_OK) {
        rc = sl_topics_alter(x->b->topics, t, keys, values, n, x->msg,
                             sizeof(x->msg));
        if (rc == SL_OK)
            topic_json(&x->j, t, 1);
    }
    free(keys);
    free(values);
    free(buf);
    return rc;
}

sl_err v_topic_add_partitions(sl_admin_call *x)
{
    const char *name;
    sl_topic *t;
    int64_t count;
    sl_err rc = adm_need(x, "topic", &name);
    if (rc == SL_OK)
        rc = adm_topic_or_fail(x, name, &t);
    if (rc == SL_OK)
        rc = adm_int_arg(x, "count", 1, 10000, -1, &count);
    if (rc == SL_OK && count < 0) {
        snprintf(x->msg, sizeof(x->msg), "missing argument 'count'");
        rc = SL_ERR_INVALID_ARG;
    }
    if (rc == SL_OK && sl_bcluster_image(x->b)) /* through the quorum */
        return sl_bops_topic_add_partitions(x, name, (int32_t)count);
    if (rc == SL_OK)
        rc = sl_topics_add_partitions(x->b->topics, t, (int32_t)count, x->msg,
                                      sizeof(x->msg));
    if (rc == SL_OK)
        topic_json(&x->j, t, 1);
    return rc;
}

/* ---- connections --------------------------------------------------------- */

static void conn_row(void *arg, sl_conn *c, const sl_conn_stat *st)
{
    sl_admin_call *x = arg;
    int64_t now = sl_now_ms();
    const char *u = sl_conn_user(c);
    /* the user's own connections, unless admin or describe on the cluster
     * (RabbitMQ shows a user without the monitoring tag only its own) */
    if (!sl_acl_may_list_all_conns(x->b, x->args->user, x->args->admin) &&
        (!u || !x->args->user || strcmp(u, x->args->user) != 0))
        return;
    sl_jw_obj(&x->j);
    sl_jw_ki64(&x->j, "id", (int64_t)st->id);
    sl_jw_kstr(&x->j, "protocol", st->protocol);
    sl_jw_kstr(&x->j, "listener", st->listener);
    sl_jw_key(&x->j, "tls");
    sl_jw_bool(&x->j, sl_conn_transport(c) == SL_TRANSPORT_TLS);
    /* a verified client certificate's subject (mutual TLS), or null */
    sl_jw_kstr(&x->j, "tls_subject", sl_conn_tls_subject(c));
    sl_jw_kstr(&x->j, "peer", st->peer);
    sl_jw_ki64(&x->j, "opened_ms", st->opened_ms);
    sl_jw_ki64(&x->j, "age_ms", now > st->opened_ms ? now - st->opened_ms : 0);
    sl_jw_ki64(&x->j, "bytes_in", (int64_t)st->bytes_in);
    sl_jw_ki64(&x->j, "bytes_out", (int64_t)st->bytes_out);
    sl_jw_ki64(&x->j, "requests", (int64_t)st->replies);
    sl_jw_ki64(&x->j, "replies_owed", (int64_t)st->replies_owed);
    sl_jw_ki64(&x->j, "output_bytes", (int64_t)st->out_bytes);
    sl_jw_key(&x->j, "closing");
    sl_jw_bool(&x->j, st->closing);
    sl_jw_kstr(&x->j, "user", sl_conn_user(c)); /* null: none yet */
    /* the protocol's keys: client, in_flight, subscriptions or groups */
    sl_conn_describe(c, &x->j);
    sl_jw_end(&x->j);
}

sl_err v_connections(sl_admin_call *x)
{
    sl_jw_obj(&x->j);
    sl_jw_key(&x->j, "connections");
    sl_jw_arr(&x->j);
    sl_conn_foreach(x->b, conn_row, x);
    sl_jw_end(&x->j);
    sl_jw_end(&x->j);
    return SL_OK;
}

/* Close one connection now (RabbitMQ's close_connection): its pending
 * replies are dropped, what its consumers held is available again. */
sl_err v_connection_close(sl_admin_call *x)
{
    const char *v, *reason = adm_arg(x, "reason");
    int64_t id;
    sl_conn *c;
    sl_err rc = adm_need(x, "id", &v);
    char why[160];
    if (rc != SL_OK ||
        (rc = adm_int_arg(x, "id", 1, INT64_MAX, 0, &id)) != SL_OK)
        return rc;
    c = sl_conn_find(x->b, (uint64_t)id);
    if (!c) {
        snprintf(x->msg, sizeof(x->msg), "no open connection with id %lld",
                 (long long)id);
        return SL_ERR_NOT_FOUND;
    }
    snprintf(why, sizeof(why), "closed by an operator%s%.120s",
             reason && *reason ? ": " : "", reason ? reason : "");
    sl_jw_obj(&x->j);
    sl_jw_ki64(&x->j, "id", id);
    sl_jw_kstr(&x->j, "peer", sl_conn_peer(c));
    sl_jw_key(&x->j, "closed");
    sl_jw_bool(&x->j, 1);
    sl_jw_end(&x->j);
    sl_conn_abort(c, why);
    return SL_OK;
}
