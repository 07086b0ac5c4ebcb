/*
 * fuzz_common.h - helpers shared by the libFuzzer targets (tests/fuzz/).
 *
 * Every target defines LLVMFuzzerTestOneInput and must hold three rules:
 * bounded work per input, no state kept between inputs (beyond caches that
 * do not change behaviour), and every pointer a decoder hands back is read
 * in full (fz_touch), so AddressSanitizer sees a borrowed pointer that
 * runs past its buffer.
 */
#ifndef SL_FUZZ_COMMON_H
#define SL_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "protocol/api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Read every byte of [p, p+n) so ASan checks the range. */
static inline void fz_touch(const void *p, size_t n)
{
    volatile uint8_t sink = 0;
    const uint8_t *b = p;
    size_t i;
    if (!p)
        return;
    for (i = 0; i < n; i++)
        sink ^= b[i];
    (void)sink;
}

static inline void fz_str(sl_str s)
{
    fz_touch(s.p, s.len);
}

/*
 * An in-memory file holding data, for parsers that take a path. Returns
 * the fd (close it) and writes "/proc/self/fd/N" into path. Aborts on
 * failure: the target cannot run without it.
 */
static inline int fz_memfile(const uint8_t *data, size_t size, char *path,
                             size_t pathlen)
{
    int fd = memfd_create("fuzz", 0);
    size_t off = 0;
    if (fd < 0)
        abort();
    while (off < size) {
        ssize_t w = write(fd, data + off, size - off);
        if (w <= 0)
            abort();
        off += (size_t)w;
    }
    snprintf(path, pathlen, "/proc/self/fd/%d", fd);
    return fd;
}

#endif
