/*
 * meta_apply.c - applying a metadata command to the image (sl_meta_apply):
 * the same result on every node, or the image diverges. The rules are in
 * meta.h and docs/cluster.md section 2; meta.c holds the image's lookups.
 */
#include "cluster/meta.h"
#include "cluster/meta_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int is_fenced(const sl_meta *m, int32_t id)
{
    const sl_mi_node *n = sl_meta_node_find(m, id);
    return !n || n->fenced;
}

static int unclean_allowed(const sl_mi_topic *t)
{
    const char *v = sl_meta_topic_config(t, "unclean-leader-election");
    return v && (!strcasecmp(v, "yes") || !strcasecmp(v, "true") ||
                 !strcasecmp(v, "on") || !strcmp(v, "1"));
}

static void set_remove(int32_t *s, int32_t *n, int32_t id)
{
    int32_t k = 0;
    for (int32_t i = 0; i < *n; i++)
        if (s[i] != id)
            s[k++] = s[i];
    *n = k;
}

/* ---- apply --------------------------------------------------------------- */

static void set_str(char **dst, char *src)
{
    free(*dst);
    *dst = src;
}

static sl_err apply_register(sl_meta *m, sl_rd *rd)
{
    int32_t id = (int32_t)sl_rd_u32(rd);
    char *raft = sl_meta_rd_strdup(rd), *addr = sl_meta_rd_strdup(rd),
         *stomp = sl_meta_rd_strdup(rd), *tls = NULL;
    int found;
    size_t i;
    sl_mi_node *n;
    sl_err rc = SL_OK;

    if (!rd->err && sl_rd_left(rd) > 0) /* the TLS address (optional) */
        tls = sl_meta_rd_strdup(rd);
    if (rd->err || sl_rd_left(rd) != 0) {
        rc = SL_ERR_MALFORMED;
        goto out;
    }
    if (id <= 0) {
        rc = SL_ERR_INVALID_ARG;
        goto out;
    }
    i = sl_meta_node_pos(m, id, &found);
    if (!found) {
        if (m->nnodes >= SL_META_MAX_NODES) {
            rc = SL_ERR_TOO_LARGE;
            goto out;
        }
        m->nodes = realloc(m->nodes, sizeof(*m->nodes) * (m->nnodes + 1));
        if (!m->nodes)
            abort();
        memmove(&m->nodes[i + 1], &m->nodes[i],
                sizeof(*m->nodes) * (m->nnodes - i));
        m->nnodes++;
        n = &m->nodes[i];
        memset(n, 0, sizeof(*n));
        n->id = id;
        n->fenced = 1;
        n->raft_addr = sl_meta_xstrndup("", 0);
        n->addr = sl_meta_xstrndup("", 0);
        n->stomp_addr = sl_meta_xstrndup("", 0);
        n->tls_addr = sl_meta_xstrndup("", 0);
    }
    n = &m->nodes[i];
    if (n->fenced == SL_MI_STOPPED)
        n->fenced = 1; /* restarted: the controller unfences it when alive */
    if (raft[0])
        set_str(&n->raft_addr, raft), raft = NULL;
    if (addr[0])
        set_str(&n->addr, addr), addr = NULL;
    if (stomp[0])
        set_str(&n->stomp_addr, stomp), stomp = NULL;
    if (tls)
        set_str(&n->tls_addr, tls), tls = NULL;
out:
    free(raft);
    free(addr);
    free(stomp);
    free(tls);
    return rc;
}

/* Leader for a partition from its ISR (replica order), skipping fenced. */
static int32_t pick_isr_leader(const sl_meta *m, const sl_mi_part *p)
{
    for (int32_t i = 0; i < p->nrep; i++)
        if (sl_meta_in_set(p->isr, p->nisr, p->rep[i]) &&
            !is_fenced(m, p->rep[i]))
            return p->rep[i];
    return -1;
}

