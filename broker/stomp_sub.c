/*
 * stomp_sub.c - SUBSCRIBE, UNSUBSCRIBE, ACK and NACK, and temp queues.
 *
 * A subscription is one of:
 *  - a queue group consumer (groups.h): /queue/NAME is queue group NAME on
 *    topic NAME; a durable topic subscription (RabbitMQ durable:true,
 *    ActiveMQ activemq.subscriptionName) is a queue group named after the
 *    subscription, starting at the log end; a temp queue is this session's
 *    queue on a never-flushed topic, deleted with the connection;
 *  - topic readers (plain /topic/NAME, or one per topic a wildcard
 *    matches): stomp_deliver.c.
 * A SUBSCRIBE that creates a queue group may carry RabbitMQ's queue
 * arguments (x-message-ttl, x-delivery-limit, x-max-priority), checked
 * against the queue groups' own bounds (groups/queue_cfg.h).
 *
 * ACK/NACK find the delivery by its id (stomp_ack.c) in the subscription
 * the 1.2 ack id names, or (message-id) in the subscription hinted and
 * then every one, settle it with the group (ack, release for NACK
 * requeue:true, reject = dead-letter for requeue:false), and owe the
 * receipt after the group state is committed. A topic subscription's
 * deliveries only leave the list.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker.h"
#include "broker/config.h"
#include "broker/stomp_int.h"
#include "groups/queue_cfg.h"

/* Deliveries remembered as stale per subscription (older ones are
 * forgotten: their ACK is then answered "unknown message"). */
#define STALE_MAX 100000

/* ---- subscriptions: lifecycle -------------------------------------------- */

stomp_sub *stomp_sub_find(stomp_conn *c, const char *id)
{
    stomp_sub *s;
    for (s = c->subs; s; s = s->next) {
        if (strcmp(s->id, id) == 0)
            return s;
    }
    return NULL;
}

/* Free s (already unlinked): release what it holds. */
void stomp_sub_free(stomp_sub *s)
{
    stomp_srv *srv = s->c->s;
    treader *r, *rn;
    /* releases unacked records; at shutdown the groups module may have
     * gone first and freed its consumers itself */
    if (s->qc && srv_groups(srv))
        sl_qconsumer_free(s->qc);
    stomp_relay_free(s->relay);
    for (r = s->readers; r; r = rn) {
        rn = r->sub_next;
        stomp_reader_free(srv, r);
    }
    stomp_pendq_clear(&s->pq);
    stomp_pendq_clear(&s->stale);
    for (size_t i = 0; i < s->nxh; i++)
        free(s->xh[i]);
    free(s->xh);
    sl_selector_free(s->sel);
    free(s->id);
    free(s->dest);
    free(s->dprefix);
    free(s->group);
    free(s->qtopic);
    free(s->pattern);
    free(s);
}

/* A connection without a subscription is a producer: the connection layer
 * may pace it (SL_PRI_INGRESS) when it streams. */
void stomp_conn_set_priority(stomp_conn *c)
{
    sl_conn_set_pace(c->conn, c->subs == NULL);
}

void stomp_sub_link(stomp_conn *c, stomp_sub *s)
{
    s->next = c->subs;
    c->subs = s;
    stomp_conn_set_priority(c);
}

static void sub_unlink(stomp_conn *c, stomp_sub *s)
{
    stomp_sub **pp;
    for (pp = &c->subs; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            stomp_conn_set_priority(c);
            return;
        }
    }
}

/* Group names follow topic-name rules: replace anything else by '_'. */
static void sanitize_name(char *s)
{
    for (; *s; s++) {
        if (!isalnum((unsigned char)*s) && *s != '.' && *s != '_' && *s != '-')
            *s = '_';
    }
}

/* Does the described group already cover topic? */
static int info_has_topic(const sl_group_info *info, const char *topic)
{
    size_t i;
    for (i = 0; info && i < info->nparts; i++) {
        if (strcmp(info->parts[i].topic, topic) == 0)
            return 1;
    }
    return 0;
}

/* Queue settings a SUBSCRIBE may carry when it creates the queue
 * (RabbitMQ's queue arguments): x-message-ttl, x-delivery-limit,
 * x-max-priority. */
