/*
 * meta_auth.c - users and permission rules in the metadata image (issue
 * 16; docs/cluster.md 2.1, docs/security.md "Users in a cluster").
 *
 * As Kafka keeps SCRAM credentials and ACLs in its KRaft metadata log,
 * a cluster's users and rules are image state: every change is a command
 * of the Raft log (USER_UPSERT, USER_DELETE, ACL_CHANGE), applied in log
 * order on every node, carried by snapshots, replayed by a node that
 * restarts. A user is its SCRAM-SHA-256 credentials (salt, iterations,
 * StoredKey, ServerKey): the password never enters the log. Each broker
 * copies the image's users and rules into its own store (meta.db) when
 * auth_index moves (broker/cluster_users.c).
 *
 * Apply decides what depends on the current state, so that racing
 * proposals cannot lose each other's changes: "user add" fails when the
 * user exists (so of two nodes seeding the same --bootstrap-admin the
 * first one's wins), "passwd" when it does not, a grant or revoke adds
 * or removes operation bits of the rule as it is then.
 * Deleting a user deletes its rules. Nothing else is validated here but
 * the shape (names, lengths): the proposer checked the rest and names the
 * problem to its client.
 * @thread any (an sl_meta is owned by one thread)
 */
#include "cluster/meta_int.h"

#include <stdlib.h>
#include <string.h>

#include "protocol/scram.h"

#define AUTH_SECTION_TAG 1
#define MAX_PATTERN 255

/* ---- lookups ------------------------------------------------------------ */