static void fence_part(const sl_meta *m, const sl_mi_topic *t, sl_mi_part *p,
                       int32_t id)
{
    if (!sl_meta_in_set(p->rep, p->nrep, id))
        return;
    if (p->leader == id) {
        int32_t nl;
        /* the ISR without id, unless id is its last member */
        if (p->nisr > 1)
            set_remove(p->isr, &p->nisr, id);
        nl = pick_isr_leader(m, p);
        if (nl < 0 && unclean_allowed(t)) {
            for (int32_t i = 0; i < p->nrep && nl < 0; i++)
                if (!is_fenced(m, p->rep[i]))
                    nl = p->rep[i];
            if (nl >= 0) {
                p->isr[0] = nl;
                p->nisr = 1;
            }
        }
        p->leader = nl;
        p->leader_epoch++;
        p->part_epoch++;
    } else if (sl_meta_in_set(p->isr, p->nisr, id) && p->nisr > 1) {
        set_remove(p->isr, &p->nisr, id);
        p->part_epoch++;
    }
}

static sl_err apply_fence(sl_meta *m, sl_rd *rd, int fenced)
{
    int32_t id = (int32_t)sl_rd_u32(rd);
    int found, was;
    size_t i;

    if (fenced && sl_rd_left(rd) == 1 && sl_rd_u8(rd) == 1)
        fenced = SL_MI_STOPPED; /* the node's own controlled shutdown */
    if (rd->err || sl_rd_left(rd) != 0)
        return SL_ERR_MALFORMED;
    i = sl_meta_node_pos(m, id, &found);
    if (!found)
        return SL_ERR_NOT_FOUND;
    was = m->nodes[i].fenced;
    if (was == fenced)
        return SL_OK;
    m->nodes[i].fenced = fenced;
    if (was && fenced)
        return SL_OK; /* fenced already: only the reason changed */
    for (size_t k = 0; k < m->ntopics; k++) {
        sl_mi_topic *t = m->topics[k];
        for (int32_t j = 0; j < t->nparts; j++) {
            sl_mi_part *p = &t->parts[j];
            if (fenced) {
                fence_part(m, t, p, id);
            } else if (p->leader < 0 && sl_meta_in_set(p->isr, p->nisr, id)) {
                p->leader = id;
                p->leader_epoch++;
                p->part_epoch++;
            }
        }
    }
    return SL_OK;
}

static int valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 249 || !strcmp(s, ".") || !strcmp(s, ".."))
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

static sl_err apply_create(sl_meta *m, sl_rd *rd)
{
    sl_mi_topic *t = sl_meta_xcalloc(1, sizeof(*t));
    sl_err rc = SL_OK;
    int found;
    size_t pos;

    t->name = sl_meta_rd_strdup(rd);
    t->nparts = (int32_t)sl_rd_u32(rd);
    t->rf = (int32_t)sl_rd_u32(rd);
    t->ncfg = sl_rd_u32(rd);
    if (rd->err || t->nparts < 1 || t->nparts > SL_META_MAX_PARTS ||
        t->rf < 1 || t->rf > SL_META_MAX_RF || t->ncfg > SL_META_MAX_CONFIGS ||
        sl_rd_left(rd) < (size_t)t->nparts * (size_t)t->rf * 4) {
        t->ncfg = 0;
        rc = SL_ERR_MALFORMED;
        goto out;
    }
    t->keys = sl_meta_xcalloc(t->ncfg, sizeof(char *));
    t->vals = sl_meta_xcalloc(t->ncfg, sizeof(char *));
    for (uint32_t i = 0; i < t->ncfg; i++) {
        t->keys[i] = sl_meta_rd_strdup(rd);
        t->vals[i] = sl_meta_rd_strdup(rd);
    }
    t->parts = sl_meta_xcalloc((size_t)t->nparts, sizeof(*t->parts));
    for (int32_t p = 0; p < t->nparts; p++) {
        sl_mi_part *mp = &t->parts[p];
        mp->nrep = t->rf;
        for (int32_t r = 0; r < t->rf; r++) {
            mp->rep[r] = (int32_t)sl_rd_u32(rd);
            if (!rd->err && (!sl_meta_node_find(m, mp->rep[r]) ||
                             sl_meta_in_set(mp->rep, r, mp->rep[r])))
                rc = SL_ERR_INVALID_CONFIG; /* unknown or repeated node */
        }
    }
    if (rd->err || sl_rd_left(rd) != 0) {
        rc = SL_ERR_MALFORMED;
        goto out;
    }
    if (rc != SL_OK)
        goto out;
    if (!valid_name(t->name)) {
        rc = SL_ERR_INVALID_TOPIC;
        goto out;
    }
    pos = sl_meta_topic_pos(m, t->name, &found);
    if (found) {
        rc = SL_ERR_TOPIC_EXISTS;
        goto out;
    }
    /* Leader: the first replica that is alive (preferred leader); the ISR
     * is every replica (they are all empty and so all in sync). */
    for (int32_t p = 0; p < t->nparts; p++) {
        sl_mi_part *mp = &t->parts[p];
        memcpy(mp->isr, mp->rep, sizeof(mp->rep));
        mp->nisr = mp->nrep;
        mp->leader = -1;
        for (int32_t r = 0; r < mp->nrep && mp->leader < 0; r++)
            if (!is_fenced(m, mp->rep[r]))
                mp->leader = mp->rep[r];
    }
    m->topics = realloc(m->topics, sizeof(*m->topics) * (m->ntopics + 1));
    if (!m->topics)
        abort();
    memmove(&m->topics[pos + 1], &m->topics[pos],
            sizeof(*m->topics) * (m->ntopics - pos));
    m->topics[pos] = t;
    m->ntopics++;
    return SL_OK;
out:
    sl_meta_topic_free(t);
    return rc;
}