static sl_err sub_queue_args(const sl_stomp_frame *f, sl_qgroup_cfg *cfg,
                             char *why, size_t whylen)
{
    const char *ttl = f ? sl_stomp_frame_value(f, "x-message-ttl") : NULL;
    const char *lim = f ? sl_stomp_frame_value(f, "x-delivery-limit") : NULL;
    const char *pri = f ? sl_stomp_frame_value(f, "x-max-priority") : NULL;
    int ok;
    int64_t v;
    if (ttl) {
        v = parse_i64(ttl, &ok);
        if (!ok || v < 0 ||
            sl_qgroup_cfg_set_int(cfg, "ttl-ms", v, NULL, 0) != SL_OK) {
            snprintf(why, whylen, "x-message-ttl must be ms >= 0, not '%.40s'",
                     ttl);
            return SL_ERR_INVALID_ARG;
        }
    }
    if (lim) {
        /* RabbitMQ counts redeliveries; the group counts deliveries: the
         * bounds are the queue groups' own, one less */
        int64_t lo = 1, hi = 1;
        sl_qgroup_cfg_bounds("max-deliveries", &lo, &hi);
        v = parse_i64(lim, &ok);
        if (!ok || v < lo - 1 || v > hi - 1 ||
            sl_qgroup_cfg_set_int(cfg, "max-deliveries", v + 1, NULL, 0) !=
                SL_OK) {
            snprintf(why, whylen,
                     "x-delivery-limit must be %lld..%lld, not '%.40s'",
                     (long long)(lo - 1), (long long)(hi - 1), lim);
            return SL_ERR_INVALID_ARG;
        }
    }
    if (pri) {
        int64_t lo = 0, hi = 0;
        sl_qgroup_cfg_bounds("max-priority", &lo, &hi);
        v = parse_i64(pri, &ok);
        if (!ok ||
            sl_qgroup_cfg_set_int(cfg, "max-priority", v, NULL, 0) != SL_OK) {
            snprintf(why, whylen,
                     "x-max-priority must be %lld..%lld, not '%.40s'",
                     (long long)lo, (long long)hi, pri);
            return SL_ERR_INVALID_ARG;
        }
    }
    return SL_OK;
}

/* A queue consumer on group/topic for s; declares the group when new. */
static sl_err sub_open_queue(stomp_sub *s, const char *group, const char *topic,
                             int start_latest, const sl_stomp_frame *f,
                             char *why, size_t whylen)
{
    stomp_conn *c = s->c;
    sl_groups *g = srv_groups(c->s);
    sl_group_info *info = NULL;
    sl_qconsumer_cb cb;
    char name[128];
    sl_err rc;
    if (!g) {
        snprintf(why, whylen, "queue groups are not available");
        return SL_ERR_UNKNOWN;
    }
    if (sl_groups_describe(g, group, &info) != SL_OK ||
        !info_has_topic(info, topic)) {
        sl_qgroup_cfg cfg;
        sl_groups_qgroup_defaults(g, &cfg);
        cfg.key_ordered = c->s->cfg->stomp_key_ordered ? 1 : 0;
        cfg.start_latest = start_latest;
        rc = sub_queue_args(f, &cfg, why, whylen);
        if (rc != SL_OK) {
            sl_group_info_free(info);
            return rc;
        }
        rc = sl_qgroup_declare(g, group, topic, &cfg);
        if (rc != SL_OK) {
            snprintf(why, whylen, "cannot create queue group %s on %s: %s",
                     group, topic, sl_strerror(rc));
            sl_group_info_free(info);
            return rc;
        }
    }
    sl_group_info_free(info);
    cb.deliver = stomp_qc_deliver;
    cb.flush = stomp_qc_flush;
    cb.arg = s;
    snprintf(name, sizeof(name), "stomp %s %s", c->peer, s->id);
    rc = sl_qconsumer_new(g, group, topic, c->s->cfg->stomp_lock_ms, name, &cb,
                          &s->qc);
    if (rc != SL_OK) {
        snprintf(why, whylen, "cannot consume queue group %s on %s: %s", group,
                 topic, sl_strerror(rc));
        return rc;
    }
    s->group = strdup(group);
    s->qtopic = strdup(topic);
    s->queue = 1;
    return SL_OK;
}

/* ---- cluster: where a /queue subscription is served (relay.c) ---------- */

/* The SUBSCRIBE headers a queue subscription passes on when it is opened
 * again elsewhere (its coordinator moved): the selector, RabbitMQ's
 * queue arguments and what makes a topic subscription durable. */
static const char *const xh_names[] = {
    "selector",       "x-message-ttl", "x-delivery-limit",
    "x-max-priority", "durable",       "persistent",
    "auto-delete",    "x-queue-name",  "activemq.subscriptionName"};

static sl_err sub_keep_headers(stomp_sub *s, const sl_stomp_frame *f)
{
    size_t i, n = sizeof(xh_names) / sizeof(xh_names[0]);
    s->xh = calloc(2 * n, sizeof(*s->xh));
    if (!s->xh)
        return SL_ERR_NOMEM;
    for (i = 0; f && i < n; i++) {
        const char *v = sl_stomp_frame_value(f, xh_names[i]);
        if (!v)
            continue;
        s->xh[s->nxh] = strdup(xh_names[i]);
        s->xh[s->nxh + 1] = strdup(v);
        if (!s->xh[s->nxh] || !s->xh[s->nxh + 1]) {
            free(s->xh[s->nxh]);
            free(s->xh[s->nxh + 1]);
            return SL_ERR_NOMEM;
        }
        s->nxh += 2;
    }
    return SL_OK;
}

