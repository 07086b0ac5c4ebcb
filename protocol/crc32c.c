#include "protocol/crc32c.h"

#include <pthread.h>
#include <string.h>

static uint32_t table[8][256];
static int have_hw;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static uint32_t crc_sw(uint32_t crc, const uint8_t *p, size_t len)
{
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        w ^= crc;
        crc = table[7][w & 0xff] ^ table[6][(w >> 8) & 0xff] ^
              table[5][(w >> 16) & 0xff] ^ table[4][(w >> 24) & 0xff] ^
              table[3][(w >> 32) & 0xff] ^ table[2][(w >> 40) & 0xff] ^
              table[1][(w >> 48) & 0xff] ^ table[0][w >> 56];
        p += 8;
        len -= 8;
    }
    while (len--)
        crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xff];
    return crc;
}

#if defined(__x86_64__)
/*
 * The crc32 instruction takes 3 cycles and starts one per cycle: one
 * stream of them runs at a third of what the unit can do. Long buffers
 * (a produced batch is up to 256 KiB, CRC'd by the client and twice by the
 * broker: issue 20) go as three streams over three consecutive blocks,
 * whose CRCs are then joined: the CRC of A followed by B is the CRC of A
 * shifted over |B| zero bytes, xor the CRC of B from 0 (CRC is linear).
 * The shift is a 32x32 matrix over GF(2), applied bytewise through four
 * tables per block size (Mark Adler's crc32c.c, zlib licence, does the
 * same).
 */
#define CRC_LONG 8192
#define CRC_SHORT 256
static uint32_t zeros_long[4][256], zeros_short[4][256];

static uint32_t gf2_times(const uint32_t *mat, uint32_t vec)
{
    uint32_t sum = 0;
    for (; vec; vec >>= 1, mat++)
        if (vec & 1)
            sum ^= *mat;
    return sum;
}

static void gf2_square(uint32_t *sq, const uint32_t *mat)
{
    for (int n = 0; n < 32; n++)
        sq[n] = gf2_times(mat, mat[n]);
}

/* Tables that shift a CRC register over len zero bytes (len > 0). */
static void zeros_tables(uint32_t z[4][256], size_t len)
{
    uint32_t odd[32], even[32], *op = even;
    odd[0] = 0x82F63B78u; /* one zero bit */
    for (int n = 1; n < 32; n++)
        odd[n] = 1u << (n - 1);
    gf2_square(even, odd); /* two zero bits */
    gf2_square(odd, even); /* four */
    for (;;) {
        gf2_square(even, odd); /* 8, 32, 128 ... zero bits */
        op = even;
        len >>= 1;
        if (!len)
            break;
        gf2_square(odd, even);
        op = odd;
        len >>= 1;
        if (!len)
            break;
    }
    for (uint32_t n = 0; n < 256; n++)
        for (int k = 0; k < 4; k++)
            z[k][n] = gf2_times(op, n << (8 * k));
}

static inline uint32_t crc_shift(uint32_t z[4][256], uint32_t crc)
{
    return z[0][crc & 0xff] ^ z[1][(crc >> 8) & 0xff] ^
           z[2][(crc >> 16) & 0xff] ^ z[3][crc >> 24];
}

__attribute__((target("sse4.2"))) static inline uint64_t
crc_hw_word(uint64_t c, const uint8_t *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
    return __builtin_ia32_crc32di(c, w);
}

/* Three streams over 3 blocks of blk bytes (a multiple of 8), joined. */
#define CRC_HW_3WAY(blk, z)                                                    \
    while (len >= 3 * (blk)) {                                                 \
        uint64_t c1 = 0, c2 = 0;                                               \
        const uint8_t *end = p + (blk);                                        \
        do {                                                                   \
            c = crc_hw_word(c, p);                                             \
            c1 = crc_hw_word(c1, p + (blk));                                   \
            c2 = crc_hw_word(c2, p + 2 * (blk));                               \
            p += 8;                                                            \
        } while (p < end);                                                     \
        c = crc_shift(z, (uint32_t)c) ^ c1;                                    \
        c = crc_shift(z, (uint32_t)c) ^ c2;                                    \
        p += 2 * (blk);                                                        \
        len -= 3 * (blk);                                                      \
    }

__attribute__((target("sse4.2"))) static uint32_t
crc_hw(uint32_t crc, const uint8_t *p, size_t len)
{
    uint64_t c = crc;
    CRC_HW_3WAY(CRC_LONG, zeros_long)
    CRC_HW_3WAY(CRC_SHORT, zeros_short)
    while (len >= 8) {
        c = crc_hw_word(c, p);
        p += 8;
        len -= 8;
    }
    while (len--)
        c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
    return (uint32_t)c;
}
#endif

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            table[t][i] =
                (table[t - 1][i] >> 8) ^ table[0][table[t - 1][i] & 0xff];
#if defined(__x86_64__)
    __builtin_cpu_init();
    have_hw = __builtin_cpu_supports("sse4.2");
    zeros_tables(zeros_long, CRC_LONG);
    zeros_tables(zeros_short, CRC_SHORT);
#endif
}

uint32_t sl_crc32c(uint32_t crc, const void *buf, size_t len)
{
    pthread_once(&once, crc_init);
    crc = ~crc;
#if defined(__x86_64__)
    if (have_hw)
        return ~crc_hw(crc, buf, len);
#endif
    return ~crc_sw(crc, buf, len);
}
