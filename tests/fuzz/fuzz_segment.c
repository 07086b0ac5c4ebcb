/*
 * fuzz_segment.c - segment recovery (sl_part_open) on a fuzzed partition
 * directory, in a temporary directory under /dev/shm (or TMPDIR).
 *
 * Input: u8 flags | u16 index_len | index bytes | log bytes. The log bytes
 * become 00000000000000000000.log, the index bytes its .index (flags bit 0:
 * leave the index out, so recovery creates it). Flags bit 1 splits the log
 * at a u16 taken from its first bytes into a second segment named by the
 * offset in the next byte, so the rules between segments (gaps, deletion
 * of later segments after a cut) run too.
 *
 * After recovery the target checks what recovery promises:
 *   - every record the partition iterator yields lies in [start, end),
 *     in strictly increasing order;
 *   - a batch appended after recovery gets base offset == end (offsets are
 *     never reused) and is read back;
 *   - reopening the recovered directory (a second recovery) keeps the same
 *     end offset: recovery's result is itself a valid partition.
 */
#include "tests/fuzz/fuzz_common.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "protocol/batch.h"
#include "protocol/log.h"
#include "storage/partition.h"

static char dir[256];

static void write_file(const char *name, const uint8_t *p, size_t n)
{
    char path[512];
    int fd;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        abort();
    if (n && write(fd, p, n) != (ssize_t)n)
        abort();
    close(fd);
}

static void clear_dir(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[512];
    if (!d)
        abort();
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
}

/* libFuzzer ends with exit(): leave no directory behind in /dev/shm. */
static void remove_dir(void)
{
    clear_dir();
    rmdir(dir);
}

static int64_t read_all(sl_part *p)
{
    sl_part_iter *it;
    sl_record rec;
    sl_err e;
    int64_t start = sl_part_start_offset(p), end = sl_part_end_offset(p);
    int64_t last = -1, n = 0;
    if (sl_part_iter_new(p, start, &it) != SL_OK)
        return -1;
    while (n++ < 100000 && sl_part_iter_next(it, &rec, &e) == 1) {
        fz_touch(rec.value, rec.value_len > 0 ? (size_t)rec.value_len : 0);
        if (rec.offset <= last || rec.offset < start || rec.offset >= end) {
            fprintf(stderr,
                    "iterator: offset %lld after %lld, log [%lld, "
                    "%lld)\n",
                    (long long)rec.offset, (long long)last, (long long)start,
                    (long long)end);
            abort();
        }
        last = rec.offset;
    }
    sl_part_iter_free(it);
    return last;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sl_part_cfg cfg;
    sl_part *p = NULL;
    uint8_t flags;
    size_t ilen;
    int64_t end, first_end, base = -1, last;
    sl_batch_builder bb;
    const uint8_t *bp;
    size_t blen;
    uint8_t *copy;

    if (!dir[0]) {
        const char *t = getenv("TMPDIR");
        struct stat st;
        if (!t && stat("/dev/shm", &st) == 0)
            t = "/dev/shm";
        snprintf(dir, sizeof(dir), "%s/sl-fuzz-seg-XXXXXX", t ? t : "/tmp");
        if (!mkdtemp(dir))
            abort();
        atexit(remove_dir);
        /* recovery warnings are expected; FUZZ_LOG=1 shows them */
        sl_log_level = getenv("FUZZ_LOG") ? SL_DEBUG : SL_NONE;
    }
    if (size < 3)
        return 0;
    flags = data[0];
    ilen = (size_t)data[1] | (size_t)data[2] << 8;
    data += 3;
    size -= 3;
    if (ilen > size)
        ilen = size;
    clear_dir();
    if (!(flags & 1))
        write_file("00000000000000000000.index", data, ilen);
    data += ilen;
    size -= ilen;
    if ((flags & 2) && size >= 3) {
        size_t cut = ((size_t)data[0] | (size_t)data[1] << 8) % size;
        char name[64];
        snprintf(name, sizeof(name), "%020u.log", (unsigned)data[2]);
        write_file("00000000000000000000.log", data + 3, cut > 3 ? cut - 3 : 0);
        if (data[2] != 0)
            write_file(name, data + cut, size - cut);
    } else {
        write_file("00000000000000000000.log", data, size);
    }

    sl_part_cfg_defaults(&cfg);
    cfg.segment_bytes = 1u << 20;
    if (sl_part_open(dir, &cfg, &p) != SL_OK)
        return 0; /* refused: fine, as long as nothing crashed */
    end = first_end = sl_part_end_offset(p);
    if (sl_part_start_offset(p) > end)
        abort();
    last = read_all(p);
    if (last >= end)
        abort();

    sl_bb_init(&bb, SL_CODEC_NONE);
    if (sl_bb_add(&bb, 1, "k", 1, "after-recovery", 14, NULL, 0) == SL_OK &&
        sl_bb_finish(&bb, &bp, &blen) == SL_OK &&
        (copy = malloc(blen)) != NULL) {
        memcpy(copy, bp, blen);
        if (sl_part_append(p, copy, blen, 1, &base) == SL_OK) {
            if (base != end)
                abort(); /* an offset recovery gave out was reused/skipped */
            if (read_all(p) != base)
                abort();
            end = base + 1;
        }
        free(copy);
    }
    sl_bb_fini(&bb);
    sl_part_free(p);

    p = NULL;
    if (sl_part_open(dir, &cfg, &p) == SL_OK) {
        if (sl_part_end_offset(p) != end) {
            /* a second recovery changed the log */
            fprintf(stderr,
                    "reopen: end %lld, expected %lld (first "
                    "recovery end %lld, appended at %lld)\n",
                    (long long)sl_part_end_offset(p), (long long)end,
                    (long long)first_end, (long long)base);
            abort();
        }
        sl_part_free(p);
    }
    return 0;
}