/* A /queue subscription on group/topic: remember what it needs to move,
 * and relay it when another node coordinates the group (docs/cluster.md
 * 5.1). SL_OK with s->relay NULL: serve it here. */
static sl_err sub_home(stomp_sub *s, const char *group, const char *topic,
                       const sl_stomp_frame *f, char *why, size_t whylen)
{
    stomp_conn *c = s->c;
    int32_t home;
    sl_err rc;
    if (!c->s->relay_tick)
        return SL_OK; /* not a cluster */
    home = stomp_relay_coordinator(c->s, group, topic);
    if (c->relay_from) {
        /* a relay session is served here or nowhere: relaying it again
         * would chain nodes, and a node that is not the coordinator
         * (the relaying node's image is behind or ahead of ours) must not
         * dispatch the group */
        if (home == 0)
            return SL_OK;
        snprintf(why, whylen,
                 "node %d does not coordinate queue group %s on %s (node %d "
                 "does, as this node sees it)",
                 (int)c->s->b->cfg.node_id, group, topic, (int)home);
        return SL_ERR_NOT_LEADER;
    }
    if (sl_ops_groups(c->s->b)) {
        /* the queue arguments are checked here, where the client is */
        sl_qgroup_cfg cfg;
        sl_groups_qgroup_defaults(srv_groups(c->s), &cfg);
        rc = sub_queue_args(f, &cfg, why, whylen);
        if (rc != SL_OK)
            return rc;
    }
    rc = sub_keep_headers(s, f);
    if (rc != SL_OK) {
        snprintf(why, whylen, "out of memory");
        return rc;
    }
    s->homeable = 1;
    if (home == 0)
        return SL_OK;
    s->group = strdup(group);
    s->qtopic = strdup(topic);
    s->queue = 1;
    if (!s->group || !s->qtopic) {
        snprintf(why, whylen, "out of memory");
        return SL_ERR_NOMEM;
    }
    rc = stomp_relay_open(s, home);
    if (rc != SL_OK)
        snprintf(why, whylen, "cannot relay to node %d: %s", (int)home,
                 sl_strerror(rc));
    return rc;
}

sl_err stomp_sub_open_local(stomp_sub *s, char *why, size_t whylen)
{
    sl_stomp_header h[sizeof(xh_names) / sizeof(xh_names[0])];
    sl_stomp_frame f;
    char *group = s->group, *topic = s->qtopic;
    size_t i;
    sl_err rc;
    memset(&f, 0, sizeof(f));
    f.cmd = SL_STOMP_SUBSCRIBE;
    f.headers = h;
    for (i = 0; i + 1 < s->nxh; i += 2) {
        h[f.header_count].name = s->xh[i];
        h[f.header_count].name_len = strlen(s->xh[i]);
        h[f.header_count].value = s->xh[i + 1];
        h[f.header_count].value_len = strlen(s->xh[i + 1]);
        f.header_count++;
    }
    /* sub_open_queue sets them again */
    s->group = s->qtopic = NULL;
    rc = sub_open_queue(s, group, topic, s->durable, &f, why, whylen);
    if (rc != SL_OK) {
        free(s->group);
        free(s->qtopic);
        s->group = group;
        s->qtopic = topic;
        return rc;
    }
    /* deliveries still held by the client (s->stale, from the old home)
     * name the topic by this pointer: they must not outlive it (an ACK of
     * one read the freed string, found by the rolling restart test under
     * ASan) */
    if (s->qtopic) {
        stomp_pendq_retopic(&s->stale, topic, s->qtopic);
        stomp_pendq_retopic(&s->pq, topic, s->qtopic);
        free(topic);
    } else {
        s->qtopic = topic;
    }
    free(group);
    if (s->sel && !s->durable)
        sl_qconsumer_set_filter(s->qc, stomp_qc_accept, s);
    return SL_OK;
}

void stomp_sub_unhome(stomp_sub *s)
{
    stomp_srv *srv = s->c->s;
    /* what the client holds now was delivered by the old home; the
     * group (at its new home) delivers it again */
    if (s->pq.head) {
        if (s->stale.tail)
            s->stale.tail->next = s->pq.head;
        else
            s->stale.head = s->pq.head;
        s->stale.tail = s->pq.tail;
        s->stale.n += s->pq.n;
        s->pq.head = s->pq.tail = NULL;
        s->pq.n = 0;
    }
    while (s->stale.n > STALE_MAX) {
        pend *p = s->stale.head;
        s->stale.head = p->next;
        if (!s->stale.head)
            s->stale.tail = NULL;
        s->stale.n--;
        stomp_pend_free(p);
    }
    if (s->qc && srv_groups(srv))
        sl_qconsumer_free(s->qc); /* releases what it held */
    s->qc = NULL;
    s->qcredit = 0;
    stomp_relay_free(s->relay);
    s->relay = NULL;
}