static size_t user_pos(const sl_meta *m, const char *name, int *found)
{
    size_t lo = 0, hi = m->nusers;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (strcmp(m->users[mid].name, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < m->nusers && !strcmp(m->users[lo].name, name);
    return lo;
}

const sl_mi_user *sl_meta_user_find(const sl_meta *m, const char *name)
{
    int found;
    size_t i = user_pos(m, name, &found);
    return found ? &m->users[i] : NULL;
}

static int acl_cmp(const sl_mi_acl *a, const char *user, int kind,
                   const char *pattern, int prefix)
{
    int c = strcmp(a->user, user);
    if (c)
        return c;
    if (a->kind != kind)
        return a->kind < kind ? -1 : 1;
    c = strcmp(a->pattern, pattern);
    if (c)
        return c;
    return a->prefix == prefix ? 0 : (a->prefix < prefix ? -1 : 1);
}

static size_t acl_pos(const sl_meta *m, const char *user, int kind,
                      const char *pattern, int prefix, int *found)
{
    size_t lo = 0, hi = m->nacls;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (acl_cmp(&m->acls[mid], user, kind, pattern, prefix) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found =
        lo < m->nacls && !acl_cmp(&m->acls[lo], user, kind, pattern, prefix);
    return lo;
}

const sl_mi_acl *sl_meta_acl_find(const sl_meta *m, const char *user, int kind,
                                  const char *pattern, int prefix)
{
    int found;
    size_t i = acl_pos(m, user, kind, pattern, prefix, &found);
    return found ? &m->acls[i] : NULL;
}

/* ---- encoders ------------------------------------------------------------ */

static void put_user(sl_wb *wb, const sl_mi_user *u)
{
    sl_wb_u8(wb, u->admin);
    sl_wb_u64(wb, (uint64_t)u->created_ms);
    sl_wb_u8(wb, u->saltlen);
    sl_wb_put(wb, u->salt, u->saltlen);
    sl_wb_u32(wb, u->iter);
    sl_wb_put(wb, u->stored_key, SL_META_KEY_LEN);
    sl_wb_put(wb, u->server_key, SL_META_KEY_LEN);
}

void sl_meta_enc_user_upsert(sl_wb *wb, const sl_mi_user *u, int flags)
{
    sl_meta_enc_head(wb, SL_MCMD_USER_UPSERT);
    sl_meta_wb_str(wb, u->name);
    sl_wb_u8(wb, (uint8_t)flags);
    put_user(wb, u);
}

void sl_meta_enc_user_delete(sl_wb *wb, const char *name)
{
    sl_meta_enc_head(wb, SL_MCMD_USER_DELETE);
    sl_meta_wb_str(wb, name);
}

void sl_meta_enc_acl_change(sl_wb *wb, const char *user, int kind,
                            const char *pattern, int prefix, uint32_t add,
                            uint32_t remove)
{
    sl_meta_enc_head(wb, SL_MCMD_ACL_CHANGE);
    sl_meta_wb_str(wb, user);
    sl_wb_u8(wb, (uint8_t)kind);
    sl_meta_wb_str(wb, pattern);
    sl_wb_u8(wb, (uint8_t)prefix);
    sl_wb_u32(wb, add);
    sl_wb_u32(wb, remove);
}

/* ---- apply --------------------------------------------------------------- */

/* A user's fields after its name; SL_ERR_MALFORMED on a bad shape. */
static sl_err get_user(sl_rd *rd, sl_mi_user *u)
{
    const uint8_t *p;
    u->admin = sl_rd_u8(rd) != 0;
    u->created_ms = (int64_t)sl_rd_u64(rd);
    u->saltlen = sl_rd_u8(rd);
    if (rd->err || u->saltlen < 1 || u->saltlen > sizeof(u->salt))
        return SL_ERR_MALFORMED;
    p = sl_rd_bytes(rd, u->saltlen);
    if (p)
        memcpy(u->salt, p, u->saltlen);
    u->iter = sl_rd_u32(rd);
    p = sl_rd_bytes(rd, SL_META_KEY_LEN);
    if (p)
        memcpy(u->stored_key, p, SL_META_KEY_LEN);
    p = sl_rd_bytes(rd, SL_META_KEY_LEN);
    if (p)
        memcpy(u->server_key, p, SL_META_KEY_LEN);
    if (rd->err || u->iter < 1)
        return SL_ERR_MALFORMED;
    return SL_OK;
}

static int name_ok(const char *s)
{
    return s && sl_user_name_ok(s, strlen(s));
}

static void acl_remove_at(sl_meta *m, size_t i)
{
    free(m->acls[i].user);
    free(m->acls[i].pattern);
    memmove(&m->acls[i], &m->acls[i + 1],
            (m->nacls - i - 1) * sizeof(*m->acls));
    m->nacls--;
}

static sl_err apply_user_upsert(sl_meta *m, sl_rd *rd)
{
    char *name = sl_meta_rd_strdup(rd);
    int flags = sl_rd_u8(rd), found;
    sl_mi_user u;
    size_t i;
    memset(&u, 0, sizeof(u));
    if (!name || rd->err || get_user(rd, &u) != SL_OK || !name_ok(name) ||
        sl_rd_left(rd) != 0) {
        free(name);
        return SL_ERR_MALFORMED;
    }
    i = user_pos(m, name, &found);
    if (found && (flags & SL_META_USER_NEW)) {
        free(name);
        return SL_ERR_INVALID_ARG; /* exists already */
    }
    if (!found && (flags & SL_META_USER_EXISTING)) {
        free(name);
        return SL_ERR_NOT_FOUND;
    }
    if (!found && m->nusers >= SL_META_MAX_USERS) {
        free(name);
        return SL_ERR_TOO_LARGE;
    }
    if (found) {
        sl_mi_user *o = &m->users[i];
        if (flags & SL_META_USER_KEEP_ADMIN)
            u.admin = o->admin;
        u.created_ms = o->created_ms;
        free(o->name);
        u.name = name;
        *o = u;
        return SL_OK;
    }
    {
        sl_mi_user *n = sl_meta_xcalloc(m->nusers + 1, sizeof(*n));
        if (i)
            memcpy(n, m->users, i * sizeof(*n));
        if (m->nusers > i)
            memcpy(n + i + 1, m->users + i, (m->nusers - i) * sizeof(*n));
        u.name = name;
        n[i] = u;
        free(m->users);
        m->users = n;
        m->nusers++;
    }
    return SL_OK;
}

static sl_err apply_user_delete(sl_meta *m, sl_rd *rd)
{
    char *name = sl_meta_rd_strdup(rd);
    int found;
    size_t i;
    if (!name || rd->err || sl_rd_left(rd) != 0) {
        free(name);
        return SL_ERR_MALFORMED;
    }
    i = user_pos(m, name, &found);
    if (!found) {
        free(name);
        return SL_ERR_NOT_FOUND;
    }
    free(m->users[i].name);
    memmove(&m->users[i], &m->users[i + 1],
            (m->nusers - i - 1) * sizeof(*m->users));
    m->nusers--;
    for (size_t k = m->nacls; k-- > 0;)
        if (!strcmp(m->acls[k].user, name))
            acl_remove_at(m, k);
    free(name);
    return SL_OK;
}

static sl_err apply_acl_change(sl_meta *m, sl_rd *rd)
{
    char *user = sl_meta_rd_strdup(rd), *pat = NULL;
    int kind = sl_rd_u8(rd), prefix, found;
    uint32_t add, rem;
    size_t i;
    sl_err rc = SL_OK;
    pat = sl_meta_rd_strdup(rd);
    prefix = sl_rd_u8(rd) != 0;
    add = sl_rd_u32(rd);
    rem = sl_rd_u32(rd);
    if (!user || !pat || rd->err || sl_rd_left(rd) != 0 || !name_ok(user) ||
        kind < 1 || kind > 3 || strlen(pat) > MAX_PATTERN) {
        rc = SL_ERR_MALFORMED;
        goto out;
    }
    if (kind == 3) { /* the cluster: no pattern */
        pat[0] = 0;
        prefix = 0;
    }
    i = acl_pos(m, user, kind, pat, prefix, &found);
    if (!found) {
        if (!add) {
            rc = SL_ERR_NOT_FOUND; /* revoke of a rule that is not there */
            goto out;
        }
        if (!sl_meta_user_find(m, user)) {
            rc = SL_ERR_NOT_FOUND;
            goto out;
        }
        if (add & ~rem) {
            sl_mi_acl *n = sl_meta_xcalloc(m->nacls + 1, sizeof(*n));
            if (m->nacls >= SL_META_MAX_ACLS) {
                free(n);
                rc = SL_ERR_TOO_LARGE;
                goto out;
            }
            if (i)
                memcpy(n, m->acls, i * sizeof(*n));
            if (m->nacls > i)
                memcpy(n + i + 1, m->acls + i, (m->nacls - i) * sizeof(*n));
            n[i].user = user;
            n[i].pattern = pat;
            n[i].kind = (uint8_t)kind;
            n[i].prefix = (uint8_t)prefix;
            n[i].ops = add & ~rem;
            user = pat = NULL;
            free(m->acls);
            m->acls = n;
            m->nacls++;
        }
        goto out;
    }
    m->acls[i].ops = (m->acls[i].ops | add) & ~rem;
    if (!m->acls[i].ops)
        acl_remove_at(m, i);
out:
    free(user);
    free(pat);
    return rc;
}

sl_err sl_meta_auth_apply(sl_meta *m, uint64_t index, int type, sl_rd *rd)
{
    sl_err rc;
    if (type == SL_MCMD_USER_UPSERT)
        rc = apply_user_upsert(m, rd);
    else if (type == SL_MCMD_USER_DELETE)
        rc = apply_user_delete(m, rd);
    else
        rc = apply_acl_change(m, rd);
    if (rc == SL_OK)
        m->auth_index = index;
    return rc;
}

void sl_meta_auth_fini(sl_meta *m)
{
    for (size_t i = 0; i < m->nusers; i++)
        free(m->users[i].name);
    free(m->users);
    for (size_t i = 0; i < m->nacls; i++) {
        free(m->acls[i].user);
        free(m->acls[i].pattern);
    }
    free(m->acls);
    m->users = NULL;
    m->acls = NULL;
    m->nusers = m->nacls = 0;
    m->auth_index = 0;
}

/* ---- snapshot section ---------------------------------------------------- */

void sl_meta_auth_snapshot(const sl_meta *m, sl_wb *wb)
{
    sl_wb_u8(wb, AUTH_SECTION_TAG);
    sl_wb_u64(wb, m->auth_index);
    sl_wb_u32(wb, (uint32_t)m->nusers);
    for (size_t i = 0; i < m->nusers; i++) {
        sl_meta_wb_str(wb, m->users[i].name);
        put_user(wb, &m->users[i]);
    }
    sl_wb_u32(wb, (uint32_t)m->nacls);
    for (size_t i = 0; i < m->nacls; i++) {
        const sl_mi_acl *a = &m->acls[i];
        sl_meta_wb_str(wb, a->user);
        sl_wb_u8(wb, a->kind);
        sl_meta_wb_str(wb, a->pattern);
        sl_wb_u8(wb, a->prefix);
        sl_wb_u32(wb, a->ops);
    }
}

sl_err sl_meta_auth_restore(sl_meta *m, sl_rd *rd)
{
    uint32_t n;
    if (sl_rd_u8(rd) != AUTH_SECTION_TAG)
        return SL_ERR_CORRUPT;
    m->auth_index = sl_rd_u64(rd);
    n = sl_rd_u32(rd);
    if (rd->err || n > SL_META_MAX_USERS || n > sl_rd_left(rd))
        return SL_ERR_CORRUPT;
    m->users = sl_meta_xcalloc(n, sizeof(*m->users));
    for (uint32_t i = 0; i < n && !rd->err; i++) {
        sl_mi_user *u = &m->users[i];
        u->name = sl_meta_rd_strdup(rd);
        m->nusers = i + 1;
        if (!u->name || get_user(rd, u) != SL_OK)
            return SL_ERR_CORRUPT;
    }
    n = sl_rd_u32(rd);
    if (rd->err || n > SL_META_MAX_ACLS || n > sl_rd_left(rd))
        return SL_ERR_CORRUPT;
    m->acls = sl_meta_xcalloc(n, sizeof(*m->acls));
    for (uint32_t i = 0; i < n && !rd->err; i++) {
        sl_mi_acl *a = &m->acls[i];
        a->user = sl_meta_rd_strdup(rd);
        a->kind = sl_rd_u8(rd);
        a->pattern = sl_meta_rd_strdup(rd);
        a->prefix = sl_rd_u8(rd);
        a->ops = sl_rd_u32(rd);
        m->nacls = i + 1;
    }
    return rd->err ? SL_ERR_CORRUPT : SL_OK;
}