static sl_err apply_delete(sl_meta *m, sl_rd *rd)
{
    char *name = sl_meta_rd_strdup(rd);
    int found;
    size_t pos;

    if (rd->err || sl_rd_left(rd) != 0) {
        free(name);
        return SL_ERR_MALFORMED;
    }
    pos = sl_meta_topic_pos(m, name, &found);
    free(name);
    if (!found)
        return SL_ERR_UNKNOWN_TOPIC;
    sl_meta_topic_free(m->topics[pos]);
    memmove(&m->topics[pos], &m->topics[pos + 1],
            sizeof(*m->topics) * (m->ntopics - pos - 1));
    m->ntopics--;
    return SL_OK;
}

static sl_err apply_part_change(sl_meta *m, sl_rd *rd)
{
    char *name = sl_meta_rd_strdup(rd);
    int32_t part = (int32_t)sl_rd_u32(rd);
    int32_t expect = (int32_t)sl_rd_u32(rd);
    int32_t leader = (int32_t)sl_rd_u32(rd);
    uint32_t nisr = sl_rd_u32(rd);
    int32_t isr[SL_META_MAX_RF];
    const sl_mi_topic *t;
    sl_mi_part *p;
    sl_err rc = SL_OK;

    if (rd->err || nisr < 1 || nisr > SL_META_MAX_RF) {
        rc = SL_ERR_MALFORMED;
        goto out;
    }
    for (uint32_t i = 0; i < nisr; i++)
        isr[i] = (int32_t)sl_rd_u32(rd);
    if (rd->err || sl_rd_left(rd) != 0) {
        rc = SL_ERR_MALFORMED;
        goto out;
    }
    t = sl_meta_topic_find(m, name);
    if (!t) {
        rc = SL_ERR_UNKNOWN_TOPIC;
        goto out;
    }
    if (part < 0 || part >= t->nparts) {
        rc = SL_ERR_UNKNOWN_PARTITION;
        goto out;
    }
    p = &t->parts[part];
    if (p->part_epoch != expect) {
        rc = SL_ERR_REBALANCE; /* stale: re-read the image and retry */
        goto out;
    }
    for (uint32_t i = 0; i < nisr; i++)
        if (!sl_meta_in_set(p->rep, p->nrep, isr[i]) ||
            sl_meta_in_set(isr, (int32_t)i, isr[i]))
            rc = SL_ERR_INVALID_ARG;
    if (rc == SL_OK && leader >= 0 &&
        !sl_meta_in_set(isr, (int32_t)nisr, leader))
        rc = SL_ERR_INVALID_ARG;
    if (rc != SL_OK)
        goto out;
    if (leader != p->leader)
        p->leader_epoch++;
    p->leader = leader;
    /* keep the ISR in replica order */
    p->nisr = 0;
    for (int32_t r = 0; r < p->nrep; r++)
        if (sl_meta_in_set(isr, (int32_t)nisr, p->rep[r]))
            p->isr[p->nisr++] = p->rep[r];
    p->part_epoch++;
out:
    free(name);
    return rc;
}