/* Register a temp queue topic for deletion with the connection. */
static void tmp_remember(stomp_conn *c, const char *topic)
{
    size_t i;
    char **n;
    for (i = 0; i < c->ntmp; i++) {
        if (strcmp(c->tmp_topics[i], topic) == 0)
            return;
    }
    n = realloc(c->tmp_topics, (c->ntmp + 1) * sizeof(*n));
    if (!n)
        return;
    c->tmp_topics = n;
    c->tmp_topics[c->ntmp++] = strdup(topic);
}

/* The topic of a destination, created if missing. A temp queue's topic
 * is created with flush=never: it lives as long as its connection (and
 * is deleted at the next start after a crash), so neither its messages
 * nor its creation are fsynced, as RabbitMQ's exclusive reply queues are
 * not durable. */
sl_err stomp_dest_topic(stomp_conn *c, const dest *d, int32_t *np)
{
    static const char *const k[] = {"flush"}, *const v[] = {"never"};
    char err[256];
    sl_err rc;
    if (d->kind != DEST_TEMP)
        return sl_ops_topic_get(c->s->b, d->name, SL_OPS_AUTO_CREATE, np);
    rc = sl_ops_topic_get(c->s->b, d->name, SL_OPS_NO_CREATE, np);
    if (rc != SL_ERR_UNKNOWN_TOPIC)
        return rc;
    rc = sl_ops_topic_create(c->s->b, d->name, 1, k, v, 1, err, sizeof(err));
    if (rc != SL_OK && rc != SL_ERR_TOPIC_EXISTS)
        return rc;
    return sl_ops_topic_get(c->s->b, d->name, SL_OPS_NO_CREATE, np);
}

sl_err stomp_sub_create(stomp_conn *c, const char *id, const char *dstr,
                        const dest *d, int ack, int64_t prefetch,
                        const char *durable_name, const sl_stomp_frame *f,
                        char *why, size_t whylen, stomp_sub **out)
{
    stomp_sub *s = calloc(1, sizeof(*s));
    sl_err rc = SL_OK;
    int32_t np;
    if (!s)
        return SL_ERR_NOMEM;
    s->c = c;
    s->id = strdup(id);
    s->dest = strdup(dstr);
    s->ack = ack;
    s->prefetch = prefetch;
    if (d->kind == DEST_QUEUE || d->kind == DEST_TEMP) {
        rc = stomp_dest_topic(c, d, &np);
        if (rc != SL_OK) {
            snprintf(why, whylen, "destination %s: %s", dstr, sl_strerror(rc));
            goto out;
        }
        if (d->kind == DEST_TEMP) {
            tmp_remember(c, d->name);
            s->temp = 1;
        } else {
            rc = sub_home(s, d->group[0] ? d->group : d->name, d->name, f, why,
                          whylen);
            if (rc != SL_OK || s->relay)
                goto out;
        }
        rc = sub_open_queue(s, d->group[0] ? d->group : d->name, d->name, 0, f,
                            why, whylen);
    } else if (durable_name) {
        char group[SL_TOPIC_NAME_MAX + 1];
        if (d->wildcard) {
            snprintf(why, whylen,
                     "durable subscriptions to wildcard destinations are "
                     "not supported ('%s')",
                     dstr);
            rc = SL_ERR_INVALID_ARG;
            goto out;
        }
        rc = sl_ops_topic_get(c->s->b, d->name, SL_OPS_AUTO_CREATE, &np);
        if (rc != SL_OK) {
            snprintf(why, whylen, "destination %s: %s", dstr, sl_strerror(rc));
            goto out;
        }
        snprintf(group, sizeof(group), "%s", durable_name);
        sanitize_name(group);
        s->durable = 1;
        rc = sub_home(s, group, d->name, f, why, whylen);
        if (rc != SL_OK || s->relay)
            goto out;
        rc = sub_open_queue(s, group, d->name, 1, f, why, whylen);
    } else if (d->wildcard) {
        s->pattern = strdup(d->name);
        s->dprefix = strdup(d->prefix ? d->prefix : "/topic/");
        stomp_wild_attach(s);
    } else {
        const char *only = f && c->relay_from
                               ? sl_stomp_frame_value(f, "sluice-partition")
                               : NULL;
        /* a relayed partition of a topic newer than its wildcard
         * subscription (relay_topic.c) is read from its start */
        int from_start =
            only &&
            stomp_header_bool(sl_stomp_frame_value(f, "sluice-from-start"), 0);
        rc = sl_ops_topic_get(c->s->b, d->name, SL_OPS_AUTO_CREATE, &np);
        if (rc == SL_OK)
            rc = stomp_reader_new(s, d->name, from_start);
        if (rc == SL_OK && only) {
            /* another node relays this partition to its subscriber */
            int ok;
            int64_t p = parse_i64(only, &ok);
            stomp_reader_only(s->readers, ok ? (int32_t)p : -1);
        }
        if (rc != SL_OK)
            snprintf(why, whylen, "destination %s: %s", dstr, sl_strerror(rc));
    }
out:
    if (rc != SL_OK) {
        stomp_sub_free(s);
        return rc;
    }
    *out = s;
    return SL_OK;
}

