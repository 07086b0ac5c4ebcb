/*
 * stream.c - stream groups: Kafka-classic consumer groups, simplified.
 *
 * PROTOCOL (docs/groups.md has the user's view).
 *
 * The broker is the assignor. A member joins with the topics it wants
 * (GROUP_JOIN); the broker bumps the group's generation and recomputes the
 * whole assignment at once (range assignor: per topic, partitions sorted,
 * members subscribed to the topic sorted by id, the first n % m members get
 * one extra). The join reply carries the new generation and this member's
 * partitions. Other members learn about the new generation from their next
 * heartbeat, which answers SL_ERR_REBALANCE; they rejoin with their member
 * id and receive their new partitions. A member that misses heartbeats for
 * session_ms is removed (generation bump), as is one that leaves.
 *
 * Fencing: an offset commit from a member names its generation; a stale
 * generation or a partition no longer assigned to it gets SL_ERR_REBALANCE,
 * so a zombie cannot move a committed offset backwards after a rebalance.
 * Between a rebalance and a member's next heartbeat, two members may fetch
 * the same partition (at-least-once, like Kafka's eager protocol without
 * the join barrier); the commit fencing keeps the offsets right.
 *
 * Committed offsets are kept in memory and written to groups.db (table
 * soffset) with the next batched transaction (groups.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "groups/internal.h"
#include "protocol/log.h"

static sl_sgroup *sg_get(sl_groups *g, const char *name, int create)
{
    sl_sgroup *sg = sl_groups_sgroup_find(g, name);
    if (sg || !create)
        return sg;
    sg = calloc(1, sizeof(*sg));
    if (!sg)
        return NULL;
    sg->name = strdup(name);
    if (!sg->name) {
        free(sg);
        return NULL;
    }
    sg->next = g->sgroups;
    g->sgroups = sg;
    return sg;
}

static void member_fini(sl_smember *m)
{
    for (size_t i = 0; i < m->ntopics; i++)
        free(m->topics[i]);
    free(m->topics);
    free(m->assign);
    memset(m, 0, sizeof(*m));
}

static void sg_free(sl_sgroup *sg)
{
    for (size_t i = 0; i < sg->nmembers; i++)
        member_fini(&sg->members[i]);
    free(sg->members);
    for (size_t i = 0; i < sg->noffs; i++)
        free(sg->offs[i].topic);
    free(sg->offs);
    free(sg->name);
    free(sg);
}

void sl_sgroup_unload(sl_groups *g, int (*mine)(void *arg, const char *group),
                      void *arg)
{
    sl_sgroup **pp = &g->sgroups;
    while (*pp) {
        sl_sgroup *sg = *pp;
        if (!mine(arg, sg->name)) {
            pp = &sg->next;
            continue;
        }
        *pp = sg->next;
        sg_free(sg);
    }
}

void sl_sgroup_free_all(sl_groups *g)
{
    while (g->sgroups) {
        sl_sgroup *sg = g->sgroups;
        g->sgroups = sg->next;
        sg_free(sg);
    }
}

static int cmp_member(const void *a, const void *b)
{
    return strcmp(((const sl_smember *)a)->id, ((const sl_smember *)b)->id);
}

static int member_has_topic(const sl_smember *m, const char *t)
{
    for (size_t i = 0; i < m->ntopics; i++)
        if (!strcmp(m->topics[i], t))
            return 1;
    return 0;
}

static sl_err add_assign(sl_smember *m, const char *topic, int32_t part)
{
    sl_gtp *n = realloc(m->assign, (m->nassign + 1) * sizeof(*n));
    if (!n)
        return SL_ERR_NOMEM;
    m->assign = n;
    snprintf(n[m->nassign].topic, sizeof(n->topic), "%s", topic);
    n[m->nassign].partition = part;
    m->nassign++;
    return SL_OK;
}

/* The partitions of every topic the group's members read (each topic
 * once): a change (partitions added) needs a new assignment. */
