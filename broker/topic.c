/*
 * topic.c - topic registry over meta.db (see topic.h for the crash rules):
 * open and load (with the missing-state checks), create, delete, find.
 * The partition summaries are in topic_summary.c, alter and
 * add-partitions in topic_alter.c.
 */
#include "broker/topic.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/broker_api.h"
#include "broker/topic_int.h"
#include "protocol/hash.h"
#include "protocol/log.h"
#include "storage/fsutil.h"

static uint32_t hash_name(const char *s)
{
    return sl_fnv1a32(s, strlen(s)) % NBUCKETS;
}

sl_err sl_topic_name_check(const char *name, size_t len)
{
    if (len == 0 || len > SL_TOPIC_NAME_MAX)
        return SL_ERR_INVALID_TOPIC;
    if ((len == 1 && name[0] == '.') ||
        (len == 2 && name[0] == '.' && name[1] == '.'))
        return SL_ERR_INVALID_TOPIC;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return SL_ERR_INVALID_TOPIC;
    }
    return SL_OK;
}

static int rm_cb(const char *path, const struct stat *st, int flag,
                 struct FTW *ftw)
{
    if (remove(path) != 0)
        sl_log(SL_WARN, "topic", "cannot remove %s: %s", path, strerror(errno));
    return 0;
}