/* ---- ACK / NACK ---------------------------------------------------------- */

/* The subscription and entry holding msgid. An ack id names its
 * subscription, and only that one is searched; for a message-id, hint
 * (subscription id, may be NULL or wrong, as 1.1 clients send) is tried
 * first, then every subscription. */
static stomp_sub *pend_find(stomp_conn *c, const char *msgid, const char *hint,
                            pend **prev_out, pend **ent_out)
{
    char topic[SL_TOPIC_NAME_MAX + 1];
    int32_t part;
    int64_t off;
    stomp_sub *s, *order[2] = {NULL, NULL};
    const char *exact;
    int k;
    if (stomp_msgid_parse(msgid, topic, sizeof(topic), &part, &off, &exact) !=
        0)
        return NULL;
    if (exact)
        hint = exact;
    if (hint)
        order[0] = stomp_sub_find(c, hint);
    for (k = 0; k < (exact ? 1 : 2); k++) {
        for (s = k == 0 ? order[0] : c->subs; s; s = k == 0 ? NULL : s->next) {
            pend *p = stomp_pendq_find(&s->pq, topic, part, off, prev_out);
            if (p) {
                *ent_out = p;
                return s;
            }
        }
    }
    return NULL;
}

static void pend_settle(stomp_sub *s, pend *p, int cmd, int requeue, sl_wait *w)
{
    if (s->relay && s->queue) {
        stomp_relay_settle(s, p, cmd, requeue, w);
        return;
    }
    if (!s->qc || p->r)
        return; /* topic subscription: nothing to settle */
    if (cmd == SL_STOMP_ACK)
        sl_qconsumer_ack(s->qc, p->partition, p->offset, p->offset, NULL);
    else if (requeue)
        sl_qconsumer_release(s->qc, p->partition, p->offset, p->offset, -1, 1,
                             NULL);
    else
        sl_qconsumer_reject(s->qc, p->partition, p->offset, p->offset,
                            "rejected by a STOMP NACK with requeue:false",
                            NULL);
}

/* msgid was delivered before its subscription moved to another node
 * (docs/cluster.md 5.1): the group delivers it again from there, so the
 * ACK/NACK settles nothing here; forget it (and, in client mode, the
 * stale ones before it). An ACK's receipt (w) fails: a RECEIPT would say
 * the message is acknowledged, and it comes again (found by
 * tests/cluster/test_cluster_jepsen_queue.py). A NACK asked for that.
 * SL_ERR_NOT_FOUND when it is not stale either. */
static sl_err stale_ack(stomp_conn *c, int cmd, const char *msgid, sl_wait *w)
{
    char topic[SL_TOPIC_NAME_MAX + 1];
    int32_t part;
    int64_t off;
    const char *exact;
    stomp_sub *s;
    pend *prev, *ent, *p, *n;
    if (stomp_msgid_parse(msgid, topic, sizeof(topic), &part, &off, &exact) !=
        0)
        return SL_ERR_NOT_FOUND;
    for (s = c->subs; s; s = s->next) {
        if (exact && strcmp(exact, s->id) != 0)
            continue;
        ent = stomp_pendq_find(&s->stale, topic, part, off, &prev);
        if (!ent)
            continue;
        for (p = stomp_pendq_take(&s->stale, prev, ent, s->ack == ACK_CLIENT);
             p; p = n) {
            n = p->next;
            stomp_pend_free(p);
        }
        sl_log(SL_DEBUG, STOMP_SUBSYS,
               "peer %s session %s: ACK/NACK of %s, delivered before its "
               "subscription moved: it will be delivered again",
               c->peer, c->session, msgid);
        if (w && cmd == SL_STOMP_ACK) {
            sl_wait_set_what(w,
                             "ACK %.120s not applied: the message was "
                             "delivered before its subscription moved to the "
                             "queue group's new coordinator, which delivers "
                             "it again",
                             msgid);
            sl_wait_fail(w, SL_ERR_NOT_COORDINATOR);
        }
        return SL_OK;
    }
    return SL_ERR_NOT_FOUND;
}

