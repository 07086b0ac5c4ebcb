/*
 * hash.h - FNV-1a hashes and the key partitioner, shared by the client
 * library and the broker.
 *
 * A producer that chooses the partition of a keyed record (libsluice) and
 * the broker when it chooses one for a client that did not (STOMP SEND
 * with a key header) must agree, or one key's records end up in two
 * partitions and lose their order. So both call sl_partition_for_key.
 * @thread any (pure functions)
 */
#ifndef SL_HASH_H
#define SL_HASH_H

#include <stddef.h>
#include <stdint.h>

/* 32-bit FNV-1a of n bytes ("" = 0x811c9dc5). */
uint32_t sl_fnv1a32(const void *p, size_t n);
/* 64-bit FNV-1a of n bytes ("" = 0xcbf29ce484222325). */
uint64_t sl_fnv1a64(const void *p, size_t n);

/*
 * The partition of a record with this key: 32-bit FNV-1a of the key bytes
 * modulo partitions, as docs/protocol.md specifies for every client.
 * -1 when partitions <= 0.
 */
int32_t sl_partition_for_key(const void *key, size_t key_len,
                             int32_t partitions);

#endif
