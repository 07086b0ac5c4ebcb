/*
 * crc32c.h - CRC-32C (Castagnoli), as used by record batches.
 * Hardware (SSE4.2 crc32 instruction) when the CPU has it, else a table.
 */
#ifndef SL_CRC32C_H
#define SL_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Continue a CRC: start with crc = 0. @thread any */
uint32_t sl_crc32c(uint32_t crc, const void *buf, size_t len);

#endif
