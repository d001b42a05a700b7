// See include/QuantizedDotKernels.h for the layouts and the per-block formulas.
// AVX-512 with VNNI: vpdpbusd (u8×s8, four products summed into each 32-bit lane, no
// saturation), a group of 4 blocks per 64-byte register. AVX2: vpmaddubsw + vpmaddwd, a group
// in two 32-byte registers of 2 blocks each; every 16-bit partial stays far below saturation
// (|Q4 pair| ≤ 2·15·127; Q8_0 uses |w|·sign(x, w): |pair| ≤ 2·128·127 = 32512, so each half
// is widened to 32 bits on its own). Both give exact integer block sums.
//
// Register tile: R weight rows × T activation rows. Per group of 4 blocks each weight row is
// loaded and unpacked once and its scales converted once, then used for all T activation
// rows; each activation row's scales are spread once and used for all R weight rows. Every
// (weight row, activation row) pair keeps its own accumulators and sees exactly the same
// operations in the same order whatever R and T are (the tile only decides which pairs share
// loads), so an output never depends on the batch it was computed in, on its place in the
// tile or on the number of threads.
//
// Per pair and group: acc += float(Σ q·q_x per block, spread over the block's lanes) · spread(d·d_x)
// and off += m·s_x (4 lanes, one per block); result = (sum of acc's lanes) + (sum of off's lanes).
#include "QuantizedDotKernels.h"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>

enum { KIND_Q4_0 = 0, KIND_Q4_1 = 1, KIND_Q8_0 = 2 };

#define INLINE static inline __attribute__((always_inline))

/// Sum of the 4 lanes.
INLINE float sum4(__m128 v) {
    __m128 h = _mm_add_ps(v, _mm_movehl_ps(v, v));
    return _mm_cvtss_f32(_mm_add_ss(h, _mm_movehdup_ps(h)));
}

/// Lanes 0..<t all ones, the others zero.
INLINE __m128 first_lanes(int t) {
    return _mm_castsi128_ps(_mm_cmpgt_epi32(_mm_set1_epi32(t), _mm_setr_epi32(0, 1, 2, 3)));
}
/// The t ≤ 4 Float16 at p as Float32, zeros past t (only the last group of a row has t < 4).
/// It reads 8 bytes whatever t is: the buffers are padded (see the header), and the lanes
/// past t are cleared after the load, so no narrower load forwards from a store.
INLINE __m128 half4(const uint16_t *p, int t) {
    __m128 v = _mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)p));
    return t == 4 ? v : _mm_and_ps(v, first_lanes(t));
}
INLINE __m128 float4(const float *p, int t) {
    __m128 v = _mm_loadu_ps(p);
    return t == 4 ? v : _mm_and_ps(v, first_lanes(t));
}

#if defined(__AVX512VNNI__) && defined(__AVX512BW__) && defined(__AVX512VL__)
// ---- AVX-512 VNNI: a group's 4 blocks in one register, block i in lanes 4i..4i+3. ----
typedef __m512 vfloat;
typedef __m512i vint;
/// A group of one weight row, unpacked to the unsigned bytes vpdpbusd takes: the low halves
/// (elements 0..15 of each block) and the high halves.
typedef struct { __m512i low, high; } wgroup;
enum { TILE_ROWS_1 = 4, TILE_ROWS = 4, TILE_COLUMNS = 2 };

INLINE __m512 spread(__m128 s) {
    const __m512i index = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
    return _mm512_permutexvar_ps(index, _mm512_castps128_ps512(s));
}

/// Loads 16·t bytes (a whole register when t = 4). Full groups use plain loads: masked loads
/// that miss the cache stall the stream of weight rows (measured 6× slower on Zen 4).
INLINE __m512i load_blocks(const void *p, int t) {
    if (t == 4) return _mm512_loadu_si512(p);
    return _mm512_maskz_loadu_epi8(((__mmask64)1 << (16 * t)) - 1, p);
}

INLINE wgroup load_group(int kind, const uint8_t *q, int t) {
    wgroup w;
    if (kind == KIND_Q8_0) {
        // Signed weights as unsigned u = w + 128 (xor of the sign bit); the 128·Σq_x this adds
        // is removed through s_x (offset −128·d). Lanes past t: u = 128 against x = 0.
        const __m512i bias = _mm512_set1_epi8((char)0x80);
        w.low = _mm512_xor_si512(load_blocks(q, t), bias);
        w.high = _mm512_xor_si512(load_blocks(q + 16 * t, t), bias);
    } else {
        const __m512i mask = _mm512_set1_epi8(0x0F);
        __m512i v = load_blocks(q, t);
        w.low = _mm512_and_si512(v, mask);
        w.high = _mm512_and_si512(_mm512_srli_epi16(v, 4), mask);
    }
    return w;
}

