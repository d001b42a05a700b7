// Cache hints for the GEMM driver, the one thing in FlashCore that Swift cannot express: Swift
// has no prefetch (no builtin, no intrinsic outside the standard library), and an ordinary load
// of a line that misses holds up retirement where a prefetch does not. Header-only: Swift
// imports the static inline function and LLVM inlines it into the caller as one `prefetcht1`
// (x86) or `prfm pldl2keep` (arm64) instruction. See FlashCore's `GEMMBlocking` ("A panels").
#ifndef FLASH_CACHE_HINTS_H
#define FLASH_CACHE_HINTS_H

/// Asks the core to bring the cache line holding `address` into L2 (and the levels beyond) for
/// reading. A hint: it never faults, even for an address outside the mapped memory.
static inline __attribute__((always_inline)) void flash_prefetch_l2(const void *address) {
    __builtin_prefetch(address, 0, 2);
}

#endif
