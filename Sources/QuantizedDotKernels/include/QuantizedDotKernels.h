// Integer block dot products of ggml weight blocks with 8-bit activations, the one piece of the
// quantised products that is written in C: Swift cannot reach the instructions it needs
// (vpdpbusd / vpmaddubsw + vpmaddwd). Swift's SIMD widening conversions (UInt8 → Int16 → Int32)
// compile to one scalar move per lane, so a u8×s8 dot written with them runs at scalar speed;
// see README ("Quantised products with 8-bit activations"). Everything around these kernels
// (activation quantisation, weight layout, threading, batching) is Swift, in ModelFormats.
//
// Layouts (built by ModelFormats' PackedRows and Q8Activations):
// - A weight row of B blocks of 32: `quants` then B Float16 scales d (and B Float16 mins m for
//   Q4_1). Q4: 16 bytes per block in ggml's order (low nibble of byte j = element j, high
//   nibble = element j + 16). Q8_0: 32 signed bytes per block, in the activation order below.
// - An activation row: 32·B signed bytes, then B floats d_x, then B floats s_x = d_x·Σq. The
//   bytes go in groups of 4 blocks (the last group may have t < 4): first elements 0..15 of
//   each block of the group, then elements 16..31 of each, so block i of a t-block group has
//   its low half at 16·i and its high half at 16·t + 16·i from the group's start.
//
// Per block, with exact integer sums: Q4_1 gives d·d_x·Σ q·q_x + m·s_x; Q4_0 gives
// d·d_x·Σ q·q_x − 8·d·s_x; Q8_0 gives d·d_x·Σ q·q_x. The kernel is written once per ISA and
// used for every row of a mat-vec and of a batched mat-mat alike (register tiles of weight rows
// × activation rows), so a row's result never depends on the batch it was computed in.
#ifndef FLASH_QUANTIZED_DOT_KERNELS_H
#define FLASH_QUANTIZED_DOT_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/// Weight row layouts: `kind` 0 = Q4_0, 1 = Q4_1, 2 = Q8_0; rows `weightRowBytes` apart from
/// `weights`, each its quants, then its B Float16 scales (then, Q4_1, its B Float16 mins).
/// For r < rows, c < count: y[c·yStride + r] = weight row r · activation row c, activation rows
/// `activationRowBytes` apart from `activations`. The kernel may read up to 16 bytes past the
/// last weight row and past the last activation row (callers pad both buffers). Each (r, c) is computed by the same
/// operations in the same order whatever `rows` and `count` are (batch-invariant).
void flash_quantized_dot_tile(int32_t kind, const void *weights, ptrdiff_t weightRowBytes, int32_t rows, int32_t blocks,
                              const void *activations, ptrdiff_t activationRowBytes, int32_t count,
                              float *y, ptrdiff_t yStride);

/// Quantises 32·blocks floats at x into one activation row (layout above), exactly as
/// ModelFormats' `Q8Activations` specifies: per block d = max|x|/127, q = x·(1/d) rounded to
/// nearest even, s = d·Σq; a block with a NaN or infinity gets q = 0 and d = s = NaN. In C
/// because Swift compiles the per-element Float → Int8 conversion of a SIMD32 to spills and
/// scalar code (31% of a batched decode step in `perf`).
void flash_quantize_q8_row(const float *x, int32_t blocks, void *row);

#endif