INLINE __m512i group_sums(int kind, wgroup w, const int8_t *x, int t) {
    (void)kind;
    __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w.low, load_blocks(x, t));
    return _mm512_dpbusd_epi32(s, w.high, load_blocks(x + 16 * t, t));
}

INLINE float reduce(__m512 acc) { return _mm512_reduce_add_ps(acc); }
INLINE __m512 vzero(void) { return _mm512_setzero_ps(); }
INLINE __m512 vcvt(__m512i v) { return _mm512_cvtepi32_ps(v); }
INLINE __m512 vmul(__m512 a, __m512 b) { return _mm512_mul_ps(a, b); }
INLINE __m512 vfma(__m512 a, __m512 b, __m512 c) { return _mm512_fmadd_ps(a, b, c); }
/// Q8_0's offset per block: −128·d for the bias of its unsigned form.
#define Q8_OFFSET 1

#else
// ---- AVX2: a group in two registers (blocks 0, 1 and blocks 2, 3); the two 8-lane integer
// sums are folded by vphaddd into one register, lanes (0 1 2 3 4 5 6 7) = blocks (0 0 2 2 1 1 3 3). ----
typedef __m256 vfloat;
typedef __m256i vint;
/// Q4: the low and high nibbles of blocks 0–1 and 2–3. Q8_0: the signed bytes of the low
/// halves of blocks 0–1 and 2–3, then the high halves.
typedef struct { __m256i a, b, c, d; } wgroup;
enum { TILE_ROWS_1 = 4, TILE_ROWS = 2, TILE_COLUMNS = 2 };

INLINE __m256 spread(__m128 s) {
    const __m256i index = _mm256_setr_epi32(0, 0, 2, 2, 1, 1, 3, 3);
    return _mm256_permutevar8x32_ps(_mm256_castps128_ps256(s), index);
}

/// Bytes [from, from + 32) of a span of n bytes at p, zero past n: 32, 16 or no bytes, since
/// spans are whole 16-byte block halves and from is 0 or 32.
INLINE __m256i load_span(const void *p, int n, int from) {
    if (n >= from + 32) return _mm256_loadu_si256((const __m256i *)((const int8_t *)p + from));
    if (n >= from + 16) return _mm256_zextsi128_si256(_mm_loadu_si128((const __m128i *)((const int8_t *)p + from)));
    return _mm256_setzero_si256();
}

INLINE wgroup load_group(int kind, const uint8_t *q, int t) {
    wgroup w;
    if (kind == KIND_Q8_0) {
        w.a = load_span(q, 16 * t, 0);
        w.b = load_span(q, 16 * t, 32);
        w.c = load_span(q + 16 * t, 16 * t, 0);
        w.d = load_span(q + 16 * t, 16 * t, 32);
    } else {
        const __m256i mask = _mm256_set1_epi8(0x0F);
        __m256i v01 = load_span(q, 16 * t, 0), v23 = load_span(q, 16 * t, 32);
        w.a = _mm256_and_si256(v01, mask);
        w.b = _mm256_and_si256(v23, mask);
        w.c = _mm256_and_si256(_mm256_srli_epi16(v01, 4), mask);
        w.d = _mm256_and_si256(_mm256_srli_epi16(v23, 4), mask);
    }
    return w;
}

/// 16-bit pair sums widened to 32 bits: 4 lanes per block.
INLINE __m256i widen(__m256i pairs) { return _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)); }
/// |w|·sign(x, w): every product w·x exact as u8×s8.
INLINE __m256i q8_products(__m256i w, __m256i x) { return widen(_mm256_maddubs_epi16(_mm256_abs_epi8(w), _mm256_sign_epi8(x, w))); }

