/*
 * meta.c - the metadata image: commands, apply, snapshot/restore,
 * placement and the controller's liveness step. The rules are in meta.h
 * and docs/cluster.md section 2.
 */
#include "cluster/meta.h"
#include "cluster/meta_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Apply must not diverge between nodes: out of memory aborts (meta.h). */
static void *xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    if (!p) {
        fprintf(stderr, "cluster: out of memory applying metadata\n");
        abort();
    }
    return p;
}

static char *xstrndup(const char *s, size_t n)
{
    char *p = xcalloc(1, n + 1);
    if (n)
        memcpy(p, s, n);
    return p;
}

void sl_meta_init(sl_meta *m)
{
    memset(m, 0, sizeof(*m));
}

static void topic_free(sl_mi_topic *t)
{
    if (!t)
        return;
    for (uint32_t i = 0; i < t->ncfg; i++) {
        free(t->keys[i]);
        free(t->vals[i]);
    }
    free(t->keys);
    free(t->vals);
    free(t->parts);
    free(t->name);
    free(t);
}

void sl_meta_fini(sl_meta *m)
{
    for (size_t i = 0; i < m->nnodes; i++) {
        free(m->nodes[i].raft_addr);
        free(m->nodes[i].addr);
        free(m->nodes[i].stomp_addr);
    }
    free(m->nodes);
    for (size_t i = 0; i < m->ntopics; i++)
        topic_free(m->topics[i]);
    free(m->topics);
    sl_meta_auth_fini(m);
    memset(m, 0, sizeof(*m));
}

/* ---- lookups ------------------------------------------------------------ */

