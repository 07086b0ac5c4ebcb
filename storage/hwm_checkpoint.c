/*
 * hwm_checkpoint.c - write and read the high-water mark checkpoint
 * (storage/hwm_checkpoint.h has the format; broker/replica_hwm.c the
 * policy).
 *
 * Why a whole file per data directory and not a file per partition: with
 * 10,000 partitions, a file each would cost two fsyncs per changed
 * partition per round; one file costs one write of ~30 bytes a partition
 * and two fsyncs per round, whatever changed (Kafka does the same). Why a
 * CRC: the recipe already makes a crash leave the old file or the new one,
 * never a mix; the CRC catches what the recipe cannot (a copy cut short by
 * hand, a disk that returns other bytes), so that such a file is ignored
 * instead of trusted. A mark that is wrong upwards would make a follower
 * skip part of the comparison that finds a divergent tail.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "protocol/crc32c.h"
#include "storage/fsutil.h"
#include "storage/hwm_checkpoint.h"

#define HWM_MAGIC "sluice-hwm 1\n"
/* a file larger than this is not one of ours */
#define HWM_MAX_FILE (64u * 1024 * 1024)

sl_err sl_hwm_ckpt_encode(const sl_hwm_entry *e, size_t n, char **out,
                          size_t *outlen)
{
    size_t cap = 64 + 32, len = 0;
    char *buf;
    int k;

    for (size_t i = 0; i < n; i++)
        cap += strlen(e[i].topic) + 2 * 24;
    buf = malloc(cap);
    if (!buf)
        return SL_ERR_NOMEM;
    k = snprintf(buf, cap, "%s%zu\n", HWM_MAGIC, n);
    len = (size_t)k;
    for (size_t i = 0; i < n; i++) {
        k = snprintf(buf + len, cap - len, "%s %d %" PRId64 "\n", e[i].topic,
                     (int)e[i].partition, e[i].hwm);
        len += (size_t)k;
    }
    k = snprintf(buf + len, cap - len, "crc %08x\n",
                 (unsigned)sl_crc32c(0, buf, len));
    len += (size_t)k;
    *out = buf;
    *outlen = len;
    return SL_OK;
}

sl_err sl_hwm_ckpt_write(const char *path, const sl_hwm_entry *e, size_t n)
{
    char *buf;
    size_t len;
    sl_err rc = sl_hwm_ckpt_encode(e, n, &buf, &len);
    if (rc != SL_OK)
        return rc;
    rc = sl_fs_write_durable(path, buf, len);
    free(buf);
    return rc;
}

void sl_hwm_ckpt_free(sl_hwm_entry *e, size_t n)
{
    for (size_t i = 0; e && i < n; i++)
        free(e[i].topic);
    free(e);
}

static int entry_cmp(const void *a, const void *b)
{
    const sl_hwm_entry *x = a, *y = b;
    int c = strcmp(x->topic, y->topic);
    if (c)
        return c;
    return (x->partition > y->partition) - (x->partition < y->partition);
}

sl_hwm_entry *sl_hwm_ckpt_find(sl_hwm_entry *e, size_t n, const char *topic,
                               int32_t partition)
{
    sl_hwm_entry key;
    if (!e || !n)
        return NULL;
    key.topic = (char *)topic;
    key.partition = partition;
    return bsearch(&key, e, n, sizeof(*e), entry_cmp);
}

/* The next '\n'-ended line from *pos in buf[0, len) (NUL-terminated in
 * place), or NULL when none is left whole. */
static char *next_line(char *buf, size_t len, size_t *pos)
{
    char *s = buf + *pos, *nl;
    if (*pos >= len)
        return NULL;
    nl = memchr(s, '\n', len - *pos);
    if (!nl)
        return NULL;
    *nl = '\0';
    *pos = (size_t)(nl - buf) + 1;
    return s;
}

/* A decimal integer that is the whole of s, in [lo, hi]. */
static int parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    char *end;
    long long v;
    if (!*s || *s == ' ' || *s == '+')
        return 0;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return 0;
    *out = (int64_t)v;
    return 1;
}