int32_t sl_meta_part_rf(const sl_mi_part *mp)
{
    if (mp->ntarget == 0)
        return mp->nrep;
    return mp->norig > 0 ? mp->norig : mp->ntarget;
}

/* A topic's rf: the largest replication factor of its partitions (it
 * changes when a reassignment that changes one completes). Only the
 * replica count of new partitions (add-partitions) and log lines use it:
 * durability rules are per partition (sl_meta_part_rf). Counting the
 * replicas a reassignment is adding here once made every other partition
 * of an RF 1 topic refuse durable appends while one was moved (their
 * min-insync-replicas rose to 2). */
static void topic_rf(sl_mi_topic *t)
{
    int32_t rf = 1;
    for (int32_t p = 0; p < t->nparts; p++)
        if (sl_meta_part_rf(&t->parts[p]) > rf)
            rf = sl_meta_part_rf(&t->parts[p]);
    t->rf = rf;
}

/* The topic and partition a command names (after its str16 and i32). */
static sl_err rd_part(sl_meta *m, sl_rd *rd, sl_mi_topic **tp, int32_t *pp)
{
    char *name = sl_meta_rd_strdup(rd);
    int32_t part = (int32_t)sl_rd_u32(rd);
    const sl_mi_topic *t;
    sl_err rc = SL_OK;
    if (rd->err)
        rc = SL_ERR_MALFORMED;
    else if (!(t = sl_meta_topic_find(m, name)))
        rc = SL_ERR_UNKNOWN_TOPIC;
    else if (part < 0 || part >= t->nparts)
        rc = SL_ERR_UNKNOWN_PARTITION;
    else {
        *tp = (sl_mi_topic *)t;
        *pp = part;
    }
    free(name);
    return rc;
}

static sl_err apply_reassign(sl_meta *m, sl_rd *rd)
{
    sl_mi_topic *t = NULL;
    sl_mi_part *p;
    int32_t part = 0, target[SL_META_MAX_RF], rep[SL_META_MAX_RF], nrep;
    uint32_t n;
    sl_err rc = rd_part(m, rd, &t, &part);

    n = sl_rd_u32(rd);
    if (rd->err || n < 1 || n > SL_META_MAX_RF)
        return SL_ERR_MALFORMED;
    for (uint32_t i = 0; i < n; i++)
        target[i] = (int32_t)sl_rd_u32(rd);
    if (rd->err || sl_rd_left(rd) != 0)
        return SL_ERR_MALFORMED;
    if (rc != SL_OK)
        return rc;
    for (uint32_t i = 0; i < n; i++)
        if (!sl_meta_node_find(m, target[i]) ||
            sl_meta_in_set(target, (int32_t)i, target[i]))
            return SL_ERR_INVALID_CONFIG; /* unknown or repeated node */
    p = &t->parts[part];
    /* replicas: every current one (the old ones serve until done), but
     * when this replaces a target in progress, not the replicas that
     * were being added for it and are neither in sync nor wanted now;
     * then the targets they lack */
    nrep = 0;
    for (int32_t r = 0; r < p->nrep; r++)
        if (sl_meta_in_set(p->isr, p->nisr, p->rep[r]) ||
            sl_meta_in_set(target, (int32_t)n, p->rep[r]) || p->ntarget == 0)
            rep[nrep++] = p->rep[r];
    for (uint32_t i = 0; i < n; i++)
        if (!sl_meta_in_set(rep, nrep, target[i])) {
            if (nrep == SL_META_MAX_RF)
                return SL_ERR_INVALID_CONFIG;
            rep[nrep++] = target[i];
        }
    /* the leader and the ISR must stay replicas */
    for (int32_t i = 0; i < p->nisr; i++)
        if (!sl_meta_in_set(rep, nrep, p->isr[i])) {
            if (nrep == SL_META_MAX_RF)
                return SL_ERR_INVALID_CONFIG;
            rep[nrep++] = p->isr[i];
        }
    if (p->ntarget == 0) { /* what a cancel goes back to */
        memcpy(p->orig, p->rep, sizeof(p->orig));
        p->norig = p->nrep;
    }
    memcpy(p->rep, rep, sizeof(rep));
    p->nrep = nrep;
    memcpy(p->target, target, sizeof(int32_t) * n);
    p->ntarget = (int32_t)n;
    p->part_epoch++;
    topic_rf(t);
    return SL_OK;
}

