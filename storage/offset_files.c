/*
 * offset_files.c - list the offset-named files of a directory
 * (offset_files.h). Shared by the segment listing (partition.c) and the
 * producer snapshots (producer_state.c).
 */
#include "storage/offset_files.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

int64_t sl_offset_name(const char *name, const char *ext)
{
    size_t el = strlen(ext);
    int64_t v = 0;
    if (strlen(name) != SL_OFFSET_NAME_DIGITS + el ||
        strcmp(name + SL_OFFSET_NAME_DIGITS, ext) != 0)
        return -1;
    for (int i = 0; i < SL_OFFSET_NAME_DIGITS; i++) {
        if (name[i] < '0' || name[i] > '9')
            return -1;
        if (v > (INT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (name[i] - '0');
    }
    return v;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

sl_err sl_offset_files(const char *dir, const char *ext,
                       sl_offset_other_fn other, void *arg, int64_t **out,
                       size_t *nout)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int64_t *v = NULL;
    size_t n = 0, c = 0;

    *out = NULL;
    *nout = 0;
    if (!d)
        return SL_ESYS(errno);
    while ((e = readdir(d)) != NULL) {
        int64_t off = sl_offset_name(e->d_name, ext);
        if (off < 0) {
            if (other)
                other(dir, e->d_name, arg);
            continue;
        }
        if (n == c) {
            size_t nc = c ? c * 2 : 16;
            int64_t *nv = realloc(v, nc * sizeof(*nv));
            if (!nv) {
                free(v);
                closedir(d);
                return SL_ERR_NOMEM;
            }
            v = nv;
            c = nc;
        }
        v[n++] = off;
    }
    closedir(d);
    if (n > 1)
        qsort(v, n, sizeof(*v), cmp_i64);
    *out = v;
    *nout = n;
    return SL_OK;
}