static int64_t parts_total(sl_groups *g, const sl_sgroup *sg)
{
    int64_t n = 0;
    for (size_t i = 0; i < sg->nmembers; i++)
        for (size_t t = 0; t < sg->members[i].ntopics; t++) {
            const char *topic = sg->members[i].topics[t];
            int dup = 0;
            for (size_t j = 0; j < i && !dup; j++)
                dup = member_has_topic(&sg->members[j], topic);
            for (size_t k = 0; k < t && !dup; k++)
                dup = !strcmp(sg->members[i].topics[k], topic);
            if (!dup)
                n += g->env.partitions(g->env.ctx, topic);
        }
    return n;
}

/* Recompute every member's assignment; bump the generation. The new
 * membership is group state (staged as SL_OP_SMEMBERS). */
static void rebalance(sl_groups *g, sl_sgroup *sg)
{
    sg->generation++;
    sg->members_dirty = 1;
    sl_groups_mutated(g);
    if (sg->nmembers > 1)
        qsort(sg->members, sg->nmembers, sizeof(*sg->members), cmp_member);
    for (size_t i = 0; i < sg->nmembers; i++) {
        free(sg->members[i].assign);
        sg->members[i].assign = NULL;
        sg->members[i].nassign = 0;
    }
    for (size_t i = 0; i < sg->nmembers; i++) {
        for (size_t t = 0; t < sg->members[i].ntopics; t++) {
            const char *topic = sg->members[i].topics[t];
            size_t subs[256], ns = 0;
            int32_t np;
            int dup = 0;
            /* Handle each topic once: at its first subscriber. */
            for (size_t j = 0; j < i && !dup; j++)
                dup = member_has_topic(&sg->members[j], topic);
            for (size_t k = 0; k < t && !dup; k++)
                dup = !strcmp(sg->members[i].topics[k], topic);
            if (dup)
                continue;
            for (size_t j = 0; j < sg->nmembers && ns < 256; j++)
                if (member_has_topic(&sg->members[j], topic))
                    subs[ns++] = j;
            np = g->env.partitions(g->env.ctx, topic);
            if (np <= 0)
                continue;
            int32_t per = np / (int32_t)ns, extra = np % (int32_t)ns, p = 0;
            for (size_t s = 0; s < ns; s++) {
                int32_t cnt = per + ((int32_t)s < extra ? 1 : 0);
                for (int32_t k = 0; k < cnt; k++)
                    add_assign(&sg->members[subs[s]], topic, p++);
            }
        }
    }
    sg->parts_seen = parts_total(g, sg);
    sl_log(SL_INFO, "groups", "stream group %s: generation %d, %zu members",
           sg->name, sg->generation, sg->nmembers);
}

/* m (a member already) asks for the same topics again. */
static int same_topics(const sl_smember *m, const char *const *topics,
                       size_t ntopics)
{
    if (m->ntopics != ntopics)
        return 0;
    for (size_t i = 0; i < ntopics; i++)
        if (!member_has_topic(m, topics[i]))
            return 0;
    return 1;
}

static sl_smember *find_member(sl_sgroup *sg, const char *id)
{
    for (size_t i = 0; i < sg->nmembers; i++)
        if (!strcmp(sg->members[i].id, id))
            return &sg->members[i];
    return NULL;
}