void sl_topics_rm_rf(const char *path)
{
    nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* Move path into DATA/trash/ and delete it there. sync: make the move
 * durable first (not for flush=never topics, whose files the OS keeps as
 * it likes anyway). */
static void trash(sl_topics *ts, const char *path, const char *name, int sync)
{
    char dst[4096];
    snprintf(dst, sizeof(dst), "%s/trash/%s.%lld", ts->dir, name,
             (long long)sl_now_ms());
    if (rename(path, dst) != 0) {
        if (errno != ENOENT)
            sl_log(SL_WARN, "topic", "cannot move %s to %s: %s", path, dst,
                   strerror(errno));
        sl_topics_rm_rf(path);
        return;
    }
    if (sync)
        sl_fs_fsync_dir(path, 0);
    sl_topics_rm_rf(dst);
}

static void topic_free(sl_topic *t)
{
    if (!t)
        return;
    for (int32_t i = 0; t->parts && i < t->nparts; i++) {
        if (t->parts[i])
            sl_part_free(t->parts[i]->part);
        free(t->parts[i]);
    }
    free(t->parts);
    for (size_t i = 0; i < t->ncfg; i++) {
        free(t->cfg_keys[i]);
        free(t->cfg_values[i]);
    }
    free(t->cfg_keys);
    free(t->cfg_values);
    free(t->name);
    free(t);
}

sl_err sl_topics_db_exec(sl_topics *ts, const char *sql, char *err,
                         size_t errlen)
{
    char *msg = NULL;
    if (sqlite3_exec(ts->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, errlen, "meta.db: %s: %s", sql, msg ? msg : "?");
        sqlite3_free(msg);
        return SL_ERR_STORAGE;
    }
    return SL_OK;
}

/* Open partition `part` of topic `name` at path: from its summary (start
 * after a clean stop), empty (fresh: a new directory), or the whole
 * recovery. */
sl_err sl_topics_part_open(sl_topics *ts, const char *path, const char *name,
                           int32_t part, int fresh, const sl_part_cfg *pcfg,
                           sl_part **out)
{
    const sl_part_summary *m =
        fresh ? NULL : sl_topics_summary_find(ts, name, part);
    sl_part_summary empty;
    struct stat pst;
    sl_err rc;
    if (fresh) {
        sl_part_summary_empty(&empty);
        m = &empty;
    }
    /* mkdir -p only for a new one: at every start it cost 12 mkdir
     * calls per partition (120,016 for 10,000 partitions). Made here, no
     * fsync of the topic directory per partition (the first sync round
     * of the partition fsyncs its own directory). */
    if (!m || fresh) { /* (a summary's directory was checked: load_topics) */
        rc = stat(path, &pst) == 0 ? SL_OK : sl_fs_mkdirs(path, 0755);
        if (rc != SL_OK)
            return rc;
    }
    if (m && !fresh && ts->crash_lazy && sl_part_touched_has(path))
        m = NULL; /* changed by the run that crashed: recover it */
    if (m) {
        rc = sl_part_open_lazy(path, pcfg, m, out);
        if (rc == SL_OK && !fresh)
            ts->lazy_opened++;
        else if (rc == SL_OK) /* (the caller flushes the list) */
            rc = sl_part_touch(*out);
        return rc;
    }
    ts->recovered++;
    return sl_part_open(path, pcfg, out);
}

/* Build the topic object and open its partitions. */
static sl_err topic_open(sl_topics *ts, const char *name, int32_t nparts,
                         const char *const *keys, const char *const *values,
                         size_t ncfg, int fresh, sl_topic **out, char *err,
                         size_t errlen)
{
    sl_topic *t;
    sl_err rc;
    char path[4096];

    t = calloc(1, sizeof(*t));
    if (!t)
        return SL_ERR_NOMEM;
    t->name = strdup(name);
    t->nparts = nparts;
    t->parts = calloc((size_t)nparts, sizeof(*t->parts));
    t->cfg_keys = calloc(ncfg + 1, sizeof(char *));
    t->cfg_values = calloc(ncfg + 1, sizeof(char *));
    if (!t->name || !t->parts || !t->cfg_keys || !t->cfg_values) {
        rc = SL_ERR_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < ncfg; i++) {
        t->cfg_keys[i] = strdup(keys[i]);
        t->cfg_values[i] = strdup(values[i]);
        t->ncfg++;
        if (!t->cfg_keys[i] || !t->cfg_values[i]) {
            rc = SL_ERR_NOMEM;
            goto out;
        }
    }
    rc = sl_config_part_cfg(ts->cfg, keys, values, ncfg, &t->pcfg, err, errlen);
    if (rc != SL_OK)
        goto out;
    for (int32_t i = 0; i < nparts; i++) {
        t->parts[i] = calloc(1, sizeof(sl_tpart));
        if (!t->parts[i]) {
            rc = SL_ERR_NOMEM;
            goto out;
        }
        t->parts[i]->topic = t;
        t->parts[i]->id = i;
        t->parts[i]->fol_durable = INT64_MAX;
        snprintf(path, sizeof(path), "%s/topics/%s/%d", ts->dir, name, i);
        rc = sl_topics_part_open(ts, path, name, i, fresh, &t->pcfg,
                                 &t->parts[i]->part);
        if (rc != SL_OK) {
            snprintf(err, errlen, "topic %s partition %d: open %s: %s", name, i,
                     path, sl_strerror(rc));
            goto out;
        }
    }
    /* (a flush=never topic, e.g. a STOMP temp queue, is not synced at
     * creation: its records are not either) */
    if (fresh && t->pcfg.flush != SL_FLUSH_NEVER &&
        (rc = sl_part_touched_flush()) != SL_OK) {
        snprintf(err, errlen, "topic %s: %s: %s", name, SL_PART_TOUCHED_FILE,
                 sl_strerror(rc));
        goto out;
    }
    *out = t;
    t = NULL;
out:
    topic_free(t);
    return rc;
}

static void link_topic(sl_topics *ts, sl_topic *t)
{
    uint32_t h = hash_name(t->name);
    t->hnext = ts->buckets[h];
    ts->buckets[h] = t;
    ts->count++;
}

static void unlink_topic(sl_topics *ts, sl_topic *t)
{
    sl_topic **pp = &ts->buckets[hash_name(t->name)];
    while (*pp && *pp != t)
        pp = &(*pp)->hnext;
    if (*pp) {
        *pp = t->hnext;
        ts->count--;
    }
}

/* ---- missing state (issue 18, finding 10) ------------------------------
 *
 * meta.db is created on the first start and a topic's partition
 * directories are made before its row is committed (see topic.h), so:
 *  - DATA/topics/ holding topic directories while meta.db is missing means
 *    meta.db was deleted: every topic would silently disappear;
 *  - a row whose partition directory is missing means the directory was
 *    deleted: the partition would silently restart at offset 0.
 * Both refuse to start with a message naming what is gone, unless
 * `--recover` accepts the loss: topics are re-registered from their
 * directories (partition count = consecutive numeric subdirectories; their
 * settings are lost, the broker defaults apply) and a missing partition
 * starts empty. A flush=never topic (a STOMP temp queue) may lose its
 * directory in a machine crash by design: recreated with a WARN.
 */

/* Names of the topic directories under DATA/topics (malloc'ed array of
 * strdup'ed names; *n). */
static char **topic_dirs(const char *data_dir, size_t *n)
{
    char path[4096];
    DIR *d;
    struct dirent *e;
    char **v = NULL;
    size_t c = 0;
    *n = 0;
    snprintf(path, sizeof(path), "%s/topics", data_dir);
    d = opendir(path);
    if (!d)
        return NULL;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' ||
            sl_topic_name_check(e->d_name, strlen(e->d_name)) != SL_OK)
            continue;
        if (*n == c) {
            size_t nc = c ? 2 * c : 16;
            char **nv = realloc(v, nc * sizeof(*nv));
            if (!nv)
                break;
            v = nv;
            c = nc;
        }
        if ((v[*n] = strdup(e->d_name)) != NULL)
            (*n)++;
    }
    closedir(d);
    return v;
}