static size_t node_pos(const sl_meta *m, int32_t id, int *found)
{
    size_t lo = 0, hi = m->nnodes;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (m->nodes[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < m->nnodes && m->nodes[lo].id == id;
    return lo;
}

const sl_mi_node *sl_meta_node_find(const sl_meta *m, int32_t id)
{
    int found;
    size_t i = node_pos(m, id, &found);
    return found ? &m->nodes[i] : NULL;
}

static size_t topic_pos(const sl_meta *m, const char *name, int *found)
{
    size_t lo = 0, hi = m->ntopics;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (strcmp(m->topics[mid]->name, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < m->ntopics && !strcmp(m->topics[lo]->name, name);
    return lo;
}

const sl_mi_topic *sl_meta_topic_find(const sl_meta *m, const char *name)
{
    int found;
    size_t i = topic_pos(m, name, &found);
    return found ? m->topics[i] : NULL;
}

const char *sl_meta_topic_config(const sl_mi_topic *t, const char *key)
{
    for (uint32_t i = 0; i < t->ncfg; i++)
        if (!strcmp(t->keys[i], key))
            return t->vals[i];
    return NULL;
}

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

static int in_set(const int32_t *s, int32_t n, int32_t id)
{
    for (int32_t i = 0; i < n; i++)
        if (s[i] == id)
            return 1;
    return 0;
}

static void set_remove(int32_t *s, int32_t *n, int32_t id)
{
    int32_t k = 0;
    for (int32_t i = 0; i < *n; i++)
        if (s[i] != id)
            s[k++] = s[i];
    *n = k;
}

/* ---- reading helpers ---------------------------------------------------- */

/* A str16 as a NUL-terminated copy; NULL (rd->err set) on underflow or a
 * null string. */
static char *rd_strdup(sl_rd *rd)
{
    uint16_t n = 0;
    const char *s = sl_rd_str16(rd, &n);
    if (!s) {
        if (!rd->err)
            rd->err = SL_ERR_MALFORMED;
        return NULL;
    }
    return xstrndup(s, n);
}

static void wb_str(sl_wb *wb, const char *s)
{
    sl_wb_str16(wb, s ? s : "", s ? strlen(s) : 0);
}

/* ---- encoders ------------------------------------------------------------ */

static void enc_head(sl_wb *wb, int type)
{
    sl_wb_u8(wb, SL_META_VERSION);
    sl_wb_u8(wb, (uint8_t)type);
}

void sl_meta_enc_register(sl_wb *wb, int32_t id, const char *raft_addr,
                          const char *addr, const char *stomp_addr)
{
    enc_head(wb, SL_MCMD_REGISTER_NODE);
    sl_wb_u32(wb, (uint32_t)id);
    wb_str(wb, raft_addr);
    wb_str(wb, addr);
    wb_str(wb, stomp_addr);
}

void sl_meta_enc_fence(sl_wb *wb, int32_t id, int fenced)
{
    enc_head(wb, fenced ? SL_MCMD_FENCE_NODE : SL_MCMD_UNFENCE_NODE);
    sl_wb_u32(wb, (uint32_t)id);
    if (fenced == SL_MI_STOPPED)
        sl_wb_u8(wb, 1); /* controlled shutdown */
}

void sl_meta_enc_create_topic(sl_wb *wb, const char *name, int32_t nparts,
                              int32_t rf, const char *const *keys,
                              const char *const *vals, uint32_t ncfg,
                              const int32_t *replicas)
{
    enc_head(wb, SL_MCMD_CREATE_TOPIC);
    wb_str(wb, name);
    sl_wb_u32(wb, (uint32_t)nparts);
    sl_wb_u32(wb, (uint32_t)rf);
    sl_wb_u32(wb, ncfg);
    for (uint32_t i = 0; i < ncfg; i++) {
        wb_str(wb, keys[i]);
        wb_str(wb, vals[i]);
    }
    for (int64_t i = 0; i < (int64_t)nparts * rf; i++)
        sl_wb_u32(wb, (uint32_t)replicas[i]);
}

void sl_meta_enc_delete_topic(sl_wb *wb, const char *name)
{
    enc_head(wb, SL_MCMD_DELETE_TOPIC);
    wb_str(wb, name);
}

void sl_meta_enc_partition_change(sl_wb *wb, const char *topic, int32_t part,
                                  int32_t expect_part_epoch, int32_t leader,
                                  const int32_t *isr, int32_t nisr)
{
    enc_head(wb, SL_MCMD_PARTITION_CHANGE);
    wb_str(wb, topic);
    sl_wb_u32(wb, (uint32_t)part);
    sl_wb_u32(wb, (uint32_t)expect_part_epoch);
    sl_wb_u32(wb, (uint32_t)leader);
    sl_wb_u32(wb, (uint32_t)nisr);
    for (int32_t i = 0; i < nisr; i++)
        sl_wb_u32(wb, (uint32_t)isr[i]);
}

void sl_meta_enc_reassign(sl_wb *wb, const char *topic, int32_t part,
                          const int32_t *target, int32_t n)
{
    enc_head(wb, SL_MCMD_REASSIGN);
    wb_str(wb, topic);
    sl_wb_u32(wb, (uint32_t)part);
    sl_wb_u32(wb, (uint32_t)n);
    for (int32_t i = 0; i < n; i++)
        sl_wb_u32(wb, (uint32_t)target[i]);
}

void sl_meta_enc_reassign_done(sl_wb *wb, const char *topic, int32_t part,
                               int32_t expect_part_epoch)
{
    enc_head(wb, SL_MCMD_REASSIGN_DONE);
    wb_str(wb, topic);
    sl_wb_u32(wb, (uint32_t)part);
    sl_wb_u32(wb, (uint32_t)expect_part_epoch);
}

void sl_meta_enc_unregister(sl_wb *wb, int32_t id)
{
    enc_head(wb, SL_MCMD_UNREGISTER_NODE);
    sl_wb_u32(wb, (uint32_t)id);
}

void sl_meta_enc_alter_topic(sl_wb *wb, const char *name,
                             const char *const *keys,
                             const char *const *vals, uint32_t n)
{
    enc_head(wb, SL_MCMD_ALTER_TOPIC);
    wb_str(wb, name);
    sl_wb_u32(wb, n);
    for (uint32_t i = 0; i < n; i++) {
        wb_str(wb, keys[i]);
        wb_str(wb, vals[i]);
    }
}

void sl_meta_enc_add_partitions(sl_wb *wb, const char *name, int32_t nparts,
                                int32_t rf, const int32_t *replicas,
                                int32_t nnew)
{
    enc_head(wb, SL_MCMD_ADD_PARTITIONS);
    wb_str(wb, name);
    sl_wb_u32(wb, (uint32_t)nparts);
    sl_wb_u32(wb, (uint32_t)rf);
    for (int64_t i = 0; i < (int64_t)nnew * rf; i++)
        sl_wb_u32(wb, (uint32_t)replicas[i]);
}

void sl_meta_enc_member(sl_wb *wb, int type, int32_t id, const char *addr)
{
    enc_head(wb, type);
    sl_wb_u32(wb, (uint32_t)id);
    if (type == SL_MREQ_MEMBER_ADD)
        wb_str(wb, addr);
}

sl_err sl_meta_dec_member(const void *buf, size_t len, int *type,
                          int32_t *id, char *addr, size_t addrlen)
{
    int t = sl_meta_cmd_type(buf, len);
    sl_rd rd;
    uint16_t n = 0;
    const char *a = "";
    if (t != SL_MREQ_MEMBER_ADD && t != SL_MREQ_MEMBER_REMOVE)
        return SL_ERR_MALFORMED;
    sl_rd_init(&rd, buf, len);
    sl_rd_u8(&rd);
    sl_rd_u8(&rd);
    *id = (int32_t)sl_rd_u32(&rd);
    if (t == SL_MREQ_MEMBER_ADD)
        a = sl_rd_str16(&rd, &n);
    if (rd.err || !a || sl_rd_left(&rd) != 0 || n >= addrlen)
        return SL_ERR_MALFORMED;
    memcpy(addr, a, n);
    addr[n] = 0;
    *type = t;
    return SL_OK;
}

int sl_meta_node_used(const sl_meta *m, int32_t id)
{
    for (size_t i = 0; i < m->ntopics; i++)
        for (int32_t p = 0; p < m->topics[i]->nparts; p++) {
            const sl_mi_part *mp = &m->topics[i]->parts[p];
            if (in_set(mp->rep, mp->nrep, id) ||
                in_set(mp->isr, mp->nisr, id) ||
                in_set(mp->target, mp->ntarget, id))
                return 1;
        }
    return 0;
}

int sl_meta_cmd_type(const void *buf, size_t len)
{
    const uint8_t *p = buf;
    if (len < 2 || p[0] != SL_META_VERSION)
        return 0;
    if ((p[1] >= SL_MCMD_REGISTER_NODE && p[1] <= SL_MCMD_PARTITION_CHANGE) ||
        (p[1] >= SL_MCMD_USER_UPSERT && p[1] <= SL_MCMD_ACL_CHANGE) ||
        (p[1] >= SL_MCMD_REASSIGN && p[1] <= SL_MCMD_ADD_PARTITIONS))
        return p[1];
    return 0;
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
    char *raft = rd_strdup(rd), *addr = rd_strdup(rd), *stomp = rd_strdup(rd);
    int found;
    size_t i;
    sl_mi_node *n;
    sl_err rc = SL_OK;

    if (rd->err || sl_rd_left(rd) != 0) {
        rc = SL_ERR_MALFORMED;
        goto out;
    }
    if (id <= 0) {
        rc = SL_ERR_INVALID_ARG;
        goto out;
    }
    i = node_pos(m, id, &found);
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
        n->raft_addr = xstrndup("", 0);
        n->addr = xstrndup("", 0);
        n->stomp_addr = xstrndup("", 0);
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
out:
    free(raft);
    free(addr);
    free(stomp);
    return rc;
}

/* Leader for a partition from its ISR (replica order), skipping fenced. */
static int32_t pick_isr_leader(const sl_meta *m, const sl_mi_part *p)
{
    for (int32_t i = 0; i < p->nrep; i++)
        if (in_set(p->isr, p->nisr, p->rep[i]) && !is_fenced(m, p->rep[i]))
            return p->rep[i];
    return -1;
}

static void fence_part(const sl_meta *m, const sl_mi_topic *t,
                       sl_mi_part *p, int32_t id)
{
    if (!in_set(p->rep, p->nrep, id))
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
    } else if (in_set(p->isr, p->nisr, id) && p->nisr > 1) {
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
    i = node_pos(m, id, &found);
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
            } else if (p->leader < 0 && in_set(p->isr, p->nisr, id)) {
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
    sl_mi_topic *t = xcalloc(1, sizeof(*t));
    sl_err rc = SL_OK;
    int found;
    size_t pos;

    t->name = rd_strdup(rd);
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
    t->keys = xcalloc(t->ncfg, sizeof(char *));
    t->vals = xcalloc(t->ncfg, sizeof(char *));
    for (uint32_t i = 0; i < t->ncfg; i++) {
        t->keys[i] = rd_strdup(rd);
        t->vals[i] = rd_strdup(rd);
    }
    t->parts = xcalloc((size_t)t->nparts, sizeof(*t->parts));
    for (int32_t p = 0; p < t->nparts; p++) {
        sl_mi_part *mp = &t->parts[p];
        mp->nrep = t->rf;
        for (int32_t r = 0; r < t->rf; r++) {
            mp->rep[r] = (int32_t)sl_rd_u32(rd);
            if (!rd->err && (!sl_meta_node_find(m, mp->rep[r]) ||
                             in_set(mp->rep, r, mp->rep[r])))
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
    pos = topic_pos(m, t->name, &found);
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
    topic_free(t);
    return rc;
}

static sl_err apply_delete(sl_meta *m, sl_rd *rd)
{
    char *name = rd_strdup(rd);
    int found;
    size_t pos;

    if (rd->err || sl_rd_left(rd) != 0) {
        free(name);
        return SL_ERR_MALFORMED;
    }
    pos = topic_pos(m, name, &found);
    free(name);
    if (!found)
        return SL_ERR_UNKNOWN_TOPIC;
    topic_free(m->topics[pos]);
    memmove(&m->topics[pos], &m->topics[pos + 1],
            sizeof(*m->topics) * (m->ntopics - pos - 1));
    m->ntopics--;
    return SL_OK;
}

static sl_err apply_part_change(sl_meta *m, sl_rd *rd)
{
    char *name = rd_strdup(rd);
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
        if (!in_set(p->rep, p->nrep, isr[i]) || in_set(isr, (int32_t)i, isr[i]))
            rc = SL_ERR_INVALID_ARG;
    if (rc == SL_OK && leader >= 0 && !in_set(isr, (int32_t)nisr, leader))
        rc = SL_ERR_INVALID_ARG;
    if (rc != SL_OK)
        goto out;
    if (leader != p->leader)
        p->leader_epoch++;
    p->leader = leader;
    /* keep the ISR in replica order */
    p->nisr = 0;
    for (int32_t r = 0; r < p->nrep; r++)
        if (in_set(isr, (int32_t)nisr, p->rep[r]))
            p->isr[p->nisr++] = p->rep[r];
    p->part_epoch++;
out:
    free(name);
    return rc;
}

/* A topic's rf: the largest replica count of its partitions (it grows
 * during a reassignment and with a changed replication factor). */
static void topic_rf(sl_mi_topic *t)
{
    int32_t rf = 1;
    for (int32_t p = 0; p < t->nparts; p++)
        if (t->parts[p].nrep > rf)
            rf = t->parts[p].nrep;
    t->rf = rf;
}

/* The topic and partition a command names (after its str16 and i32). */
static sl_err rd_part(sl_meta *m, sl_rd *rd, sl_mi_topic **tp, int32_t *pp)
{
    char *name = rd_strdup(rd);
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
            in_set(target, (int32_t)i, target[i]))
            return SL_ERR_INVALID_CONFIG; /* unknown or repeated node */
    p = &t->parts[part];
    /* replicas: every current one (the old ones serve until done), but
     * when this replaces a target in progress, not the replicas that
     * were being added for it and are neither in sync nor wanted now;
     * then the targets they lack */
    nrep = 0;
    for (int32_t r = 0; r < p->nrep; r++)
        if (in_set(p->isr, p->nisr, p->rep[r]) ||
            in_set(target, (int32_t)n, p->rep[r]) || p->ntarget == 0)
            rep[nrep++] = p->rep[r];
    for (uint32_t i = 0; i < n; i++)
        if (!in_set(rep, nrep, target[i])) {
            if (nrep == SL_META_MAX_RF)
                return SL_ERR_INVALID_CONFIG;
            rep[nrep++] = target[i];
        }
    /* the leader and the ISR must stay replicas */
    for (int32_t i = 0; i < p->nisr; i++)
        if (!in_set(rep, nrep, p->isr[i])) {
            if (nrep == SL_META_MAX_RF)
                return SL_ERR_INVALID_CONFIG;
            rep[nrep++] = p->isr[i];
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
        in_set(p->isr, p->nisr, p->target[0]))
        return p->target[0];
    if (p->leader >= 0 && in_set(p->target, p->ntarget, p->leader))
        return p->leader;
    for (int32_t i = 0; i < p->ntarget; i++)
        if (!is_fenced(m, p->target[i]) &&
            in_set(p->isr, p->nisr, p->target[i]))
            return p->target[i];
    return -1;
}

static int targets_in_sync(const sl_mi_part *p)
{
    for (int32_t i = 0; i < p->ntarget; i++)
        if (!in_set(p->isr, p->nisr, p->target[i]))
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
        if (in_set(p->isr, p->nisr, p->target[i]))
            isr[nisr++] = p->target[i];
    if (leader != p->leader)
        p->leader_epoch++;
    p->leader = leader;
    memcpy(p->rep, p->target, sizeof(p->rep));
    p->nrep = p->ntarget;
    memcpy(p->isr, isr, sizeof(isr));
    p->nisr = nisr;
    p->ntarget = 0;
    p->part_epoch++;
    topic_rf(t);
    return SL_OK;
}

static sl_err apply_alter(sl_meta *m, sl_rd *rd)
{
    char *name = rd_strdup(rd), *keys[SL_META_MAX_CONFIGS] = {0},
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
        keys[i] = rd_strdup(rd);
        vals[i] = rd_strdup(rd);
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
    char *name = rd_strdup(rd);
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
    if (np <= old) {
        rc = SL_ERR_INVALID_ARG;
        goto out;
    }
    if (sl_rd_left(rd) != (size_t)(np - old) * (size_t)rf * 4) {
        rc = SL_ERR_MALFORMED;
        goto out;
    }
    parts = xcalloc((size_t)np, sizeof(*parts));
    memcpy(parts, t->parts, sizeof(*parts) * (size_t)old);
    for (int32_t p = old; p < np; p++) {
        sl_mi_part *mp = &parts[p];
        mp->nrep = rf;
        for (int32_t r = 0; r < rf; r++) {
            mp->rep[r] = (int32_t)sl_rd_u32(rd);
            if (!sl_meta_node_find(m, mp->rep[r]) ||
                in_set(mp->rep, r, mp->rep[r]))
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
    i = node_pos(m, id, &found);
    if (!found)
        return SL_ERR_NOT_FOUND;
    if (sl_meta_node_used(m, id))
        return SL_ERR_INVALID_CONFIG;
    free(m->nodes[i].raft_addr);
    free(m->nodes[i].addr);
    free(m->nodes[i].stomp_addr);
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

/* ---- snapshot / restore ---------------------------------------------------
 *
 *   u8 version (3) | u64 applied | u32 nnodes x {i32 id, str16 raft_addr,
 *   str16 addr, str16 stomp_addr, u8 fenced} | u32 ntopics x {str16 name,
 *   i32 nparts, i32 rf, u32 ncfg x {str16 key, str16 value}, nparts x
 *   {i32 leader, i32 leader_epoch, i32 part_epoch, u8 nrep, nrep x i32,
 *   u8 nisr, nisr x i32, u8 ntarget, ntarget x i32 (version 3)}} | the
 *   users and rules (meta_int.h; version 1, before them, has no such
 *   section; versions 1 and 2 no reassignment targets)
 */

/* Snapshots with the users and rules section (2) and reassignment targets
 * (3); versions 1 and 2 are still restored, without them. */
#define SNAP_VERSION 3

void sl_meta_snapshot(const sl_meta *m, sl_wb *wb)
{
    sl_wb_u8(wb, SNAP_VERSION);
    sl_wb_u64(wb, m->applied);
    sl_wb_u32(wb, (uint32_t)m->nnodes);
    for (size_t i = 0; i < m->nnodes; i++) {
        const sl_mi_node *n = &m->nodes[i];
        sl_wb_u32(wb, (uint32_t)n->id);
        wb_str(wb, n->raft_addr);
        wb_str(wb, n->addr);
        wb_str(wb, n->stomp_addr);
        sl_wb_u8(wb, (uint8_t)n->fenced);
    }
    sl_wb_u32(wb, (uint32_t)m->ntopics);
    for (size_t i = 0; i < m->ntopics; i++) {
        const sl_mi_topic *t = m->topics[i];
        wb_str(wb, t->name);
        sl_wb_u32(wb, (uint32_t)t->nparts);
        sl_wb_u32(wb, (uint32_t)t->rf);
        sl_wb_u32(wb, t->ncfg);
        for (uint32_t k = 0; k < t->ncfg; k++) {
            wb_str(wb, t->keys[k]);
            wb_str(wb, t->vals[k]);
        }
        for (int32_t p = 0; p < t->nparts; p++) {
            const sl_mi_part *mp = &t->parts[p];
            sl_wb_u32(wb, (uint32_t)mp->leader);
            sl_wb_u32(wb, (uint32_t)mp->leader_epoch);
            sl_wb_u32(wb, (uint32_t)mp->part_epoch);
            sl_wb_u8(wb, (uint8_t)mp->nrep);
            for (int32_t r = 0; r < mp->nrep; r++)
                sl_wb_u32(wb, (uint32_t)mp->rep[r]);
            sl_wb_u8(wb, (uint8_t)mp->nisr);
            for (int32_t r = 0; r < mp->nisr; r++)
                sl_wb_u32(wb, (uint32_t)mp->isr[r]);
            sl_wb_u8(wb, (uint8_t)mp->ntarget);
            for (int32_t r = 0; r < mp->ntarget; r++)
                sl_wb_u32(wb, (uint32_t)mp->target[r]);
        }
    }
    sl_meta_auth_snapshot(m, wb);
}

sl_err sl_meta_restore(sl_meta *m, const void *buf, size_t len)
{
    sl_meta n;
    sl_rd rd;
    uint32_t cnt;
    int version;

    sl_meta_init(&n);
    sl_rd_init(&rd, buf, len);
    version = sl_rd_u8(&rd);
    if (version < 1 || version > SNAP_VERSION)
        return SL_ERR_CORRUPT;
    n.applied = sl_rd_u64(&rd);
    cnt = sl_rd_u32(&rd);
    if (rd.err || cnt > SL_META_MAX_NODES)
        return SL_ERR_CORRUPT;
    n.nodes = xcalloc(cnt, sizeof(*n.nodes));
    for (uint32_t i = 0; i < cnt && !rd.err; i++) {
        sl_mi_node *nd = &n.nodes[i];
        nd->id = (int32_t)sl_rd_u32(&rd);
        nd->raft_addr = rd_strdup(&rd);
        nd->addr = rd_strdup(&rd);
        nd->stomp_addr = rd_strdup(&rd);
        nd->fenced = sl_rd_u8(&rd);
        if (nd->fenced > SL_MI_STOPPED)
            goto bad;
        n.nnodes = i + 1;
    }
    cnt = sl_rd_u32(&rd);
    if (rd.err || cnt > sl_rd_left(&rd))
        goto bad;
    n.topics = xcalloc(cnt, sizeof(*n.topics));
    for (uint32_t i = 0; i < cnt && !rd.err; i++) {
        sl_mi_topic *t = xcalloc(1, sizeof(*t));
        n.topics[i] = t;
        n.ntopics = i + 1;
        t->name = rd_strdup(&rd);
        t->nparts = (int32_t)sl_rd_u32(&rd);
        t->rf = (int32_t)sl_rd_u32(&rd);
        t->ncfg = sl_rd_u32(&rd);
        if (rd.err || t->nparts < 1 || t->nparts > SL_META_MAX_PARTS ||
            t->ncfg > SL_META_MAX_CONFIGS) {
            t->ncfg = 0;
            goto bad;
        }
        t->keys = xcalloc(t->ncfg, sizeof(char *));
        t->vals = xcalloc(t->ncfg, sizeof(char *));
        for (uint32_t k = 0; k < t->ncfg; k++) {
            t->keys[k] = rd_strdup(&rd);
            t->vals[k] = rd_strdup(&rd);
        }
        t->parts = xcalloc((size_t)t->nparts, sizeof(*t->parts));
        for (int32_t p = 0; p < t->nparts && !rd.err; p++) {
            sl_mi_part *mp = &t->parts[p];
            mp->leader = (int32_t)sl_rd_u32(&rd);
            mp->leader_epoch = (int32_t)sl_rd_u32(&rd);
            mp->part_epoch = (int32_t)sl_rd_u32(&rd);
            mp->nrep = sl_rd_u8(&rd);
            if (mp->nrep > SL_META_MAX_RF)
                goto bad;
            for (int32_t r = 0; r < mp->nrep; r++)
                mp->rep[r] = (int32_t)sl_rd_u32(&rd);
            mp->nisr = sl_rd_u8(&rd);
            if (mp->nisr > SL_META_MAX_RF)
                goto bad;
            for (int32_t r = 0; r < mp->nisr; r++)
                mp->isr[r] = (int32_t)sl_rd_u32(&rd);
            mp->ntarget = version >= 3 ? sl_rd_u8(&rd) : 0;
            if (mp->ntarget > SL_META_MAX_RF)
                goto bad;
            for (int32_t r = 0; r < mp->ntarget; r++)
                mp->target[r] = (int32_t)sl_rd_u32(&rd);
        }
    }
    if (!rd.err && version >= 2 && sl_meta_auth_restore(&n, &rd) != SL_OK)
        goto bad;
    if (rd.err || sl_rd_left(&rd) != 0)
        goto bad;
    sl_meta_fini(m);
    *m = n;
    return SL_OK;
bad:
    sl_meta_fini(&n);
    return SL_ERR_CORRUPT;
}

/* ---- placement ------------------------------------------------------------ */

static uint32_t name_hash(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++) {
        h ^= (uint8_t)*s;
        h *= 16777619u;
    }
    return h;
}

sl_err sl_meta_place(const sl_meta *m, const char *topic, int32_t nparts,
                     int32_t rf, int32_t *out, char *err, size_t errlen)
{
    size_t n = 0;

    for (size_t i = 0; i < m->nnodes; i++)
        n += !m->nodes[i].fenced;
    if (rf < 1 || rf > SL_META_MAX_RF) {
        snprintf(err, errlen, "replication factor %d is outside 1..%d",
                 (int)rf, SL_META_MAX_RF);
        return SL_ERR_INVALID_CONFIG;
    }
    if ((size_t)rf > n) {
        snprintf(err, errlen,
                 "replication factor %d is more than the %zu live node(s)",
                 (int)rf, n);
        return SL_ERR_INVALID_CONFIG;
    }
    for (int32_t p = 0; p < nparts; p++)
        sl_meta_place_one(m, topic, p, rf, out + (size_t)p * (size_t)rf, err,
                          errlen);
    return SL_OK;
}

sl_err sl_meta_place_one(const sl_meta *m, const char *topic, int32_t part,
                         int32_t rf, int32_t *out, char *err, size_t errlen)
{
    int32_t live[SL_META_MAX_NODES];
    size_t n = 0;
    uint32_t start;
    for (size_t i = 0; i < m->nnodes; i++)
        if (!m->nodes[i].fenced)
            live[n++] = m->nodes[i].id;
    if (rf < 1 || rf > SL_META_MAX_RF || (size_t)rf > n) {
        snprintf(err, errlen,
                 "replication factor %d: want 1..%d and at most the %zu "
                 "live node(s)",
                 (int)rf, SL_META_MAX_RF, n);
        return SL_ERR_INVALID_CONFIG;
    }
    start = name_hash(topic) % (uint32_t)n;
    for (int32_t r = 0; r < rf; r++)
        out[r] = live[(start + (uint32_t)part + (uint32_t)r) % n];
    return SL_OK;
}

/* ---- controller ------------------------------------------------------------ */

size_t sl_meta_liveness_cmds(const sl_meta *m, const int32_t *ids,
                             const int *alive, size_t n, sl_wb *cmds)
{
    size_t out = 0;
    for (size_t i = 0; i < m->nnodes; i++) {
        const sl_mi_node *nd = &m->nodes[i];
        int up = 0;
        size_t at;
        if (nd->fenced == SL_MI_STOPPED)
            continue; /* stays fenced until it registers again */
        for (size_t k = 0; k < n; k++)
            if (ids[k] == nd->id)
                up = alive[k];
        if (up == !nd->fenced)
            continue;
        at = cmds->len;
        sl_wb_u32(cmds, 0);
        sl_meta_enc_fence(cmds, nd->id, !up);
        sl_wb_patch_u32(cmds, at, (uint32_t)(cmds->len - at - 4));
        out++;
    }
    return out;
}

int sl_meta_check(const sl_meta *m, char *err, size_t errlen)
{
    for (size_t i = 0; i < m->ntopics; i++) {
        const sl_mi_topic *t = m->topics[i];
        for (int32_t p = 0; p < t->nparts; p++) {
            const sl_mi_part *mp = &t->parts[p];
            if (mp->nisr < 1) {
                snprintf(err, errlen, "%s/%d: empty ISR", t->name, (int)p);
                return -1;
            }
            for (int32_t k = 0; k < mp->nisr; k++)
                if (!in_set(mp->rep, mp->nrep, mp->isr[k])) {
                    snprintf(err, errlen, "%s/%d: ISR member %d not a replica",
                             t->name, (int)p, (int)mp->isr[k]);
                    return -1;
                }
            if (mp->leader >= 0 && !in_set(mp->isr, mp->nisr, mp->leader)) {
                snprintf(err, errlen, "%s/%d: leader %d not in the ISR",
                         t->name, (int)p, (int)mp->leader);
                return -1;
            }
        }
    }
    return 0;
}

/* ---- for meta_auth.c (meta_int.h) ---------------------------------------- */

void *sl_meta_xcalloc(size_t n, size_t sz)
{
    return xcalloc(n, sz);
}

char *sl_meta_rd_strdup(sl_rd *rd)
{
    return rd_strdup(rd);
}

void sl_meta_wb_str(sl_wb *wb, const char *s)
{
    wb_str(wb, s);
}

void sl_meta_enc_head(sl_wb *wb, int type)
{
    enc_head(wb, type);
}
