/*
 * topic_alter.c - changes to a topic after its creation: sluice topic
 * alter (settings) and add-partitions, on the registry of topic.c.
 */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/topic.h"
#include "broker/topic_int.h"
#include "protocol/log.h"
#include "storage/fsutil.h"

/* ---- changes after creation (sluice topic alter / add-partitions) ------ */

sl_err sl_topics_alter(sl_topics *ts, sl_topic *t, const char *const *keys,
                       const char *const *values, size_t n, char *err,
                       size_t errlen)
{
    size_t cap = t->ncfg + n, m = 0;
    const char **k = calloc(cap + 1, sizeof(*k)),
               **v = calloc(cap + 1, sizeof(*v));
    char **nk = NULL, **nv = NULL;
    sqlite3_stmt *up = NULL, *del = NULL;
    sl_part_cfg pc;
    sl_err rc = SL_ERR_NOMEM;

    if (!k || !v)
        goto out;
    for (size_t i = 0; i < t->ncfg; i++) {
        k[m] = t->cfg_keys[i];
        v[m++] = t->cfg_values[i];
    }
    for (size_t i = 0; i < n; i++) {
        size_t j;
        for (j = 0; j < m && strcmp(k[j], keys[i]); j++)
            ;
        if (j == m)
            m++;
        k[j] = keys[i];
        v[j] = values[i];
    }
    /* drop removals (empty values) */
    {
        size_t w = 0;
        for (size_t i = 0; i < m; i++)
            if (v[i][0]) {
                k[w] = k[i];
                v[w++] = v[i];
            }
        m = w;
    }
    rc = sl_config_part_cfg(ts->cfg, k, v, m, &pc, err, errlen);
    if (rc != SL_OK)
        goto out;
    nk = calloc(m + 1, sizeof(*nk));
    nv = calloc(m + 1, sizeof(*nv));
    if (!nk || !nv) {
        rc = SL_ERR_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < m; i++) {
        nk[i] = strdup(k[i]);
        nv[i] = strdup(v[i]);
        if (!nk[i] || !nv[i]) {
            rc = SL_ERR_NOMEM;
            goto out;
        }
    }
    rc = sl_topics_db_exec(ts, "BEGIN IMMEDIATE", err, errlen);
    if (rc != SL_OK)
        goto out;
    if (sqlite3_prepare_v2(ts->db, "DELETE FROM topic_configs WHERE topic = ?1",
                           -1, &del, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(ts->db,
                           "INSERT OR REPLACE INTO topic_configs(topic, key, "
                           "value) VALUES(?1, ?2, ?3)",
                           -1, &up, NULL) != SQLITE_OK)
        goto dberr;
    sqlite3_bind_text(del, 1, t->name, -1, SQLITE_STATIC);
    if (sqlite3_step(del) != SQLITE_DONE)
        goto dberr;
    for (size_t i = 0; i < m; i++) {
        sqlite3_reset(up);
        sqlite3_bind_text(up, 1, t->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(up, 2, nk[i], -1, SQLITE_STATIC);
        sqlite3_bind_text(up, 3, nv[i], -1, SQLITE_STATIC);
        if (sqlite3_step(up) != SQLITE_DONE)
            goto dberr;
    }
    rc = sl_topics_db_exec(ts, "COMMIT", err, errlen);
    if (rc != SL_OK) {
        sl_topics_db_exec(ts, "ROLLBACK", err, errlen);
        goto out;
    }
    /* swap in the new overrides */
    for (size_t i = 0; i < t->ncfg; i++) {
        free(t->cfg_keys[i]);
        free(t->cfg_values[i]);
    }
    free(t->cfg_keys);
    free(t->cfg_values);
    t->cfg_keys = nk;
    t->cfg_values = nv;
    t->ncfg = m;
    nk = nv = NULL;
    t->pcfg = pc;
    for (int32_t i = 0; i < t->nparts; i++)
        sl_part_set_cfg(t->parts[i]->part, &t->pcfg);
    sl_log(SL_INFO, "topic", "altered topic %s (%zu override(s))", t->name, m);
    rc = SL_OK;
    goto out;
dberr:
    snprintf(err, errlen, "meta.db: %s", sqlite3_errmsg(ts->db));
    sl_topics_db_exec(ts, "ROLLBACK", err + strlen(err), errlen - strlen(err));
    rc = SL_ERR_STORAGE;
out:
    sqlite3_finalize(up);
    sqlite3_finalize(del);
    for (size_t i = 0; nk && i < m; i++)
        free(nk[i]);
    for (size_t i = 0; nv && i < m; i++)
        free(nv[i]);
    free(nk);
    free(nv);
    free(k);
    free(v);
    return rc;
}

sl_err sl_topics_add_partitions(sl_topics *ts, sl_topic *t, int32_t nparts,
                                char *err, size_t errlen)
{
    sl_tpart **np;
    sqlite3_stmt *st = NULL;
    char path[4096];
    struct stat sb;
    int32_t old = t->nparts, i;
    sl_err rc;

    if (nparts <= old || nparts > 10000) {
        snprintf(err, errlen,
                 "topic %s has %d partitions: the new count must be more "
                 "than that and at most 10000, not %d",
                 t->name, old, nparts);
        return SL_ERR_INVALID_CONFIG;
    }
    np = calloc((size_t)nparts, sizeof(*np));
    if (!np)
        return SL_ERR_NOMEM;
    memcpy(np, t->parts, (size_t)old * sizeof(*np));
    for (i = old; i < nparts; i++) {
        np[i] = calloc(1, sizeof(sl_tpart));
        if (!np[i]) {
            rc = SL_ERR_NOMEM;
            goto fail;
        }
        np[i]->topic = t;
        np[i]->id = i;
        np[i]->fol_durable = INT64_MAX;
        snprintf(path, sizeof(path), "%s/topics/%s/%d", ts->dir, t->name, i);
        if (stat(path, &sb) == 0) /* left by an add that crashed */
            sl_topics_rm_rf(path);
        rc = sl_fs_mkdirs(path, 0755);
        if (rc == SL_OK)
            rc = sl_topics_part_open(ts, path, t->name, i, 1, &t->pcfg,
                                     &np[i]->part);
        if (rc != SL_OK) {
            snprintf(err, errlen, "topic %s partition %d: open %s: %s", t->name,
                     i, path, sl_strerror(rc));
            goto fail;
        }
    }
    if (t->pcfg.flush != SL_FLUSH_NEVER) /* (storage/partition_startup.c) */
        rc = sl_part_touched_flush();
    if (rc != SL_OK) {
        snprintf(err, errlen, "topic %s: %s: %s", t->name, SL_PART_TOUCHED_FILE,
                 sl_strerror(rc));
        goto fail;
    }
    if (sqlite3_prepare_v2(ts->db,
                           "UPDATE topics SET partitions = ?2 WHERE name = ?1",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = SL_ERR_STORAGE;
        snprintf(err, errlen, "meta.db: %s", sqlite3_errmsg(ts->db));
        goto fail;
    }
    sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, nparts);
    if (sqlite3_step(st) != SQLITE_DONE) {
        rc = SL_ERR_STORAGE;
        snprintf(err, errlen, "meta.db: %s", sqlite3_errmsg(ts->db));
        goto fail;
    }
    sqlite3_finalize(st);
    free(t->parts);
    t->parts = np;
    t->nparts = nparts;
    sl_log(SL_INFO, "topic", "topic %s: partitions %d -> %d", t->name, old,
           nparts);
    return SL_OK;
fail:
    sqlite3_finalize(st);
    for (int32_t k = old; k < nparts; k++) {
        if (np[k]) {
            sl_part_free(np[k]->part);
            free(np[k]);
            snprintf(path, sizeof(path), "%s/topics/%s/%d", ts->dir, t->name,
                     k);
            sl_topics_rm_rf(path);
        }
    }
    free(np);
    return rc;
}