static void free_names(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* Partitions of a topic directory: 0, 1, ... while they exist. */
static int32_t count_part_dirs(const char *data_dir, const char *name)
{
    char path[4096];
    struct stat st;
    int32_t n = 0;
    for (;; n++) {
        snprintf(path, sizeof(path), "%s/topics/%s/%d", data_dir, name, n);
        if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
            return n;
    }
}

/* meta.db was missing: register every topic directory found (--recover). */
static sl_err reregister_topics(sl_topics *ts, char **names, size_t n,
                                char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    sl_err rc = SL_OK;
    if (sqlite3_prepare_v2(ts->db,
                           "INSERT OR IGNORE INTO topics(name, partitions, "
                           "created_ms) VALUES(?1, ?2, ?3)",
                           -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "meta.db: %s", sqlite3_errmsg(ts->db));
        return SL_ERR_STORAGE;
    }
    for (size_t i = 0; i < n && rc == SL_OK; i++) {
        int32_t np = count_part_dirs(ts->dir, names[i]);
        if (np == 0)
            continue;
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, names[i], -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(st, 2, np);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)sl_now_ms());
        if (sqlite3_step(st) != SQLITE_DONE) {
            snprintf(err, errlen, "meta.db: %s", sqlite3_errmsg(ts->db));
            rc = SL_ERR_STORAGE;
        } else {
            sl_log(SL_WARN, "topic",
                   "--recover: re-registered topic %s (%d partitions) from "
                   "its directory; its settings were lost, the defaults "
                   "apply",
                   names[i], (int)np);
        }
    }
    sqlite3_finalize(st);
    return rc;
}

/* Does a topic with these overrides (or the broker default) use
 * flush=never? */
static int lazy_topic(const sl_config *cfg, const char *const *keys,
                      const char *const *vals, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(keys[i], "flush") == 0)
            return strcmp(vals[i], "never") == 0;
    return cfg->flush == SL_FLUSH_NEVER;
}

/* Which of the np partition directories of topic `name` exist: one
 * readdir of the topic's directory (d_type), not a stat of each (100,000
 * stats read 100,000 inodes, cold ones from the disk: seconds of a start
 * that otherwise reads nothing but the summary). malloc'ed (np bytes);
 * NULL (then stat each) on error. */