/* Settle msgid (and, in client mode or with cumulative, every earlier
 * delivery of its subscription). SL_OK or SL_ERR_NOT_FOUND.
 * *settled_queue = 1 when group state changed (the receipt then waits for
 * its commit). */
sl_err stomp_do_ack(stomp_conn *c, int cmd, const char *msgid, const char *hint,
                    int cumulative, int requeue, sl_wait *w, int *settled_queue)
{
    pend *prev, *ent, *p, *n;
    stomp_sub *s = pend_find(c, msgid, hint, &prev, &ent);
    if (!s)
        return stale_ack(c, cmd, msgid, w);
    /* ack:client is cumulative: everything up to and including ent */
    for (p = stomp_pendq_take(&s->pq, prev, ent,
                              s->ack == ACK_CLIENT || cumulative);
         p; p = n) {
        n = p->next;
        /* the last one carries the receipt's wait: a relayed ACK is
         * answered in order, so its answer covers the ones before */
        pend_settle(s, p, cmd, requeue, n ? NULL : w);
        stomp_pend_free(p);
    }
    if (s->qc)
        *settled_queue = 1;
    /* room for more deliveries: granted once per loop iteration (work_cb),
     * not once per ACK, so a burst of ACKs costs one delivery pass */
    conn_kick(c);
    return SL_OK;
}

/* ---- frame handlers ------------------------------------------------------ */

void stomp_h_subscribe(stomp_conn *c, const sl_stomp_frame *f)
{
    const char *dv = sl_stomp_frame_value(f, "destination");
    const char *id = sl_stomp_frame_value(f, "id");
    const char *receipt = RECEIPT(f);
    const char *pf = sl_stomp_frame_value(f, "prefetch-count");
    const char *apf = sl_stomp_frame_value(f, "activemq.prefetchSize");
    const char *amq_sub = sl_stomp_frame_value(f, "activemq.subscriptionName");
    /* persistent: RabbitMQ's legacy name for durable */
    const char *dur = sl_stomp_frame_value(f, "durable")
                          ? sl_stomp_frame_value(f, "durable")
                          : sl_stomp_frame_value(f, "persistent");
    const char *ad = sl_stomp_frame_value(f, "auto-delete");
    const char *id_hdr = id;
    const char *selector = sl_stomp_frame_value(f, "selector");
    sl_selector *sel = NULL;
    const char *xq = sl_stomp_frame_value(f, "x-queue-name");
    char why[512], durable_name[SL_TOPIC_NAME_MAX + 1];
    const char *dn = NULL;
    int ack = stomp_ack_mode_parse(sl_stomp_frame_value(f, "ack"));
    int64_t prefetch = c->s->cfg->stomp_prefetch;
    stomp_sub *s;
    sl_wait *w;
    dest d;

    if (!id) {
        if (c->version >= SL_STOMP_V11) {
            stomp_send_error(c, receipt, "Missing header",
                             "SUBSCRIBE requires an id header in STOMP 1.1 and "
                             "1.2");
            return;
        }
        id = dv ? dv : ""; /* 1.0: the destination names it */
    }
    if (stomp_sub_find(c, id)) {
        snprintf(why, sizeof(why),
                 "subscription id '%.100s' is already in use on this "
                 "connection",
                 id);
        stomp_send_error(c, receipt, "Duplicated subscription identifier", why);
        return;
    }
    if (ack < 0) {
        snprintf(why, sizeof(why),
                 "ack must be auto, client or client-individual, not "
                 "'%.60s'",
                 sl_stomp_frame_value(f, "ack"));
        stomp_send_error(c, receipt, "Invalid header", why);
        return;
    }
    if (pf || apf) {
        int ok;
        int64_t v = parse_i64(pf ? pf : apf, &ok);
        if (!ok || v < 0) {
            snprintf(why, sizeof(why),
                     "%s must be a non-negative integer, not '%.60s'",
                     pf ? "prefetch-count" : "activemq.prefetchSize",
                     pf ? pf : apf);
            stomp_send_error(c, receipt, "Invalid header", why);
            return;
        }
        /* 0 = unlimited (RabbitMQ); cap to keep memory bounded */
        prefetch = v == 0 ? 1000000 : v;
    }
    if (stomp_dest_resolve(c, dv, &d, why, sizeof(why)) != SL_OK) {
        stomp_send_error(c, receipt, d.err, why);
        return;
    }
    if (stomp_tmp_foreign(c->session, d.name)) {
        snprintf(why, sizeof(why),
                 "'%.100s' is another connection's temporary queue: it can "
                 "be sent to (reply-to), not subscribed to",
                 dv);
        stomp_send_error(c, receipt, "access refused", why);
        return;
    }
    if (d.kind == DEST_TOPIC) {
        if (amq_sub) {
            if (!c->client_id[0]) {
                stomp_send_error(
                    c, receipt, "missing client-id",
                    "a durable subscription "
                    "(activemq.subscriptionName) needs a client-id "
                    "header on CONNECT");
                return;
            }
            snprintf(durable_name, sizeof(durable_name), "%s.%s", c->client_id,
                     amq_sub);
            dn = durable_name;
        } else if (stomp_header_bool(dur, 0) && !stomp_header_bool(ad, 0)) {
            if (!id_hdr) {
                /* RabbitMQ: the id names the durable queue */
                stomp_send_error(c, receipt, "Missing header",
                                 "a durable topic subscription needs an id "
                                 "header (it names the subscription)");
                return;
            }
            snprintf(durable_name, sizeof(durable_name), "%s", xq ? xq : id);
            dn = durable_name;
        }
        if (dn && stomp_vhost_name(c, durable_name, sizeof(durable_name), why,
                                   sizeof(why)) != SL_OK) {
            stomp_send_error(c, receipt, "Invalid destination", why);
            return;
        }
    }
    if (sl_acl_stomp_subscribe(
            c->s->b, c->conn, d.name, d.kind == DEST_QUEUE ? d.name : dn,
            d.kind == DEST_TEMP, why, sizeof(why)) != SL_OK) {
        stomp_send_error(c, receipt, "access refused", why);
        return;
    }
    if (selector) {
        sel = sl_selector_compile(selector, why, sizeof(why));
        if (!sel) {
            char detail[800];
            snprintf(detail, sizeof(detail), "invalid selector '%.200s': %s",
                     selector, why);
            stomp_send_error(c, receipt, "Invalid selector", detail);
            return;
        }
    }
    if (stomp_sub_create(c, id, dv, &d, ack, prefetch, dn, f, why, sizeof(why),
                         &s) != SL_OK) {
        sl_selector_free(sel);
        stomp_send_error(c, receipt, "cannot subscribe", why);
        return;
    }
    s->sel = sel;
    if (sel && s->qc && !s->durable)
        sl_qconsumer_set_filter(s->qc, stomp_qc_accept, s);
    stomp_sub_link(c, s);
    sl_log(SL_DEBUG, STOMP_SUBSYS,
           "peer %s session %s: subscribed %s to %s (ack %s, prefetch "
           "%" PRId64 "%s%s)",
           c->peer, c->session, s->id, s->dest, stomp_ack_names[ack], prefetch,
           dn ? ", durable " : "", dn ? dn : "");
    /* cluster (relay.c): the receipt waits until the relayed subscription
     * is subscribed at the node serving it (a durable one starts there,
     * from then on); partitions of a topic this node holds no replica of
     * come from their leaders */
    w = receipt ? sl_wait_new(c->conn) : NULL;
    if (!s->queue && (s->pattern || s->readers) && c->s->relay_tick &&
        !c->relay_from) {
        s->topic_relay = 1;
        if (sub_keep_headers(s, f) == SL_OK)
            stomp_relay_topic_open(s, w);
    } else if (s->relay) {
        stomp_relay_wait_subscribed(s->relay, w);
    }
    stomp_owe_receipt(c, receipt, w);
    if (w) {
        sl_wait_built(w);
        sl_wait_unref(w);
    }
    stomp_sub_pump(s);
}

