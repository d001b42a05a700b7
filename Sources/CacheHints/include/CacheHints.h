// Cache hints for the GEMM driver and the attention kernels' row packing, the one thing in
// FlashCore and FlashAttention that Swift cannot express: Swift has no prefetch (no builtin, no
// intrinsic outside the standard library), and an ordinary load of a line that misses holds up
// retirement where a prefetch does not. Header-only: Swift imports the static inline functions
// and LLVM inlines each into the caller as one `prefetcht1`/`prefetcht0` (x86) or
// `prfm pldl2keep`/`pldl1keep` (arm64) instruction. See FlashCore's `GEMMBlocking` ("A panels")
// and FlashAttention's `HeadRows.prefetch`.
#ifndef FLASH_CACHE_HINTS_H
#define FLASH_CACHE_HINTS_H

/// Asks the core to bring the cache line holding `address` into L2 (and the levels beyond) for
/// reading. A hint: it never faults, even for an address outside the mapped memory.
static inline __attribute__((always_inline)) void flash_prefetch_l2(const void *address) {
    __builtin_prefetch(address, 0, 2);
}

/// Asks for the cache line holding `address` in L1 (and every level beyond) for reading, for
/// data wanted within a few hundred cycles. A hint: it never faults.
static inline __attribute__((always_inline)) void flash_prefetch_l1(const void *address) {
    __builtin_prefetch(address, 0, 3);
}

#endif