INLINE __m256i group_sums(int kind, wgroup w, const int8_t *x, int t) {
    __m256i xl01 = load_span(x, 16 * t, 0), xl23 = load_span(x, 16 * t, 32);
    __m256i xh01 = load_span(x + 16 * t, 16 * t, 0), xh23 = load_span(x + 16 * t, 16 * t, 32);
    __m256i s01, s23;
    if (kind == KIND_Q8_0) {
        s01 = _mm256_add_epi32(q8_products(w.a, xl01), q8_products(w.c, xh01));
        s23 = _mm256_add_epi32(q8_products(w.b, xl23), q8_products(w.d, xh23));
    } else {
        s01 = widen(_mm256_add_epi16(_mm256_maddubs_epi16(w.a, xl01), _mm256_maddubs_epi16(w.c, xh01)));
        s23 = widen(_mm256_add_epi16(_mm256_maddubs_epi16(w.b, xl23), _mm256_maddubs_epi16(w.d, xh23)));
    }
    return _mm256_hadd_epi32(s01, s23);
}

INLINE float reduce(__m256 acc) { return sum4(_mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1))); }
INLINE __m256 vzero(void) { return _mm256_setzero_ps(); }
INLINE __m256 vcvt(__m256i v) { return _mm256_cvtepi32_ps(v); }
INLINE __m256 vmul(__m256 a, __m256 b) { return _mm256_mul_ps(a, b); }
INLINE __m256 vfma(__m256 a, __m256 b, __m256 c) { return _mm256_fmadd_ps(a, b, c); }
/// Q8_0's products are signed here: no offset.
#define Q8_OFFSET 0
#endif

/// One group (t blocks from block g) of an R × T tile.
INLINE void tile_group(int kind, int R, int T, int g, int t, const uint8_t *w, ptrdiff_t wStride, int32_t blocks,
                       const int8_t *x, ptrdiff_t xStride, vfloat acc[][TILE_COLUMNS], __m128 off[][TILE_COLUMNS]) {
    const ptrdiff_t quantBytes = (kind == KIND_Q8_0 ? 32 : 16) * (ptrdiff_t)blocks;
    vfloat xd[TILE_COLUMNS];
    __m128 xs[TILE_COLUMNS];
    _Pragma("clang loop unroll(full)")
    for (int c = 0; c < T; c++) {
        const float *scales = (const float *)(x + c * xStride + 32 * (ptrdiff_t)blocks);
        xd[c] = spread(float4(scales + g, t));
        xs[c] = float4(scales + blocks + g, t);
    }
    _Pragma("clang loop unroll(full)")
    for (int r = 0; r < R; r++) {
        const uint8_t *row = w + r * wStride;
        const uint16_t *d = (const uint16_t *)(row + quantBytes);
        wgroup q = load_group(kind, row + (kind == KIND_Q8_0 ? 32 : 16) * g, t);
        __m128 d4 = half4(d + g, t);
        vfloat ds = spread(d4);
        // Per-block offset m·s_x: Q4_1's min, −8·d for Q4_0, −128·d for the biased Q8_0.
        __m128 m = kind == KIND_Q4_1 ? half4(d + blocks + g, t) : _mm_mul_ps(d4, _mm_set1_ps(kind == KIND_Q4_0 ? -8.0f : -128.0f));
        _Pragma("clang loop unroll(full)")
        for (int c = 0; c < T; c++) {
            vint sums = group_sums(kind, q, x + c * xStride + 32 * g, t);
            acc[r][c] = vfma(vcvt(sums), vmul(ds, xd[c]), acc[r][c]);
            if (kind != KIND_Q8_0 || Q8_OFFSET) off[r][c] = _mm_fmadd_ps(m, xs[c], off[r][c]);
        }
    }
}

/// y[c·yStride + r] = weight row r · activation row c for r < R, c < T.
INLINE void tile(int kind, int R, int T, const uint8_t *w, ptrdiff_t wStride, int32_t blocks,
                 const int8_t *x, ptrdiff_t xStride, float *y, ptrdiff_t yStride) {
    vfloat acc[TILE_ROWS_1 > TILE_ROWS ? TILE_ROWS_1 : TILE_ROWS][TILE_COLUMNS];
    __m128 off[TILE_ROWS_1 > TILE_ROWS ? TILE_ROWS_1 : TILE_ROWS][TILE_COLUMNS];
    _Pragma("clang loop unroll(full)")
    for (int r = 0; r < R; r++)
        _Pragma("clang loop unroll(full)")
        for (int c = 0; c < T; c++) {
            acc[r][c] = vzero();
            off[r][c] = _mm_setzero_ps();
        }
    int32_t g = 0;
    for (; g + 4 <= blocks; g += 4) tile_group(kind, R, T, g, 4, w, wStride, blocks, x, xStride, acc, off);
    if (g < blocks) tile_group(kind, R, T, g, blocks - g, w, wStride, blocks, x, xStride, acc, off);
    _Pragma("clang loop unroll(full)")
    for (int r = 0; r < R; r++)
        _Pragma("clang loop unroll(full)")
        for (int c = 0; c < T; c++) y[c * yStride + r] = reduce(acc[r][c]) + sum4(off[r][c]);
}