static uint8_t *part_dirs_seen(sl_topics *ts, const char *name, int32_t np)
{
    char path[4096];
    struct dirent *e;
    uint8_t *seen;
    DIR *d;
    snprintf(path, sizeof(path), "%s/topics/%s", ts->dir, name);
    if (np <= 0 || !(seen = calloc((size_t)np, 1)))
        return NULL;
    if (!(d = opendir(path)))
        return seen; /* none there */
    while ((e = readdir(d)) != NULL) {
        char *end;
        long v = strtol(e->d_name, &end, 10);
        if (*end || end == e->d_name || v < 0 || v >= np ||
            (e->d_name[0] == '0' && e->d_name[1]))
            continue;
        if (e->d_type == DT_DIR) {
            seen[v] = 1;
        } else if (e->d_type == DT_UNKNOWN) {
            struct stat st;
            snprintf(path, sizeof(path), "%s/topics/%s/%s", ts->dir, name,
                     e->d_name);
            seen[v] = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
        }
    }
    closedir(d);
    return seen;
}

static sl_err load_topics(sl_topics *ts, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL, *cst = NULL;
    sl_err rc = SL_OK;

    if (sqlite3_prepare_v2(ts->db,
                           "SELECT name, partitions FROM topics ORDER BY name",
                           -1, &st, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(ts->db,
                           "SELECT key, value FROM topic_configs WHERE "
                           "topic = ?1 ORDER BY key",
                           -1, &cst, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "meta.db: %s", sqlite3_errmsg(ts->db));
        rc = SL_ERR_STORAGE;
        goto out;
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        int32_t np = sqlite3_column_int(st, 1);
        const char *keys[64], *vals[64];
        char *kbuf[64], *vbuf[64];
        size_t n = 0;
        sl_topic *t = NULL;

        sqlite3_reset(cst);
        sqlite3_bind_text(cst, 1, name, -1, SQLITE_TRANSIENT);
        while (sqlite3_step(cst) == SQLITE_ROW && n < 64) {
            kbuf[n] = strdup((const char *)sqlite3_column_text(cst, 0));
            vbuf[n] = strdup((const char *)sqlite3_column_text(cst, 1));
            keys[n] = kbuf[n];
            vals[n] = vbuf[n];
            n++;
        }
        uint8_t *seen = ts->nsums ? part_dirs_seen(ts, name, np) : NULL;
        for (int32_t i = 0; i < np; i++) {
            char path[4096];
            struct stat pst;
            snprintf(path, sizeof(path), "%s/topics/%s/%d", ts->dir, name, i);
            if (seen ? seen[i] : stat(path, &pst) == 0)
                continue;
            if (!ts->cfg->recover && !lazy_topic(ts->cfg, keys, vals, n)) {
                snprintf(err, errlen,
                         "partition directory %s is missing (topic %s has %d "
                         "partitions in meta.db): its records were deleted. "
                         "Restore it from a backup, or start once with "
                         "--recover to accept the loss (the partition "
                         "starts empty)",
                         path, name, (int)np);
                rc = SL_ERR_STORAGE;
                break;
            }
            sl_part_summary *m = sl_topics_summary_find(ts, name, i);
            if (m) /* what it said is gone with the directory */
                sl_part_summary_empty(m);
            sl_log(SL_WARN, "topic",
                   "%s: partition directory %s was missing; it starts empty "
                   "(%s)",
                   name, path,
                   ts->cfg->recover ? "--recover" : "a flush=never topic");
        }
        free(seen);
        if (rc == SL_OK)
            rc = topic_open(ts, name, np, keys, vals, n, 0, &t, err, errlen);
        for (size_t i = 0; i < n; i++) {
            free(kbuf[i]);
            free(vbuf[i]);
        }
        if (rc != SL_OK)
            goto out;
        link_topic(ts, t);
        sl_log(SL_INFO, "topic", "loaded topic %s (%d partitions)", t->name,
               t->nparts);
    }
out:
    sqlite3_finalize(st);
    sqlite3_finalize(cst);
    return rc;
}

sl_err sl_topics_open(const char *data_dir, const sl_config *cfg,
                      sl_topics **out, char *err, size_t errlen)
{
    sl_topics *ts = calloc(1, sizeof(*ts));
    char path[4096];
    char **dirs = NULL;
    size_t ndirs = 0;
    sl_err rc;

    if (!ts)
        return SL_ERR_NOMEM;
    ts->dir = strdup(data_dir);
    ts->cfg = cfg;
    if (!ts->dir) {
        rc = SL_ERR_NOMEM;
        goto out;
    }
    /* Before any partition is opened (storage/fdcache.c). */
    sl_part_set_max_open_files((size_t)cfg->storage_max_open_files);
    sl_part_set_idle_unload_ms(cfg->partition_idle_unload_ms);
    snprintf(path, sizeof(path), "%s/topics", data_dir);
    rc = sl_fs_mkdirs(path, 0755);
    if (rc == SL_OK) {
        snprintf(path, sizeof(path), "%s/trash", data_dir);
        sl_topics_rm_rf(path);
        rc = sl_fs_mkdirs(path, 0755);
    }
    if (rc != SL_OK) {
        snprintf(err, errlen, "cannot create %s: %s", path, sl_strerror(rc));
        goto out;
    }
    snprintf(path, sizeof(path), "%s/meta.db", data_dir);
    if (access(path, F_OK) != 0) {
        dirs = topic_dirs(data_dir, &ndirs);
        if (ndirs > 0 && !cfg->recover) {
            snprintf(err, errlen,
                     "%s is missing but %s/topics holds %zu topic "
                     "director%s (%s%s): the topic registry was deleted. "
                     "Restore it from a backup, or start once with "
                     "--recover to re-register the topics from their "
                     "directories (their settings are lost)",
                     path, data_dir, ndirs, ndirs == 1 ? "y" : "ies", dirs[0],
                     ndirs > 1 ? ", ..." : "");
            rc = SL_ERR_STORAGE;
            goto out;
        }
    }
    if (sqlite3_open(path, &ts->db) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open %s: %s", path,
                 ts->db ? sqlite3_errmsg(ts->db) : "out of memory");
        rc = SL_ERR_STORAGE;
        goto out;
    }
    sqlite3_busy_timeout(ts->db, 5000);
    rc = sl_topics_db_exec(ts, "PRAGMA journal_mode=WAL", err, errlen);
    if (rc == SL_OK)
        rc = sl_topics_db_exec(ts, "PRAGMA synchronous=FULL", err, errlen);
    if (rc == SL_OK)
        rc =
            sl_topics_db_exec(ts,
                              "CREATE TABLE IF NOT EXISTS topics("
                              " name TEXT PRIMARY KEY,"
                              " partitions INTEGER NOT NULL,"
                              " created_ms INTEGER NOT NULL);"
                              "CREATE TABLE IF NOT EXISTS topic_configs("
                              " topic TEXT NOT NULL, key TEXT NOT NULL,"
                              " value TEXT NOT NULL, PRIMARY KEY(topic, key));",
                              err, errlen);
    if (rc == SL_OK && ndirs > 0)
        rc = reregister_topics(ts, dirs, ndirs, err, errlen);
    if (rc == SL_OK) {
        /* One syncfs after all partitions are opened instead of an
         * fdatasync per partition, none after a clean stop (the marker
         * sl_topics_free leaves; storage/partition.h). */
        int clean = 0;
        long long t0 = sl_now_ms();
        rc = sl_part_startup_begin(data_dir, &clean);
        if (rc != SL_OK)
            snprintf(err, errlen, "%s/%s: %s", data_dir, SL_PART_CLEAN_MARKER,
                     sl_strerror(rc));
        char *sbuf = NULL, ttok[160] = "";
        if (rc == SL_OK && clean) {
            snprintf(ttok, sizeof(ttok), "%s", sl_part_startup_note());
            sbuf = sl_topics_summaries_read(ts, ttok);
        } else if (rc == SL_OK &&
                   sl_part_touched_read(data_dir, ttok, sizeof(ttok)) ==
                       SL_OK &&
                   ttok[0]) {
            /* After a crash: what the crashed run(s) did not change is
             * still as the summary says (storage/partition_startup.c). */
            sbuf = sl_topics_summaries_read(ts, ttok);
            ts->crash_lazy = sbuf != NULL;
        }
        if (rc == SL_OK) {
            /* This run lists what it changes, against that summary. */
            sl_err trc = sl_part_touched_begin(data_dir, sbuf ? ttok : "",
                                               ts->crash_lazy);
            if (trc != SL_OK) {
                sl_log(SL_WARN, "topic",
                       "cannot write %s/%s: %s (a start after a crash "
                       "recovers every partition)",
                       data_dir, SL_PART_TOUCHED_FILE, sl_strerror(trc));
                sl_part_touched_stop(data_dir);
            }
        }
        int keep_summary = sbuf != NULL;
        if (rc == SL_OK)
            rc = load_topics(ts, err, errlen);
        free(sbuf);
        free(ts->sums);
        ts->sums = NULL;
        ts->nsums = 0;
        snprintf(path, sizeof(path), "%s/%s", data_dir, SL_TOPICS_SUMMARY_FILE);
        if (!keep_summary) /* (else partitions.touched amends it) */
            unlink(path);  /* (its token is in no later marker) */
        sl_err rc2 = sl_part_startup_end(data_dir);
        if (rc == SL_OK && rc2 != SL_OK) {
            snprintf(err, errlen,
                     "cannot make the recovered partitions durable (syncfs "
                     "of %s): %s",
                     data_dir, sl_strerror(rc2));
            rc = rc2;
        }
        if (rc == SL_OK)
            sl_log(SL_INFO, "topic",
                   "opened %zu topic(s) in %lld ms (%s); %zu partition(s) "
                   "from their summary (loaded at first use), %zu "
                   "recovered",
                   ts->count, sl_now_ms() - t0,
                   clean ? "after a clean stop" : "recovered, then syncfs",
                   ts->lazy_opened, ts->recovered);
    }
    if (rc != SL_OK)
        goto out;
    ts->opened = 1;
    *out = ts;
    ts = NULL;
out:
    free_names(dirs, ndirs);
    sl_topics_free(ts);
    return rc;
}