sl_err sl_sgroup_join(sl_groups *g, const char *group, const char *member_id,
                      const char *client_name, const char *const *topics,
                      size_t ntopics, int64_t session_ms, char **member_out,
                      int32_t *generation, sl_gtp **assign, size_t *nassign)
{
    sl_sgroup *sg;
    sl_smember *m;
    char idbuf[64];
    sl_gtp *copy = NULL;
    char *mid;

    if (!group[0] || strlen(group) > 249 || ntopics == 0 || ntopics > 256)
        return SL_ERR_INVALID_ARG;
    for (size_t i = 0; i < ntopics; i++)
        if (g->env.partitions(g->env.ctx, topics[i]) < 0)
            return SL_ERR_UNKNOWN_TOPIC;
    if (g->env.coordinates && !g->env.coordinates(g->env.ctx, group))
        return SL_ERR_NOT_COORDINATOR;
    sg = sg_get(g, group, 1);
    if (!sg)
        return SL_ERR_NOMEM;
    m = member_id && member_id[0] ? find_member(sg, member_id) : NULL;
    if (m && same_topics(m, topics, ntopics) &&
        sg->parts_seen == parts_total(g, sg)) {
        /* A member rejoining with nothing changed (after a lost
         * connection, a coordinator failover, or to learn the assignment
         * of a generation it was told about): the current generation
         * already assigns its partitions, so no rebalance (Kafka's
         * JoinGroup of a known member with the same metadata). */
        m->last_hb = sl_groups_now(g);
        sl_groups_deadline(g, m->last_hb + m->session_ms);
        goto answer;
    }
    if (member_id && member_id[0] && !m) {
        if (strlen(member_id) >= sizeof(m->id))
            return SL_ERR_UNKNOWN_MEMBER;
        /* Unknown (e.g. expired): let it back in under the same id. */
        snprintf(idbuf, sizeof(idbuf), "%s", member_id);
    } else if (!m) {
        /* unique in the group: members loaded from another coordinator
         * were numbered by its counter */
        do {
            snprintf(idbuf, sizeof(idbuf), "%s-%llu",
                     client_name && client_name[0] ? client_name : "member",
                     (unsigned long long)g->next_member_id++);
            idbuf[40] = 0;
        } while (find_member(sg, idbuf));
    }
    if (!m) {
        sl_smember *n =
            realloc(sg->members, (sg->nmembers + 1) * sizeof(*sg->members));
        if (!n)
            return SL_ERR_NOMEM;
        sg->members = n;
        m = &sg->members[sg->nmembers++];
        memset(m, 0, sizeof(*m));
        snprintf(m->id, sizeof(m->id), "%s", idbuf);
    }
    snprintf(m->name, sizeof(m->name), "%s", client_name ? client_name : "");
    for (size_t i = 0; i < m->ntopics; i++)
        free(m->topics[i]);
    free(m->topics);
    m->topics = calloc(ntopics, sizeof(char *));
    m->ntopics = 0;
    if (!m->topics)
        return SL_ERR_NOMEM;
    for (size_t i = 0; i < ntopics; i++) {
        m->topics[i] = strdup(topics[i]);
        if (!m->topics[i])
            return SL_ERR_NOMEM;
        m->ntopics++;
    }
    m->session_ms = session_ms > 0 ? session_ms : 10000;
    m->last_hb = sl_groups_now(g);
    sl_groups_deadline(g, m->last_hb + m->session_ms);
    snprintf(idbuf, sizeof(idbuf), "%s", m->id);
    rebalance(g, sg);
    m = find_member(sg, idbuf); /* qsort moved it */
answer:
    mid = strdup(m->id);
    if (m->nassign) {
        copy = malloc(m->nassign * sizeof(*copy));
        if (copy)
            memcpy(copy, m->assign, m->nassign * sizeof(*copy));
    }
    if (!mid || (m->nassign && !copy)) {
        free(mid);
        free(copy);
        return SL_ERR_NOMEM;
    }
    *member_out = mid;
    *generation = sg->generation;
    *assign = copy;
    *nassign = m->nassign;
    return SL_OK;
}

sl_err sl_sgroup_heartbeat(sl_groups *g, const char *group,
                           const char *member_id, int32_t generation)
{
    sl_sgroup *sg = sl_groups_sgroup_find(g, group);
    sl_smember *m;
    if (!sg)
        return SL_ERR_UNKNOWN_GROUP;
    m = find_member(sg, member_id);
    if (!m)
        return SL_ERR_UNKNOWN_MEMBER;
    m->last_hb = sl_groups_now(g);
    if (generation != sg->generation)
        return SL_ERR_REBALANCE;
    return SL_OK;
}

static void remove_member(sl_groups *g, sl_sgroup *sg, size_t i)
{
    member_fini(&sg->members[i]);
    sg->members[i] = sg->members[--sg->nmembers];
    rebalance(g, sg);
}

sl_err sl_sgroup_leave(sl_groups *g, const char *group, const char *member_id)
{
    sl_sgroup *sg = sl_groups_sgroup_find(g, group);
    if (!sg)
        return SL_ERR_UNKNOWN_GROUP;
    for (size_t i = 0; i < sg->nmembers; i++)
        if (!strcmp(sg->members[i].id, member_id)) {
            remove_member(g, sg, i);
            return SL_OK;
        }
    return SL_ERR_UNKNOWN_MEMBER;
}

