/* Helpers shared by the storage unit tests. */
#include "tests/unit/test_storage_util.h"

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "protocol/batch.h"

char *tu_tmpdir(void)
{
    const char *t = getenv("TMPDIR");
    char buf[512];
    snprintf(buf, sizeof(buf), "%s/sl-storage-XXXXXX", t && *t ? t : "/tmp");
    assert_non_null(mkdtemp(buf));
    return strdup(buf);
}

void tu_rmrf(char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[1024];
    if (d) {
        while ((e = readdir(d)) != NULL) {
            struct stat st;
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
                tu_rmrf(strdup(path));
            else
                unlink(path);
        }
        closedir(d);
    }
    rmdir(dir);
    free(dir);
}

uint8_t *tu_batch(int n, int64_t ts, int key0, size_t vlen, size_t *len)
{
    sl_batch_builder bb;
    const uint8_t *b;
    uint8_t *copy;
    char key[32], *val = NULL;
    int tomb = vlen == (size_t)-1;

    sl_bb_init(&bb, SL_CODEC_NONE);
    if (!tomb) {
        val = malloc(vlen + 1);
        assert_non_null(val);
    }
    for (int i = 0; i < n; i++) {
        int kl = snprintf(key, sizeof(key), "key-%d", key0 + i);
        if (!tomb) {
            memset(val, 'x', vlen);
            char tmp[32];
            int tl = snprintf(tmp, sizeof(tmp), "val-%d", key0 + i);
            memcpy(val, tmp, (size_t)tl < vlen ? (size_t)tl : vlen);
        }
        assert_int_equal(sl_bb_add(&bb, ts + i, key0 < 0 ? NULL : key,
                                   key0 < 0 ? 0 : (size_t)kl, tomb ? NULL : val,
                                   tomb ? 0 : vlen, NULL, 0),
                         SL_OK);
    }
    assert_int_equal(sl_bb_finish(&bb, &b, len), SL_OK);
    copy = malloc(*len);
    assert_non_null(copy);
    memcpy(copy, b, *len);
    sl_bb_fini(&bb);
    free(val);
    return copy;
}

int64_t tu_append(sl_part *p, int n, int64_t ts, int key0, size_t vlen)
{
    return tu_append_ex(p, n, ts, key0, vlen, 0);
}

int64_t tu_append_ex(sl_part *p, int n, int64_t ts, int key0, size_t vlen,
                     unsigned flags)
{
    size_t len;
    int64_t base = -1;
    uint8_t *b = tu_batch(n, ts, key0, vlen, &len);
    sl_err rc = sl_part_append_ex(p, b, len, ts, flags, &base, NULL, NULL);
    if (rc != SL_OK)
        fail_msg("append: %s", sl_strerror(rc));
    free(b);
    return base;
}

void tu_small_cfg(sl_part_cfg *cfg, uint64_t segment_bytes)
{
    sl_part_cfg_defaults(cfg);
    cfg->segment_bytes = segment_bytes;
    cfg->segment_ms = -1;
    cfg->retention_ms = -1;
    cfg->index_interval_bytes = 128;
}

int tu_count_files(const char *dir, const char *ext)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    size_t el = strlen(ext);
    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l > el && strcmp(e->d_name + l - el, ext) == 0)
            n++;
    }
    closedir(d);
    return n;
}

long long tu_file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

uint8_t *tu_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    long long sz = tu_file_size(path);
    uint8_t *b;
    assert_non_null(f);
    b = malloc((size_t)sz + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)sz, f), (size_t)sz);
    fclose(f);
    *len = (size_t)sz;
    return b;
}

void tu_write_file(const char *path, const void *p, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, len, f), len);
    fclose(f);
}

const char *tu_seg_path(const char *dir, int64_t base, const char *ext)
{
    static char buf[4][1024];
    static int slot;
    char *b = buf[slot++ % 4];
    snprintf(b, 1024, "%s/%020lld%s", dir, (long long)base, ext);
    return b;
}

int64_t tu_count_records(sl_part *p, int64_t start)
{
    sl_part_iter *it;
    sl_record r;
    sl_err e = SL_OK;
    int64_t n = 0, last = -1;
    assert_int_equal(sl_part_iter_new(p, start, &it), SL_OK);
    while (sl_part_iter_next(it, &r, &e)) {
        assert_true(r.offset > last);
        last = r.offset;
        n++;
    }
    assert_int_equal(e, SL_OK);
    sl_part_iter_free(it);
    return n;
}
