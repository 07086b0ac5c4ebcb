/*
 * meta.c - the metadata image: lookups, snapshot/restore, placement and
 * the controller's liveness step; its commands are encoded in meta_cmd.c
 * and applied in meta_apply.c. The rules are in meta.h
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
        free(m->nodes[i].tls_addr);
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

static int in_set(const int32_t *s, int32_t n, int32_t id)
{
    for (int32_t i = 0; i < n; i++)
        if (s[i] == id)
            return 1;
    return 0;
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

/* ---- snapshot / restore ---------------------------------------------------
 *
 *   u8 version (5) | u64 applied | u32 nnodes x {i32 id, str16 raft_addr,
 *   str16 addr, str16 stomp_addr, u8 fenced, str16 tls_addr (version 5)}
 *   | u32 ntopics x {str16 name, i32 nparts, i32 rf, u32 ncfg x {str16
 *   key, str16 value}, nparts x {i32 leader, i32 leader_epoch, i32
 *   part_epoch, u8 nrep, nrep x i32, u8 nisr, nisr x i32, u8 ntarget,
 *   ntarget x i32 (version 3), u8 norig, norig x i32 (version 4)}} | the
 *   users and rules (meta_int.h; version 1, before them, has no such
 *   section; versions 1 and 2 no reassignment targets, version 3 no
 *   replicas before one, versions 1-4 no TLS addresses)
 */

/* Snapshots with the users and rules section (2), reassignment targets
 * (3), the replicas before a reassignment (4) and the nodes' TLS
 * addresses (5); older versions are still restored, without them. */
#define SNAP_VERSION 5

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
        wb_str(wb, n->tls_addr);
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
            sl_wb_u8(wb, (uint8_t)mp->norig);
            for (int32_t r = 0; r < mp->norig; r++)
                sl_wb_u32(wb, (uint32_t)mp->orig[r]);
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
        nd->tls_addr = version >= 5 ? rd_strdup(&rd) : sl_meta_xstrndup("", 0);
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
            mp->norig = version >= 4 ? sl_rd_u8(&rd) : 0;
            if (mp->norig > SL_META_MAX_RF)
                goto bad;
            for (int32_t r = 0; r < mp->norig; r++)
                mp->orig[r] = (int32_t)sl_rd_u32(&rd);
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

/* ---- placement ----------------------------------------------------------- */

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
        snprintf(err, errlen, "replication factor %d is outside 1..%d", (int)rf,
                 SL_META_MAX_RF);
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

/* ---- controller ---------------------------------------------------------- */

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

/* ---- for meta_apply.c, meta_cmd.c, meta_auth.c (meta_int.h) ------------ */

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

char *sl_meta_xstrndup(const char *s, size_t n)
{
    return xstrndup(s, n);
}

void sl_meta_topic_free(sl_mi_topic *t)
{
    topic_free(t);
}

size_t sl_meta_node_pos(const sl_meta *m, int32_t id, int *found)
{
    return node_pos(m, id, found);
}

size_t sl_meta_topic_pos(const sl_meta *m, const char *name, int *found)
{
    return topic_pos(m, name, found);
}

int sl_meta_in_set(const int32_t *s, int32_t n, int32_t id)
{
    return in_set(s, n, id);
}