void stomp_h_unsubscribe(stomp_conn *c, const sl_stomp_frame *f)
{
    const char *id = sl_stomp_frame_value(f, "id");
    const char *receipt = RECEIPT(f);
    const char *amq_sub = sl_stomp_frame_value(f, "activemq.subscriptionName");
    const char *dur = sl_stomp_frame_value(f, "durable")
                          ? sl_stomp_frame_value(f, "durable")
                          : sl_stomp_frame_value(f, "persistent");
    char why[256];
    stomp_sub *s;
    char *group = NULL, *topic = NULL;
    int drop = 0;
    if (!id)
        id = sl_stomp_frame_value(f, "destination"); /* 1.0 */
    s = id ? stomp_sub_find(c, id) : NULL;
    if (!s && amq_sub && c->client_id[0]) {
        /* ActiveMQ: remove a durable subscription that is not active */
        char g[SL_TOPIC_NAME_MAX + 1];
        snprintf(g, sizeof(g), "%s.%s", c->client_id, amq_sub);
        if (stomp_vhost_name(c, g, sizeof(g), why, sizeof(why)) != SL_OK) {
            stomp_send_error(c, receipt, "Invalid destination", why);
            return;
        }
        sanitize_name(g);
        if (srv_groups(c->s))
            sl_qgroup_delete(srv_groups(c->s), g, NULL);
        /* cluster: its topic (and so its coordinator) is unknown here:
         * every other node deletes its copy (relay.c) */
        stomp_relay_unsubscribe_all(c, amq_sub);
        stomp_owe_receipt(c, receipt, NULL);
        return;
    }
    if (!s) {
        snprintf(why, sizeof(why), "no subscription with id '%.100s'",
                 id ? id : "");
        stomp_send_error(c, receipt, "unknown subscription", why);
        return;
    }
    /* A durable subscription survives UNSUBSCRIBE unless the client says
     * to remove it (ActiveMQ: activemq.subscriptionName; RabbitMQ:
     * durable:true on UNSUBSCRIBE). */
    if (s->durable && (amq_sub || stomp_header_bool(dur, 0))) {
        drop = 1;
        group = xstrdup(s->group);
        topic = xstrdup(s->qtopic);
        if (s->relay) /* the coordinator removes it */
            stomp_relay_drop(s, amq_sub);
    }
    sub_unlink(c, s);
    stomp_sub_free(s);
    if (drop && srv_groups(c->s))
        sl_qgroup_delete(srv_groups(c->s), group, topic);
    free(group);
    free(topic);
    stomp_owe_receipt(c, receipt, NULL);
}