static sl_soffset *find_off(sl_sgroup *sg, const char *topic, int32_t part)
{
    for (size_t i = 0; i < sg->noffs; i++)
        if (sg->offs[i].partition == part && !strcmp(sg->offs[i].topic, topic))
            return &sg->offs[i];
    return NULL;
}

static sl_err set_off(sl_sgroup *sg, const char *topic, int32_t part,
                      int64_t off, int dirty)
{
    sl_soffset *o = find_off(sg, topic, part);
    if (!o) {
        sl_soffset *n = realloc(sg->offs, (sg->noffs + 1) * sizeof(*n));
        if (!n)
            return SL_ERR_NOMEM;
        sg->offs = n;
        o = &n[sg->noffs];
        o->topic = strdup(topic);
        if (!o->topic)
            return SL_ERR_NOMEM;
        o->partition = part;
        sg->noffs++;
    }
    o->offset = off;
    o->dirty = dirty;
    return SL_OK;
}

sl_err sl_sgroup_commit(sl_groups *g, const char *group, const char *member_id,
                        int32_t generation, const char *topic,
                        int32_t partition, int64_t offset)
{
    sl_sgroup *sg;
    sl_err rc;
    int32_t np = g->env.partitions(g->env.ctx, topic);
    if (!group[0] || strlen(group) > 249 || offset < 0)
        return SL_ERR_INVALID_ARG;
    if (np < 0)
        return SL_ERR_UNKNOWN_TOPIC;
    if (partition < 0 || partition >= np)
        return SL_ERR_UNKNOWN_PARTITION;
    if (g->env.coordinates && !g->env.coordinates(g->env.ctx, group))
        return SL_ERR_NOT_COORDINATOR;
    sg = sg_get(g, group, 1);
    if (!sg)
        return SL_ERR_NOMEM;
    if (member_id && member_id[0] && generation >= 0) {
        sl_smember *m = find_member(sg, member_id);
        int assigned = 0;
        if (!m)
            return SL_ERR_UNKNOWN_MEMBER;
        if (generation != sg->generation)
            return SL_ERR_REBALANCE;
        for (size_t i = 0; i < m->nassign; i++)
            if (m->assign[i].partition == partition &&
                !strcmp(m->assign[i].topic, topic))
                assigned = 1;
        if (!assigned)
            return SL_ERR_REBALANCE;
        m->last_hb = sl_groups_now(g);
    }
    rc = set_off(sg, topic, partition, offset, 1);
    if (rc != SL_OK)
        return rc;
    g->st.commits++;
    sl_groups_mutated(g);
    return SL_OK;
}

int64_t sl_sgroup_committed(sl_groups *g, const char *group, const char *topic,
                            int32_t partition)
{
    sl_sgroup *sg = sl_groups_sgroup_find(g, group);
    sl_soffset *o = sg ? find_off(sg, topic, partition) : NULL;
    return o ? o->offset : -1;
}

int64_t sl_stream_tick(sl_groups *g, int64_t now)
{
    int64_t next = now + 1000;
    for (sl_sgroup *sg = g->sgroups; sg; sg = sg->next) {
        for (size_t i = 0; i < sg->nmembers;) {
            sl_smember *m = &sg->members[i];
            int64_t dl = m->last_hb + m->session_ms;
            if (dl <= now) {
                sl_log(SL_INFO, "groups",
                       "stream group %s: member %s missed its session "
                       "timeout (%lld ms)",
                       sg->name, m->id, (long long)m->session_ms);
                remove_member(g, sg, i);
                continue;
            }
            if (dl < next)
                next = dl;
            i++;
        }
    }
    return next - now;
}

/* SL_OP_SMEMBERS: u8 op, str16 group, str16 topic (empty), i32
 * generation, u16 members, each: str16 id, str16 name, u32 session_ms,
 * u16 topics (str16 each), u16 assigned (str16 topic, u32 partition). */