#define BAD(...)                                                               \
    do {                                                                       \
        if (errbuf && errlen)                                                  \
            snprintf(errbuf, errlen, __VA_ARGS__);                             \
        rc = SL_ERR_CORRUPT;                                                   \
        goto out;                                                              \
    } while (0)

sl_err sl_hwm_ckpt_read(const char *path, sl_hwm_entry **out, size_t *n,
                        char *errbuf, size_t errlen)
{
    struct stat st;
    char *buf = NULL, *line;
    size_t len, pos = 0, got = 0, body;
    int64_t count = 0;
    sl_hwm_entry *e = NULL;
    sl_err rc = SL_OK;
    int fd;

    *out = NULL;
    *n = 0;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? SL_ERR_NOT_FOUND : SL_ESYS(errno);
    if (fstat(fd, &st) != 0) {
        rc = SL_ESYS(errno);
        goto out;
    }
    if (st.st_size > (off_t)HWM_MAX_FILE)
        BAD("%lld bytes, more than a checkpoint holds", (long long)st.st_size);
    len = (size_t)st.st_size;
    buf = malloc(len + 1);
    if (!buf) {
        rc = SL_ERR_NOMEM;
        goto out;
    }
    rc = sl_fs_pread_all(fd, buf, len, 0, &got);
    if (rc == SL_ERR_MALFORMED)
        BAD("shorter than its size (%zu of %zu bytes)", got, len);
    if (rc != SL_OK)
        goto out;
    buf[len] = '\0';
    /* the last line is the crc of everything before it: checked first,
     * before parsing writes NULs into the buffer */
    {
        unsigned want;
        char *last;
        if (len < 2 || buf[len - 1] != '\n')
            BAD("does not end with a whole line");
        last = memrchr(buf, '\n', len - 1);
        body = last ? (size_t)(last - buf) + 1 : 0;
        if (len - body != 13 || memcmp(buf + body, "crc ", 4) ||
            sscanf(buf + body + 4, "%8x", &want) != 1)
            BAD("no crc line at its end");
        if (want != (unsigned)sl_crc32c(0, buf, body))
            BAD("crc mismatch");
    }
    if (body < strlen(HWM_MAGIC) || memcmp(buf, HWM_MAGIC, strlen(HWM_MAGIC)))
        BAD("no \"sluice-hwm 1\" header");
    pos = strlen(HWM_MAGIC);
    if (!(line = next_line(buf, body, &pos)) ||
        !parse_int(line, 0, INT32_MAX, &count))
        BAD("no entry count on line 2");
    if (count && !(e = calloc((size_t)count, sizeof(*e)))) {
        rc = SL_ERR_NOMEM;
        goto out;
    }
    for (int64_t i = 0; i < count; i++) {
        char *sp1, *sp2;
        int64_t p, h;
        if (!(line = next_line(buf, body, &pos)))
            BAD("ends after %lld of %lld entries", (long long)i,
                (long long)count);
        sp1 = strchr(line, ' ');
        sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
        if (!sp1 || !sp2 || sp1 == line)
            BAD("entry %lld is not \"TOPIC PARTITION HWM\"", (long long)i + 1);
        *sp1 = *sp2 = '\0';
        if (!parse_int(sp1 + 1, 0, INT32_MAX, &p) ||
            !parse_int(sp2 + 1, 0, INT64_MAX, &h))
            BAD("entry %lld has a bad partition or mark", (long long)i + 1);
        if (!(e[i].topic = strdup(line))) {
            rc = SL_ERR_NOMEM;
            goto out;
        }
        e[i].partition = (int32_t)p;
        e[i].hwm = h;
        *n = (size_t)i + 1;
    }
    if (pos != body)
        BAD("more lines than its %lld entries", (long long)count);
    if (*n > 1)
        qsort(e, *n, sizeof(*e), entry_cmp);
    for (size_t i = 1; i < *n; i++)
        if (!entry_cmp(&e[i - 1], &e[i]))
            BAD("%s/%d listed twice", e[i].topic, (int)e[i].partition);
    *out = e;
    e = NULL;
out:
    if (e) {
        sl_hwm_ckpt_free(e, *n);
        *n = 0;
    }
    free(buf);
    close(fd);
    return rc;
}
