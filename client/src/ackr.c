/*
 * ackr.c - coalescing of queue settlements into ranges. See ackr.h.
 */
#include "client/src/ackr.h"

#include <stdlib.h>
#include <string.h>

void sl_ackr_init(sl_ackr *r)
{
    memset(r, 0, sizeof(*r));
}

static void clear_op(sl_ackr *r, int op)
{
    size_t i;
    for (i = 0; i < r->n[op]; i++)
        free(r->items[op][i].reason);
    r->n[op] = 0;
}

void sl_ackr_fini(sl_ackr *r)
{
    int op;
    for (op = 0; op < SL_ACKR__N; op++) {
        clear_op(r, op);
        free(r->items[op]);
    }
    memset(r, 0, sizeof(*r));
}

size_t sl_ackr_pending(const sl_ackr *r)
{
    return r->n[0] + r->n[1] + r->n[2];
}

sl_err sl_ackr_add(sl_ackr *r, int op, int32_t partition, int64_t offset,
                   int32_t delay_ms, const char *reason, int64_t now_ms)
{
    sl_ackr_item *it;
    if (op < 0 || op >= SL_ACKR__N)
        return SL_ERR_INVALID_ARG;
    if (r->n[op] == r->cap[op]) {
        size_t ncap = r->cap[op] ? r->cap[op] * 2 : 256;
        sl_ackr_item *ni = realloc(r->items[op], ncap * sizeof(*ni));
        if (!ni)
            return SL_ERR_NOMEM;
        r->items[op] = ni;
        r->cap[op] = ncap;
    }
    if (sl_ackr_pending(r) == 0)
        r->oldest_ms = now_ms;
    it = &r->items[op][r->n[op]];
    it->partition = partition;
    it->offset = offset;
    it->delay_ms = delay_ms;
    it->reason = NULL;
    if (reason && !(it->reason = strdup(reason)))
        return SL_ERR_NOMEM;
    r->n[op]++;
    return SL_OK;
}

static int strcmp_null(const char *a, const char *b)
{
    if (!a || !b)
        return (a != NULL) - (b != NULL);
    return strcmp(a, b);
}

static int item_cmp(const void *x, const void *y)
{
    const sl_ackr_item *a = x, *b = y;
    if (a->partition != b->partition)
        return a->partition < b->partition ? -1 : 1;
    if (a->offset != b->offset)
        return a->offset < b->offset ? -1 : 1;
    return 0;
}

static int sorted(const sl_ackr_item *v, size_t n)
{
    size_t i;
    for (i = 1; i < n; i++)
        if (item_cmp(&v[i - 1], &v[i]) > 0)
            return 0;
    return 1;
}

static int same_params(const sl_ackr_item *a, const sl_ackr_item *b)
{
    return a->delay_ms == b->delay_ms && strcmp_null(a->reason, b->reason) == 0;
}

sl_err sl_ackr_take(sl_ackr *r, int op, sl_arena *arena,
                    sl_qsettle_part **parts_out, uint32_t *nparts_out,
                    size_t *nitems)
{
    sl_ackr_item *v = r->items[op];
    size_t n = r->n[op], i, j, nparts = 0, nranges;
    sl_qsettle_part *parts;
    sl_qrange *rg;

    if (n == 0) {
        *parts_out = NULL;
        *nparts_out = 0;
        *nitems = 0;
        return SL_OK;
    }
    /* Acks usually arrive in order: skip the sort then. qsort is not
     * stable, but equal (partition, offset) pairs are duplicates. */
    if (!sorted(v, n))
        qsort(v, n, sizeof(*v), item_cmp);
    for (i = 0; i < n; i++)
        if (i == 0 || v[i].partition != v[i - 1].partition)
            nparts++;
    parts = sl_arena_alloc(arena, nparts * sizeof(*parts));
    if (!parts)
        return SL_ERR_NOMEM;
    nparts = 0;
    for (i = 0; i < n; i = j) {
        /* [i, j) = one partition; count its ranges */
        nranges = 1;
        for (j = i + 1; j < n && v[j].partition == v[i].partition; j++)
            if (!(v[j].offset <= v[j - 1].offset + 1 &&
                  same_params(&v[j], &v[j - 1])))
                nranges++;
        rg = sl_arena_alloc(arena, nranges * sizeof(*rg));
        if (!rg)
            return SL_ERR_NOMEM;
        parts[nparts].partition = (uint32_t)v[i].partition;
        parts[nparts].ranges = rg;
        nranges = 0;
        for (j = i; j < n && v[j].partition == v[i].partition; j++) {
            if (j > i && v[j].offset <= v[j - 1].offset + 1 &&
                same_params(&v[j], &v[j - 1])) {
                rg[nranges - 1].last = v[j].offset;
                continue;
            }
            memset(&rg[nranges], 0, sizeof(rg[nranges]));
            rg[nranges].first = v[j].offset;
            rg[nranges].last = v[j].offset;
            rg[nranges].delay_ms = v[j].delay_ms;
            if (v[j].reason) {
                size_t l = strlen(v[j].reason);
                char *s = sl_arena_alloc(arena, l + 1);
                if (!s)
                    return SL_ERR_NOMEM;
                memcpy(s, v[j].reason, l);
                rg[nranges].reason.p = s;
                rg[nranges].reason.len = l;
            }
            nranges++;
        }
        parts[nparts].nranges = (uint32_t)nranges;
        nparts++;
    }
    *parts_out = parts;
    *nparts_out = (uint32_t)nparts;
    *nitems = n;
    clear_op(r, op);
    return SL_OK;
}