void stomp_h_ack(stomp_conn *c, const sl_stomp_frame *f)
{
    const char *receipt = RECEIPT(f);
    const char *id = sl_stomp_frame_value(f, "id");
    const char *mid = sl_stomp_frame_value(f, "message-id");
    const char *sub = sl_stomp_frame_value(f, "subscription");
    const char *txid = sl_stomp_frame_value(f, "transaction");
    const char *rq = sl_stomp_frame_value(f, "requeue");
    const char *msgid;
    int requeue = stomp_header_bool(rq, 1);
    /* a relaying node's ACK of every delivery of the subscription up to
     * this one (relay.c, rl_acks_flush) */
    int cumulative =
        c->relay_from && f->cmd == SL_STOMP_ACK &&
        stomp_header_bool(sl_stomp_frame_value(f, "sluice-cumulative"), 0);
    int queue = 0;
    char why[512];
    sl_wait *w;
    /* 1.2 names the message by id (our ack header) only, as RabbitMQ
     * and ActiveMQ require; 1.0/1.1 by message-id (id accepted too) */
    msgid = c->version >= SL_STOMP_V12 ? id : (mid ? mid : id);
    if (!msgid) {
        snprintf(why, sizeof(why), "%s needs an %s header",
                 f->cmd == SL_STOMP_ACK ? "ACK" : "NACK",
                 c->version >= SL_STOMP_V12 ? "id" : "message-id");
        stomp_send_error(c, receipt, "Missing header", why);
        return;
    }
    if (txid) {
        stomp_tx *t = stomp_tx_find(c, txid);
        tx_op *o;
        if (!t) {
            snprintf(why, sizeof(why), "%s in unknown transaction '%.100s'",
                     f->cmd == SL_STOMP_ACK ? "ACK" : "NACK", txid);
            stomp_send_error(c, receipt, "Bad transaction", why);
            return;
        }
        o = calloc(1, sizeof(*o));
        if (!o) {
            stomp_send_error(c, receipt, "out of memory", NULL);
            return;
        }
        o->cmd = f->cmd;
        o->msgid = strdup(msgid);
        o->subid = xstrdup(sub);
        o->requeue = requeue;
        stomp_tx_push(t, o);
        stomp_owe_receipt(c, receipt, NULL); /* received (see h_send) */
        return;
    }
    /* the receipt means the ack is committed (here, or at the
     * coordinator a relayed subscription is served by) */
    w = receipt ? sl_wait_new(c->conn) : NULL;
    if (stomp_do_ack(c, f->cmd, msgid, sub, cumulative, requeue, w, &queue) !=
        SL_OK) {
        snprintf(why, sizeof(why),
                 "no unacknowledged message with id '%.150s' on this "
                 "connection (already acknowledged, or auto-acknowledged)",
                 msgid);
        if (w) {
            sl_wait_built(w);
            sl_wait_unref(w);
        }
        stomp_send_error(c, receipt, "unknown message", why);
        return;
    }
    if (w) {
        if (queue && srv_groups(c->s)) {
            sl_wait_hold(w);
            sl_wait_set_what(w,
                             "%s %.120s not confirmed: either the queue "
                             "group moved to another node before it was "
                             "replicated (a failover or controlled shutdown: "
                             "not applied, the message comes again), or the "
                             "group state could not be written here (see the "
                             "broker log: applied, written by the next "
                             "commit that succeeds)",
                             f->cmd == SL_STOMP_ACK ? "ACK" : "NACK", msgid);
            sl_groups_wait(srv_groups(c->s), stomp_wait_cb, w);
        }
        stomp_owe_receipt(c, receipt, w);
        sl_wait_built(w);
        sl_wait_unref(w);
    }
}