static void stage_members(sl_sgroup *sg, sl_wb *wb)
{
    sl_wb_u8(wb, SL_OP_SMEMBERS);
    sl_wb_str16(wb, sg->name, strlen(sg->name));
    sl_wb_str16(wb, "", 0);
    sl_wb_u32(wb, (uint32_t)sg->generation);
    sl_wb_u16(wb, (uint16_t)sg->nmembers);
    for (size_t i = 0; i < sg->nmembers; i++) {
        const sl_smember *m = &sg->members[i];
        sl_wb_str16(wb, m->id, strlen(m->id));
        sl_wb_str16(wb, m->name, strlen(m->name));
        sl_wb_u32(wb, (uint32_t)m->session_ms);
        sl_wb_u16(wb, (uint16_t)m->ntopics);
        for (size_t t = 0; t < m->ntopics; t++)
            sl_wb_str16(wb, m->topics[t], strlen(m->topics[t]));
        sl_wb_u16(wb, (uint16_t)m->nassign);
        for (size_t k = 0; k < m->nassign; k++) {
            sl_wb_str16(wb, m->assign[k].topic, strlen(m->assign[k].topic));
            sl_wb_u32(wb, (uint32_t)m->assign[k].partition);
        }
    }
    sg->members_dirty = 0;
}

int sl_stream_stage(sl_groups *g, sl_wb *wb)
{
    int early = 0;
    for (sl_sgroup *sg = g->sgroups; sg; sg = sg->next) {
        if (sg->members_dirty)
            stage_members(sg, wb);
        for (size_t i = 0; i < sg->noffs; i++) {
            sl_soffset *o = &sg->offs[i];
            sl_part *p;
            if (!o->dirty)
                continue;
            /* an offset past a flush=always partition's durable end (its
             * records were read before their fdatasync, groups/visible.c):
             * committed after the round that covers them */
            p = g->env.get_part(g->env.ctx, o->topic, o->partition);
            if (p && sl_part_get_cfg(p)->flush == SL_FLUSH_ALWAYS &&
                o->offset > sl_part_durable_offset(p)) {
                early = 1;
                if (g->flusher) /* a lazy append's round: now */
                    sl_flusher_request(g->flusher, p);
            }
            sl_wb_u8(wb, SL_OP_OFFSET);
            sl_wb_str16(wb, sg->name, strlen(sg->name));
            sl_wb_str16(wb, o->topic, strlen(o->topic));
            sl_wb_u32(wb, (uint32_t)o->partition);
            sl_wb_u64(wb, (uint64_t)o->offset);
            o->dirty = 0;
        }
    }
    return early;
}

static char *rd_strdup(sl_rd *rd)
{
    uint16_t n;
    const char *p = sl_rd_str16(rd, &n);
    return rd->err ? NULL : strndup(p ? p : "", n);
}