/// Every row × every activation row, in tiles; `kind` is a constant in each caller.
INLINE void dot_tiles(int kind, const uint8_t *w, ptrdiff_t wStride, int32_t rows, int32_t blocks,
                      const int8_t *x, ptrdiff_t xStride, int32_t count, float *y, ptrdiff_t yStride) {
    if (count == 1) {
        // Decode: only weight rows to share the activation row's loads with.
        int32_t r = 0;
        for (; r + TILE_ROWS_1 <= rows; r += TILE_ROWS_1)
            tile(kind, TILE_ROWS_1, 1, w + r * wStride, wStride, blocks, x, xStride, y + r, yStride);
        for (; r < rows; r++) tile(kind, 1, 1, w + r * wStride, wStride, blocks, x, xStride, y + r, yStride);
        return;
    }
    int32_t r = 0;
    for (; r + TILE_ROWS <= rows; r += TILE_ROWS) {
        int32_t c = 0;
        for (; c + TILE_COLUMNS <= count; c += TILE_COLUMNS)
            tile(kind, TILE_ROWS, TILE_COLUMNS, w + r * wStride, wStride, blocks, x + c * xStride, xStride, y + c * yStride + r, yStride);
        for (; c < count; c++) tile(kind, TILE_ROWS, 1, w + r * wStride, wStride, blocks, x + c * xStride, xStride, y + c * yStride + r, yStride);
    }
    for (; r < rows; r++) {
        int32_t c = 0;
        for (; c + TILE_COLUMNS <= count; c += TILE_COLUMNS)
            tile(kind, 1, TILE_COLUMNS, w + r * wStride, wStride, blocks, x + c * xStride, xStride, y + c * yStride + r, yStride);
        for (; c < count; c++) tile(kind, 1, 1, w + r * wStride, wStride, blocks, x + c * xStride, xStride, y + c * yStride + r, yStride);
    }
}

void flash_quantized_dot_tile(int32_t kind, const void *weights, ptrdiff_t weightRowBytes, int32_t rows, int32_t blocks,
                              const void *activations, ptrdiff_t activationRowBytes, int32_t count,
                              float *y, ptrdiff_t yStride) {
    const uint8_t *w = (const uint8_t *)weights;
    const int8_t *x = (const int8_t *)activations;
    // One specialised copy per kind.
    switch (kind) {
    case KIND_Q4_0: dot_tiles(KIND_Q4_0, w, weightRowBytes, rows, blocks, x, activationRowBytes, count, y, yStride); break;
    case KIND_Q4_1: dot_tiles(KIND_Q4_1, w, weightRowBytes, rows, blocks, x, activationRowBytes, count, y, yStride); break;
    default: dot_tiles(KIND_Q8_0, w, weightRowBytes, rows, blocks, x, activationRowBytes, count, y, yStride); break;
    }
}


/// Offsets of a block's low and high halves in an activation row (see the header).
INLINE void half_offsets(int32_t b, int32_t blocks, ptrdiff_t *low, ptrdiff_t *high) {
    int32_t group = b >> 2, i = b & 3, t = blocks - 4 * group < 4 ? blocks - 4 * group : 4;
    *low = 128 * (ptrdiff_t)group + 16 * i;
    *high = 128 * (ptrdiff_t)group + 16 * t + 16 * i;
}

