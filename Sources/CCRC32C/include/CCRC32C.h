#ifndef CCRC32C_H
#define CCRC32C_H
#include <stddef.h>
#include <stdint.h>

/// CRC-32C (Castagnoli), the checksum of every log record. `crc` is the running value: pass 0 for
/// a fresh checksum, or a previous result to continue over more bytes.
uint32_t tributary_crc32c(uint32_t crc, const void *data, size_t length);

/// The same checksum without SSE4.2: what other CPUs use, and what tests compare the fast one with.
uint32_t tributary_crc32c_portable(uint32_t crc, const void *data, size_t length);

#endif