sl_err sl_stream_members_read(sl_groups *g, sl_rd *rd, sl_sgroup *sg)
{
    int32_t gen = (int32_t)sl_rd_u32(rd);
    uint16_t n = sl_rd_u16(rd), len;
    sl_smember *ms = NULL;
    size_t nm = 0;
    int64_t now = sg ? sl_groups_now(g) : 0;
    sl_err rc = SL_OK;
    const char *p;
    if (rd->err)
        return SL_ERR_MALFORMED;
    if (sg && n && !(ms = calloc(n, sizeof(*ms))))
        return SL_ERR_NOMEM;
    for (uint16_t i = 0; i < n && rc == SL_OK; i++) {
        sl_smember *m = ms ? &ms[nm++] : NULL;
        uint16_t nt, na;
        p = sl_rd_str16(rd, &len);
        if (m)
            snprintf(m->id, sizeof(m->id), "%.*s", (int)len, p ? p : "");
        p = sl_rd_str16(rd, &len);
        if (m)
            snprintf(m->name, sizeof(m->name), "%.*s", (int)len, p ? p : "");
        int64_t session = sl_rd_u32(rd);
        nt = sl_rd_u16(rd);
        if (rd->err)
            break;
        if (m) {
            /* a fresh session: heartbeats went to the old coordinator */
            m->session_ms = session > 0 ? session : 10000;
            m->last_hb = now;
            if (nt && !(m->topics = calloc(nt, sizeof(char *))))
                rc = SL_ERR_NOMEM;
        }
        for (uint16_t t = 0; t < nt && rc == SL_OK; t++) {
            if (!m) {
                sl_rd_str16(rd, &len);
                continue;
            }
            if (!(m->topics[t] = rd_strdup(rd)))
                rc = rd->err ? SL_ERR_MALFORMED : SL_ERR_NOMEM;
            else
                m->ntopics++;
        }
        na = sl_rd_u16(rd);
        if (m && na && rc == SL_OK && !(m->assign = calloc(na, sizeof(sl_gtp))))
            rc = SL_ERR_NOMEM;
        for (uint16_t k = 0; k < na && rc == SL_OK && !rd->err; k++) {
            p = sl_rd_str16(rd, &len);
            int32_t part = (int32_t)sl_rd_u32(rd);
            if (!m || rd->err)
                continue;
            snprintf(m->assign[k].topic, sizeof(m->assign[k].topic), "%.*s",
                     (int)len, p ? p : "");
            m->assign[k].partition = part;
            m->nassign++;
        }
    }
    if (rc == SL_OK && rd->err)
        rc = SL_ERR_MALFORMED;
    if (rc != SL_OK || !sg) {
        for (size_t i = 0; i < nm; i++)
            member_fini(&ms[i]);
        free(ms);
        return rc;
    }
    for (size_t i = 0; i < sg->nmembers; i++)
        member_fini(&sg->members[i]);
    free(sg->members);
    sg->members = ms;
    sg->nmembers = nm;
    sg->generation = gen;
    sg->members_dirty = 0;
    sg->parts_seen = parts_total(g, sg);
    for (size_t i = 0; i < nm; i++)
        sl_groups_deadline(g, now + ms[i].session_ms);
    return SL_OK;
}

sl_err sl_stream_load_members(sl_groups *g, const uint8_t *ops, size_t len)
{
    size_t off = 0;
    sl_gop op;
    int r;
    while ((r = sl_groups_ops_next(ops, len, &off, &op)) == 1) {
        char name[256];
        sl_sgroup *sg;
        sl_rd rd;
        uint16_t n;
        sl_err rc;
        if (op.kind != 'm')
            continue;
        snprintf(name, sizeof(name), "%.*s", (int)op.group_len,
                 op.group ? op.group : "");
        if (g->load_mine && !g->load_mine(g->load_arg, name))
            continue;
        sl_rd_init(&rd, op.p, op.len);
        sl_rd_u8(&rd);
        sl_rd_str16(&rd, &n);
        sl_rd_str16(&rd, &n);
        /* the newest record of a group is applied last and wins */
        sg = sg_get(g, name, 1);
        if (!sg)
            return SL_ERR_NOMEM;
        rc = sl_stream_members_read(g, &rd, sg);
        if (rc != SL_OK)
            return rc;
    }
    if (r < 0)
        return SL_ERR_MALFORMED;
    /* a group whose last members left and that has no offsets (deleted,
     * or never committed): nothing to serve */
    for (sl_sgroup **pp = &g->sgroups; *pp;) {
        sl_sgroup *sg = *pp;
        if (!sg->nmembers && !sg->noffs &&
            (!g->load_mine || g->load_mine(g->load_arg, sg->name))) {
            *pp = sg->next;
            sg_free(sg);
        } else {
            pp = &sg->next;
        }
    }
    return SL_OK;
}

sl_err sl_stream_load(sl_groups *g)
{
    sqlite3_stmt *st = NULL;
    sl_err rc = SL_OK;
    if (sqlite3_prepare_v2(g->db, "SELECT grp, topic, part, off FROM soffset",
                           -1, &st, NULL) != SQLITE_OK)
        return SL_ERR_STORAGE;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *gn = (const char *)sqlite3_column_text(st, 0);
        sl_sgroup *sg;
        if (g->load_mine && /* a reload: these groups, existing topics */
            (!g->load_mine(g->load_arg, gn) ||
             g->env.partitions(g->env.ctx,
                               (const char *)sqlite3_column_text(st, 1)) < 0))
            continue;
        sg = sg_get(g, gn, 1);
        if (!sg) {
            rc = SL_ERR_NOMEM;
            break;
        }
        rc = set_off(sg, (const char *)sqlite3_column_text(st, 1),
                     sqlite3_column_int(st, 2), sqlite3_column_int64(st, 3), 0);
        if (rc != SL_OK)
            break;
    }
    sqlite3_finalize(st);
    return rc;
}