void sl_topics_free(sl_topics *ts)
{
    int clean;
    if (!ts)
        return;
    /* A clean stop (every partition opened at start, none failed since)
     * leaves the marker that lets the next start skip its syncfs. The
     * flusher's last round ran before this; sl_part_shutdown_mark syncs
     * what closing wrote (index entries, trims) and all the rest. */
    clean = ts->opened;
    for (size_t i = 0; i < NBUCKETS && clean; i++)
        for (sl_topic *t = ts->buckets[i]; t && clean; t = t->hnext)
            for (int32_t k = 0; k < t->nparts && clean; k++)
                if (t->parts[k] && t->parts[k]->part &&
                    sl_part_failed(t->parts[k]->part))
                    clean = 0;
    char token[96] = "";
    if (clean) {
        /* The summaries first (they need the partitions), named by a
         * token the marker repeats: the next start trusts them only with
         * that marker. */
        static unsigned seq;
        snprintf(token, sizeof(token), "%ld-%lld-%u", (long)getpid(),
                 (long long)sl_now_ms(), ++seq);
        sl_err rc = sl_topics_summaries_write(ts, token);
        if (rc != SL_OK) {
            sl_log(SL_WARN, "topic",
                   "cannot write the partition summaries in %s: %s (the "
                   "next start opens every partition)",
                   ts->dir, sl_strerror(rc));
            token[0] = 0;
        }
    }
    for (size_t i = 0; i < NBUCKETS; i++) {
        sl_topic *t = ts->buckets[i], *n;
        for (; t; t = n) {
            n = t->hnext;
            topic_free(t);
        }
    }
    if (clean) {
        sl_err rc = sl_part_shutdown_mark_note(ts->dir, token);
        if (rc != SL_OK)
            sl_log(SL_WARN, "topic",
                   "cannot leave the clean-stop marker in %s: %s (the next "
                   "start recovers as after a crash)",
                   ts->dir, sl_strerror(rc));
    }
    if (ts->opened)
        sl_part_touched_end(); /* (the next start begins a new list) */
    if (ts->db)
        sqlite3_close(ts->db);
    free(ts->sums);
    free(ts->dir);
    free(ts);
}