void flash_quantize_q8_row(const float *x, int32_t blocks, void *row) {
    int8_t *q = (int8_t *)row;
    float *d = (float *)(q + 32 * (ptrdiff_t)blocks), *s = d + blocks;
    for (int32_t b = 0; b < blocks; b++) {
        const float *v = x + 32 * (ptrdiff_t)b;
        ptrdiff_t low, high;
        half_offsets(b, blocks, &low, &high);
#if defined(__AVX512F__) && defined(__AVX512BW__)
        __m512 v0 = _mm512_loadu_ps(v), v1 = _mm512_loadu_ps(v + 16);
        __m512 a0 = _mm512_abs_ps(v0), a1 = _mm512_abs_ps(v1);
        // Any NaN or infinity (unordered or not below +inf) makes the block NaN.
        const __m512 inf = _mm512_set1_ps(__builtin_inff());
        int bad = _mm512_cmp_ps_mask(a0, inf, _CMP_NLT_UQ) | _mm512_cmp_ps_mask(a1, inf, _CMP_NLT_UQ);
        float amax = _mm512_reduce_max_ps(_mm512_max_ps(a0, a1));
#else
        __m256 v0 = _mm256_loadu_ps(v), v1 = _mm256_loadu_ps(v + 8), v2 = _mm256_loadu_ps(v + 16), v3 = _mm256_loadu_ps(v + 24);
        const __m256 sign = _mm256_set1_ps(-0.0f), inf = _mm256_set1_ps(__builtin_inff());
        __m256 a0 = _mm256_andnot_ps(sign, v0), a1 = _mm256_andnot_ps(sign, v1), a2 = _mm256_andnot_ps(sign, v2), a3 = _mm256_andnot_ps(sign, v3);
        int bad = _mm256_movemask_ps(_mm256_cmp_ps(a0, inf, _CMP_NLT_UQ)) | _mm256_movemask_ps(_mm256_cmp_ps(a1, inf, _CMP_NLT_UQ))
                | _mm256_movemask_ps(_mm256_cmp_ps(a2, inf, _CMP_NLT_UQ)) | _mm256_movemask_ps(_mm256_cmp_ps(a3, inf, _CMP_NLT_UQ));
        __m256 m = _mm256_max_ps(_mm256_max_ps(a0, a1), _mm256_max_ps(a2, a3));
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        float amax = _mm_cvtss_f32(_mm_max_ss(m4, _mm_movehdup_ps(m4)));
#endif
        if (bad) {
            _mm_storeu_si128((__m128i *)(q + low), _mm_setzero_si128());
            _mm_storeu_si128((__m128i *)(q + high), _mm_setzero_si128());
            d[b] = s[b] = __builtin_nanf("");
            continue;
        }
        float scale = amax / 127;
        // A scale that underflows to a subnormal would make 1/d infinite: such a block is below
        // Float32's resolution anyway and quantises to zero.
        float inverse = scale > 0 && __builtin_isfinite(1 / scale) ? 1 / scale : 0;
        // x·(1/d) rounded to nearest even (the default rounding mode of the conversions).
#if defined(__AVX512F__) && defined(__AVX512BW__)
        __m512 k = _mm512_set1_ps(inverse);
        __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, k)), q1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, k));
        _mm_storeu_si128((__m128i *)(q + low), _mm512_cvtsepi32_epi8(q0));
        _mm_storeu_si128((__m128i *)(q + high), _mm512_cvtsepi32_epi8(q1));
        int32_t sum = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
#else
        __m256 k = _mm256_set1_ps(inverse);
        __m256i q0 = _mm256_cvtps_epi32(_mm256_mul_ps(v0, k)), q1 = _mm256_cvtps_epi32(_mm256_mul_ps(v1, k));
        __m256i q2 = _mm256_cvtps_epi32(_mm256_mul_ps(v2, k)), q3 = _mm256_cvtps_epi32(_mm256_mul_ps(v3, k));
        // packs works within 128-bit lanes: reorder the 64-bit quarters back to element order.
        __m256i w01 = _mm256_permute4x64_epi64(_mm256_packs_epi32(q0, q1), 0xD8);
        __m256i w23 = _mm256_permute4x64_epi64(_mm256_packs_epi32(q2, q3), 0xD8);
        _mm_storeu_si128((__m128i *)(q + low), _mm_packs_epi16(_mm256_castsi256_si128(w01), _mm256_extracti128_si256(w01, 1)));
        _mm_storeu_si128((__m128i *)(q + high), _mm_packs_epi16(_mm256_castsi256_si128(w23), _mm256_extracti128_si256(w23, 1)));
        __m256i t = _mm256_add_epi32(_mm256_add_epi32(q0, q1), _mm256_add_epi32(q2, q3));
        __m128i t4 = _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
        t4 = _mm_add_epi32(t4, _mm_shuffle_epi32(t4, 0x4E));
        t4 = _mm_add_epi32(t4, _mm_shuffle_epi32(t4, 0xB1));
        int32_t sum = _mm_cvtsi128_si32(t4);
#endif
        d[b] = inverse == 0 ? 0 : scale;
        s[b] = d[b] * (float)sum;
    }
}
#endif