void sl_stream_forget_topic(sl_groups *g, const char *topic)
{
    for (sl_sgroup *sg = g->sgroups; sg; sg = sg->next) {
        for (size_t i = 0; i < sg->noffs;) {
            if (!strcmp(sg->offs[i].topic, topic)) {
                free(sg->offs[i].topic);
                sg->offs[i] = sg->offs[--sg->noffs];
            } else {
                i++;
            }
        }
    }
    /* The rows go with sl_groups_forget_topic's SL_OP_TDEL. */
}

sl_err sl_stream_describe(sl_groups *g, const char *group, sl_group_info *info)
{
    sl_sgroup *sg = sl_groups_sgroup_find(g, group);
    if (!sg)
        return SL_ERR_UNKNOWN_GROUP;
    info->kind = 0;
    info->generation = sg->generation;
    snprintf(info->state, sizeof(info->state), "%s",
             sg->nmembers ? "Stable" : "Empty");
    info->members = calloc(sg->nmembers + 1, sizeof(*info->members));
    info->parts = calloc(sg->noffs + 1, sizeof(*info->parts));
    if (!info->members || !info->parts)
        return SL_ERR_NOMEM;
    for (size_t i = 0; i < sg->nmembers; i++) {
        sl_gmember_info *mi = &info->members[i];
        sl_smember *m = &sg->members[i];
        snprintf(mi->id, sizeof(mi->id), "%s", m->id);
        snprintf(mi->name, sizeof(mi->name), "%s", m->name);
        mi->held = -1;
        mi->credits = -1;
        if (m->nassign) {
            mi->assign = calloc(m->nassign, sizeof(*mi->assign));
            if (!mi->assign)
                return SL_ERR_NOMEM;
            for (size_t k = 0; k < m->nassign; k++) {
                snprintf(mi->assign[k].topic, sizeof(mi->assign[k].topic), "%s",
                         m->assign[k].topic);
                mi->assign[k].partition = m->assign[k].partition;
            }
            mi->nassign = m->nassign;
        }
    }
    info->nmembers = sg->nmembers;
    for (size_t i = 0; i < sg->noffs; i++) {
        sl_gpart_info *p = &info->parts[i];
        sl_part *sp = g->env.get_part(g->env.ctx, sg->offs[i].topic,
                                      sg->offs[i].partition);
        snprintf(p->topic, sizeof(p->topic), "%s", sg->offs[i].topic);
        p->partition = sg->offs[i].partition;
        p->start = sg->offs[i].offset;
        p->cursor = -1;
        p->log_end = sp ? sl_part_end_offset(sp) : -1;
        p->lag = sp ? p->log_end - p->start : -1;
        p->acquired = -1;
        p->available = -1;
        p->delayed = -1;
        p->archived = -1;
    }
    info->nparts = sg->noffs;
    return SL_OK;
}

/* ---- management -------------------------------------------------------- */

size_t sl_sgroup_members(sl_groups *g, const char *group)
{
    sl_sgroup *sg = sl_groups_sgroup_find(g, group);
    return sg ? sg->nmembers : 0;
}

sl_err sl_sgroup_delete(sl_groups *g, const char *group)
{
    sl_sgroup **pp = &g->sgroups;
    while (*pp && strcmp((*pp)->name, group))
        pp = &(*pp)->next;
    if (!*pp)
        return SL_ERR_UNKNOWN_GROUP;
    if ((*pp)->nmembers)
        return SL_ERR_BUSY;
    sl_sgroup *sg = *pp;
    *pp = sg->next;
    /* Staged directly: nothing dirty is left to carry it. */
    sl_groups_stage_delete(g, SL_OP_SDEL, sg->name, "");
    sg_free(sg);
    if (g->flusher)
        sl_flusher_wake(g->flusher);
    return SL_OK;
}