/* The leader when a reassignment completes (meta.h, REASSIGN_DONE). */
static int32_t done_leader(const sl_meta *m, const sl_mi_part *p)
{
    if (!is_fenced(m, p->target[0]) &&
        sl_meta_in_set(p->isr, p->nisr, p->target[0]))
        return p->target[0];
    if (p->leader >= 0 && sl_meta_in_set(p->target, p->ntarget, p->leader))
        return p->leader;
    for (int32_t i = 0; i < p->ntarget; i++)
        if (!is_fenced(m, p->target[i]) &&
            sl_meta_in_set(p->isr, p->nisr, p->target[i]))
            return p->target[i];
    return -1;
}

static int targets_in_sync(const sl_mi_part *p)
{
    for (int32_t i = 0; i < p->ntarget; i++)
        if (!sl_meta_in_set(p->isr, p->nisr, p->target[i]))
            return 0;
    return p->ntarget > 0;
}

static sl_err apply_reassign_done(sl_meta *m, sl_rd *rd)
{
    sl_mi_topic *t = NULL;
    sl_mi_part *p;
    int32_t part = 0, expect, leader, isr[SL_META_MAX_RF], nisr = 0;
    sl_err rc = rd_part(m, rd, &t, &part);

    expect = (int32_t)sl_rd_u32(rd);
    if (rd->err || sl_rd_left(rd) != 0)
        return SL_ERR_MALFORMED;
    if (rc != SL_OK)
        return rc;
    p = &t->parts[part];
    if (p->part_epoch != expect || !targets_in_sync(p))
        return SL_ERR_REBALANCE;
    leader = done_leader(m, p);
    for (int32_t i = 0; i < p->ntarget; i++)
        if (sl_meta_in_set(p->isr, p->nisr, p->target[i]))
            isr[nisr++] = p->target[i];
    if (leader != p->leader)
        p->leader_epoch++;
    p->leader = leader;
    memcpy(p->rep, p->target, sizeof(p->rep));
    p->nrep = p->ntarget;
    memcpy(p->isr, isr, sizeof(isr));
    p->nisr = nisr;
    p->ntarget = 0;
    p->norig = 0;
    p->part_epoch++;
    topic_rf(t);
    return SL_OK;
}

