/*
 * hash.c - FNV-1a (Fowler/Noll/Vo, variant 1a: xor the byte, then
 * multiply by the prime) and the key partitioner. See hash.h.
 */
#include "protocol/hash.h"

uint32_t sl_fnv1a32(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 16777619u;
    }
    return h;
}

uint64_t sl_fnv1a64(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    return h;
}

int32_t sl_partition_for_key(const void *key, size_t key_len,
                             int32_t partitions)
{
    if (partitions <= 0)
        return -1;
    return (int32_t)(sl_fnv1a32(key, key_len) % (uint32_t)partitions);
}