sl_topic *sl_topics_find(sl_topics *ts, const char *name)
{
    sl_topic *t = ts->buckets[hash_name(name)];
    while (t && strcmp(t->name, name) != 0)
        t = t->hnext;
    return t;
}

size_t sl_topics_count(const sl_topics *ts)
{
    return ts->count;
}

/* The registry commit of a flush=never topic (a STOMP temp queue) is not
 * fsynced either: PRAGMA synchronous=OFF around it. The WAL keeps commits
 * in order, so the next synchronous commit makes it durable too; lost in
 * a machine crash, it leaves at most a stale directory, removed when a
 * topic of that name is created again. */
static void db_lazy(sl_topics *ts, int on)
{
    char e[64];
    sl_topics_db_exec(ts,
                      on ? "PRAGMA synchronous=OFF" : "PRAGMA synchronous=FULL",
                      e, sizeof(e));
}

sl_err sl_topics_create(sl_topics *ts, const char *name, int32_t nparts,
                        const char *const *keys, const char *const *values,
                        size_t ncfg, sl_topic **out, char *err, size_t errlen)
{
    sl_topic *t = NULL;
    sqlite3_stmt *st = NULL;
    char path[4096];
    sl_part_cfg pc;
    struct stat sb;
    sl_err rc;
    int began = 0, lazy = 0;

    rc = sl_topic_name_check(name, strlen(name));
    if (rc != SL_OK) {
        snprintf(err, errlen,
                 "invalid topic name '%.64s': use 1..249 of [A-Za-z0-9._-]",
                 name);
        return rc;
    }
    if (sl_topics_find(ts, name)) {
        snprintf(err, errlen, "topic %s already exists", name);
        return SL_ERR_TOPIC_EXISTS;
    }
    if (nparts <= 0)
        nparts = (int32_t)ts->cfg->default_partitions;
    if (nparts > 10000) {
        snprintf(err, errlen, "topic %s: %d partitions is more than 10000",
                 name, nparts);
        return SL_ERR_INVALID_CONFIG;
    }
    /* Validate the configs before touching the disk. */
    rc = sl_config_part_cfg(ts->cfg, keys, values, ncfg, &pc, err, errlen);
    if (rc != SL_OK)
        return rc;
    /* Leftovers of a create that crashed before its commit, or of a
     * deleted topic: never let them reappear under the new topic. */
    snprintf(path, sizeof(path), "%s/topics/%s", ts->dir, name);
    if (stat(path, &sb) == 0) {
        sl_log(SL_WARN, "topic", "topic %s: removing stale directory %s", name,
               path);
        trash(ts, path, name, 1);
    }
    rc = topic_open(ts, name, nparts, keys, values, ncfg, 1, &t, err, errlen);
    if (rc != SL_OK)
        goto out;
    lazy = pc.flush == SL_FLUSH_NEVER;
    if (lazy)
        db_lazy(ts, 1);
    rc = sl_topics_db_exec(ts, "BEGIN IMMEDIATE", err, errlen);
    if (rc != SL_OK)
        goto out;
    began = 1;
    if (sqlite3_prepare_v2(ts->db,
                           "INSERT INTO topics(name, partitions, created_ms) "
                           "VALUES(?1, ?2, ?3)",
                           -1, &st, NULL) != SQLITE_OK)
        goto dberr;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, nparts);
    sqlite3_bind_int64(st, 3, sl_now_ms());
    if (sqlite3_step(st) != SQLITE_DONE)
        goto dberr;
    sqlite3_finalize(st);
    st = NULL;
    if (sqlite3_prepare_v2(ts->db,
                           "INSERT OR REPLACE INTO topic_configs(topic, key, "
                           "value) VALUES(?1, ?2, ?3)",
                           -1, &st, NULL) != SQLITE_OK)
        goto dberr;
    for (size_t i = 0; i < ncfg; i++) {
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, keys[i], -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, values[i], -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE)
            goto dberr;
    }
    sqlite3_finalize(st);
    st = NULL;
    rc = sl_topics_db_exec(ts, "COMMIT", err, errlen);
    if (rc != SL_OK)
        goto out;
    began = 0;
    link_topic(ts, t);
    sl_log(SL_INFO, "topic", "created topic %s (%d partitions)", name, nparts);
    *out = t;
    t = NULL;
    goto out;