static sl_err apply_alter(sl_meta *m, sl_rd *rd)
{
    char *name = sl_meta_rd_strdup(rd), *keys[SL_META_MAX_CONFIGS] = {0},
         *vals[SL_META_MAX_CONFIGS] = {0};
    uint32_t n = sl_rd_u32(rd), i;
    sl_mi_topic *t;
    sl_err rc = SL_OK;

    if (rd->err || n > SL_META_MAX_CONFIGS) {
        n = 0;
        rc = SL_ERR_MALFORMED;
        goto out;
    }
    for (i = 0; i < n; i++) {
        keys[i] = sl_meta_rd_strdup(rd);
        vals[i] = sl_meta_rd_strdup(rd);
    }
    if (rd->err || sl_rd_left(rd) != 0) {
        rc = SL_ERR_MALFORMED;
        goto out;
    }
    if (!(t = (sl_mi_topic *)sl_meta_topic_find(m, name))) {
        rc = SL_ERR_UNKNOWN_TOPIC;
        goto out;
    }
    if (t->ncfg + n > SL_META_MAX_CONFIGS) {
        rc = SL_ERR_INVALID_CONFIG;
        goto out;
    }
    t->keys = realloc(t->keys, sizeof(char *) * (t->ncfg + n + 1));
    t->vals = realloc(t->vals, sizeof(char *) * (t->ncfg + n + 1));
    if (!t->keys || !t->vals)
        abort();
    for (i = 0; i < n; i++) {
        uint32_t k;
        for (k = 0; k < t->ncfg && strcmp(t->keys[k], keys[i]); k++)
            ;
        if (!vals[i][0]) { /* removes the override */
            if (k < t->ncfg) {
                free(t->keys[k]);
                free(t->vals[k]);
                memmove(&t->keys[k], &t->keys[k + 1],
                        sizeof(char *) * (t->ncfg - k - 1));
                memmove(&t->vals[k], &t->vals[k + 1],
                        sizeof(char *) * (t->ncfg - k - 1));
                t->ncfg--;
            }
            continue;
        }
        if (k == t->ncfg) {
            t->keys[k] = keys[i];
            t->vals[k] = NULL;
            keys[i] = NULL;
            t->ncfg++;
        }
        free(t->vals[k]);
        t->vals[k] = vals[i];
        vals[i] = NULL;
    }
out:
    for (i = 0; i < n; i++) {
        free(keys[i]);
        free(vals[i]);
    }
    free(name);
    return rc;
}

static sl_err apply_add_partitions(sl_meta *m, sl_rd *rd)
{
    char *name = sl_meta_rd_strdup(rd);
    int32_t np = (int32_t)sl_rd_u32(rd), rf = (int32_t)sl_rd_u32(rd), old;
    sl_mi_topic *t = NULL;
    sl_mi_part *parts;
    sl_err rc = SL_OK;

    if (rd->err || rf < 1 || rf > SL_META_MAX_RF || np < 1 ||
        np > SL_META_MAX_PARTS) {
        rc = SL_ERR_MALFORMED;
        goto out;
    }
    if (!(t = (sl_mi_topic *)sl_meta_topic_find(m, name))) {
        rc = SL_ERR_UNKNOWN_TOPIC;
        goto out;
    }
    old = t->nparts;
    /* placed for the count its proposer saw: another add-partitions
     * applied first (two nodes asked at once) is refused as such, not as
     * a malformed command (broker/cluster_ops.c names the counts) */
    if (np <= old ||
        (sl_rd_left(rd) % ((size_t)rf * 4) == 0 &&
         sl_rd_left(rd) / ((size_t)rf * 4) != (size_t)(np - old))) {
        rc = SL_ERR_INVALID_ARG;
        goto out;
    }
    if (sl_rd_left(rd) != (size_t)(np - old) * (size_t)rf * 4) {
        rc = SL_ERR_MALFORMED;
        goto out;
    }
    parts = sl_meta_xcalloc((size_t)np, sizeof(*parts));
    memcpy(parts, t->parts, sizeof(*parts) * (size_t)old);
    for (int32_t p = old; p < np; p++) {
        sl_mi_part *mp = &parts[p];
        mp->nrep = rf;
        for (int32_t r = 0; r < rf; r++) {
            mp->rep[r] = (int32_t)sl_rd_u32(rd);
            if (!sl_meta_node_find(m, mp->rep[r]) ||
                sl_meta_in_set(mp->rep, r, mp->rep[r]))
                rc = SL_ERR_INVALID_CONFIG;
        }
        memcpy(mp->isr, mp->rep, sizeof(mp->rep));
        mp->nisr = mp->nrep;
        mp->leader = -1;
        for (int32_t r = 0; r < mp->nrep && mp->leader < 0; r++)
            if (!is_fenced(m, mp->rep[r]))
                mp->leader = mp->rep[r];
    }
    if (rc != SL_OK) {
        free(parts);
        goto out;
    }
    free(t->parts);
    t->parts = parts;
    t->nparts = np;
    topic_rf(t);
out:
    free(name);
    return rc;
}

static sl_err apply_unregister(sl_meta *m, sl_rd *rd)
{
    int32_t id = (int32_t)sl_rd_u32(rd);
    int found;
    size_t i;
    if (rd->err || sl_rd_left(rd) != 0)
        return SL_ERR_MALFORMED;
    i = sl_meta_node_pos(m, id, &found);
    if (!found)
        return SL_ERR_NOT_FOUND;
    if (sl_meta_node_used(m, id))
        return SL_ERR_INVALID_CONFIG;
    free(m->nodes[i].raft_addr);
    free(m->nodes[i].addr);
    free(m->nodes[i].stomp_addr);
    free(m->nodes[i].tls_addr);
    memmove(&m->nodes[i], &m->nodes[i + 1],
            sizeof(*m->nodes) * (m->nnodes - i - 1));
    m->nnodes--;
    return SL_OK;
}

size_t sl_meta_reassign_cmds(const sl_meta *m, sl_wb *cmds)
{
    size_t out = 0;
    for (size_t i = 0; i < m->ntopics; i++) {
        const sl_mi_topic *t = m->topics[i];
        for (int32_t p = 0; p < t->nparts; p++) {
            const sl_mi_part *mp = &t->parts[p];
            size_t at;
            if (!targets_in_sync(mp))
                continue;
            at = cmds->len;
            sl_wb_u32(cmds, 0);
            sl_meta_enc_reassign_done(cmds, t->name, p, mp->part_epoch);
            sl_wb_patch_u32(cmds, at, (uint32_t)(cmds->len - at - 4));
            out++;
        }
    }
    return out;
}

sl_err sl_meta_apply(sl_meta *m, uint64_t index, const void *buf, size_t len)
{
    sl_rd rd;
    int type = sl_meta_cmd_type(buf, len);
    sl_err rc;

    m->applied = index;
    if (!type)
        return SL_ERR_MALFORMED;
    sl_rd_init(&rd, buf, len);
    sl_rd_u8(&rd);
    sl_rd_u8(&rd);
    switch (type) {
    case SL_MCMD_REGISTER_NODE:
        rc = apply_register(m, &rd);
        break;
    case SL_MCMD_FENCE_NODE:
        rc = apply_fence(m, &rd, 1);
        break;
    case SL_MCMD_UNFENCE_NODE:
        rc = apply_fence(m, &rd, 0);
        break;
    case SL_MCMD_CREATE_TOPIC:
        rc = apply_create(m, &rd);
        break;
    case SL_MCMD_DELETE_TOPIC:
        rc = apply_delete(m, &rd);
        break;
    case SL_MCMD_USER_UPSERT:
    case SL_MCMD_USER_DELETE:
    case SL_MCMD_ACL_CHANGE:
        rc = sl_meta_auth_apply(m, index, type, &rd);
        break;
    case SL_MCMD_REASSIGN:
        rc = apply_reassign(m, &rd);
        break;
    case SL_MCMD_REASSIGN_DONE:
        rc = apply_reassign_done(m, &rd);
        break;
    case SL_MCMD_UNREGISTER_NODE:
        rc = apply_unregister(m, &rd);
        break;
    case SL_MCMD_ALTER_TOPIC:
        rc = apply_alter(m, &rd);
        break;
    case SL_MCMD_ADD_PARTITIONS:
        rc = apply_add_partitions(m, &rd);
        break;
    case SL_MREQ_MEMBER_ADD:
    case SL_MREQ_MEMBER_REMOVE:
        rc = SL_ERR_INVALID_ARG; /* requests, never in the log */
        break;
    default:
        rc = apply_part_change(m, &rd);
        break;
    }
    return rc;
}