dberr:
    snprintf(err, errlen, "meta.db: %s", sqlite3_errmsg(ts->db));
    rc = SL_ERR_STORAGE;
out:
    sqlite3_finalize(st);
    if (began)
        sl_topics_db_exec(ts, "ROLLBACK", path, sizeof(path));
    if (lazy)
        db_lazy(ts, 0);
    if (t) {
        topic_free(t);
        snprintf(path, sizeof(path), "%s/topics/%s", ts->dir, name);
        trash(ts, path, name, 1);
    }
    return rc;
}

sl_err sl_topics_delete(sl_topics *ts, sl_topic *t)
{
    sqlite3_stmt *st = NULL;
    char path[4096], err[512];
    sl_err rc;
    int lazy = t->pcfg.flush == SL_FLUSH_NEVER;

    if (lazy)
        db_lazy(ts, 1);
    rc = sl_topics_db_exec(ts, "BEGIN IMMEDIATE", err, sizeof(err));
    if (rc != SL_OK)
        goto out;
    if (sqlite3_prepare_v2(ts->db, "DELETE FROM topics WHERE name = ?1; ", -1,
                           &st, NULL) != SQLITE_OK)
        goto dberr;
    sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        goto dberr;
    sqlite3_finalize(st);
    if (sqlite3_prepare_v2(ts->db, "DELETE FROM topic_configs WHERE topic = ?1",
                           -1, &st, NULL) != SQLITE_OK)
        goto dberr;
    sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        goto dberr;
    sqlite3_finalize(st);
    st = NULL;
    rc = sl_topics_db_exec(ts, "COMMIT", err, sizeof(err));
    if (rc != SL_OK)
        goto out;
    if (lazy)
        db_lazy(ts, 0);
    unlink_topic(ts, t);
    snprintf(path, sizeof(path), "%s/topics/%s", ts->dir, t->name);
    sl_log(SL_INFO, "topic", "deleted topic %s", t->name);
    /* close the fds before removing the files */
    {
        char name[SL_TOPIC_NAME_MAX + 1];
        snprintf(name, sizeof(name), "%s", t->name);
        topic_free(t);
        trash(ts, path, name, !lazy);
    }
    return SL_OK;
dberr:
    snprintf(err, sizeof(err), "%s", sqlite3_errmsg(ts->db));
    sqlite3_finalize(st);
    sl_topics_db_exec(ts, "ROLLBACK", path, sizeof(path));
    rc = SL_ERR_STORAGE;
out:
    if (lazy)
        db_lazy(ts, 0);
    sl_log(SL_ERROR, "topic", "delete topic %s failed: %s", t->name, err);
    return rc;
}

static int cmp_topic(const void *a, const void *b)
{
    const sl_topic *x = *(sl_topic *const *)a, *y = *(sl_topic *const *)b;
    return strcmp(x->name, y->name);
}

sl_topic **sl_topics_sorted(sl_topics *ts, size_t *n)
{
    sl_topic **arr = malloc((ts->count + 1) * sizeof(*arr));
    size_t k = 0;

    if (!arr) {
        *n = 0;
        return NULL;
    }
    for (size_t i = 0; i < NBUCKETS; i++)
        for (sl_topic *t = ts->buckets[i]; t; t = t->hnext)
            arr[k++] = t;
    qsort(arr, k, sizeof(*arr), cmp_topic);
    *n = k;
    return arr;
}

int sl_topics_synchronous(sl_topics *ts)
{
    sqlite3_stmt *st = NULL;
    int v = -1;
    if (sqlite3_prepare_v2(ts->db, "PRAGMA synchronous", -1, &st, NULL) ==
            SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return v;
}
