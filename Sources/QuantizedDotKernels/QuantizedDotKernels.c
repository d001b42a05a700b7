// See include/QuantizedDotKernels.h for the layouts and the per-block formulas.
// AVX-512 with VNNI: vpdpbusd (u8×s8, four products summed into each 32-bit lane, no
// saturation), 4 blocks per 64-byte register. AVX2: vpmaddubsw + vpmaddwd, 2 blocks per
// 32-byte register; every 16-bit partial stays far below saturation (|Q4 pair| ≤ 2·15·127,
// Q8_0 uses |w|·sign(x, w): |pair| ≤ 2·128·127 = 32512). Both give exact integer block sums;
// the block scales are applied in Float32 per lane, in a fixed order for a given binary.
#include "QuantizedDotKernels.h"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>

#if defined(__AVX512VNNI__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#define FLASH_VNNI 1
#endif

static inline const int8_t *act_q(const void *a) { return (const int8_t *)a; }
static inline const float *act_d(const void *a, int32_t blocks) { return (const float *)((const int8_t *)a + 32 * (ptrdiff_t)blocks); }

/// Sum of the 4 lanes.
static inline float sum4(__m128 v) {
    __m128 h = _mm_add_ps(v, _mm_movehl_ps(v, v));
    return _mm_cvtss_f32(_mm_add_ss(h, _mm_movehdup_ps(h)));
}

#ifdef FLASH_VNNI
/// Per-block scale d·d_x of up to 4 blocks spread over 16 lanes (block i in lanes 4i..4i+3).
static inline __m512 spread4(__m128 s) {
    const __m512i index = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
    return _mm512_permutexvar_ps(index, _mm512_castps128_ps512(s));
}

/// One group of t ≤ 4 blocks: lanes 4i..4i+3 hold block i's integer sum of products.
static inline __m512i q4_group(const uint8_t *q, const int8_t *x, int t) {
    const __m512i low = _mm512_set1_epi8(0x0F);
    __mmask64 k = t == 4 ? ~(__mmask64)0 : (((__mmask64)1 << (16 * t)) - 1);
    __m512i v = _mm512_maskz_loadu_epi8(k, q);
    __m512i xl = _mm512_maskz_loadu_epi8(k, x);
    __m512i xh = _mm512_maskz_loadu_epi8(k, x + 16 * t);
    __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_and_si512(v, low), xl);
    return _mm512_dpbusd_epi32(s, _mm512_and_si512(_mm512_srli_epi16(v, 4), low), xh);
}

static inline __m512i q8_group(const int8_t *q, const int8_t *x, int t) {
    // Signed weights as unsigned u = w + 128 (xor of the sign bit); the 128·Σq_x this adds is
    // removed through s_x per block.
    const __m512i bias = _mm512_set1_epi8((char)0x80);
    __mmask64 k = t == 4 ? ~(__mmask64)0 : (((__mmask64)1 << (16 * t)) - 1);
    __m512i wl = _mm512_xor_si512(_mm512_maskz_loadu_epi8(k, q), bias);
    __m512i wh = _mm512_xor_si512(_mm512_maskz_loadu_epi8(k, q + 16 * t), bias);
    __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wl, _mm512_maskz_loadu_epi8(k, x));
    return _mm512_dpbusd_epi32(s, wh, _mm512_maskz_loadu_epi8(k, x + 16 * t));
}

static inline __m128 load_half4(const uint16_t *p, int t) {
    return _mm_cvtph_ps(_mm_maskz_loadu_epi16((__mmask8)((1u << t) - 1), p));
}
static inline __m128 load_float4(const float *p, int t) {
    return _mm_maskz_loadu_ps((__mmask8)((1u << t) - 1), p);
}

/// kind: 0 = Q4_0, 1 = Q4_1, 2 = Q8_0.
static inline __attribute__((always_inline)) float dot_row(int kind, const void *quants, const uint16_t *scales, const uint16_t *mins,
                            int32_t blocks, const void *activation) {
    const int8_t *xq = act_q(activation);
    const float *xd = act_d(activation, blocks), *xs = xd + blocks;
    __m512 acc = _mm512_setzero_ps();
    __m128 offsets = _mm_setzero_ps();
    for (int32_t g = 0; g < blocks; g += 4) {
        int t = blocks - g < 4 ? blocks - g : 4;
        __m512i sums = kind == 2 ? q8_group((const int8_t *)quants + 32 * g, xq + 32 * g, t)
                                 : q4_group((const uint8_t *)quants + 16 * g, xq + 32 * g, t);
        __m128 d = load_half4(scales + g, t);
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), spread4(_mm_mul_ps(d, load_float4(xd + g, t))), acc);
        // Per-block offset m·s_x: Q4_1's min, −8·d for Q4_0, −128·d for the biased Q8_0.
        __m128 m = kind == 1 ? load_half4(mins + g, t) : _mm_mul_ps(d, _mm_set1_ps(kind == 0 ? -8.0f : -128.0f));
        offsets = _mm_fmadd_ps(m, load_float4(xs + g, t), offsets);
    }
    return _mm512_reduce_add_ps(acc) + sum4(offsets);
}

#else  // AVX2

/// Two blocks' integer sums in 8 lanes (block 0 in lanes 0..3, block 1 in 4..7), from 16-bit
/// pair sums.
static inline __m256i widen_pairs(__m256i pairs) { return _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)); }

static inline __m256i q4_pair(const uint8_t *q, const int8_t *xl, const int8_t *xh) {
    const __m256i low = _mm256_set1_epi8(0x0F);
    __m256i v = _mm256_loadu_si256((const __m256i *)q);
    __m256i a = _mm256_maddubs_epi16(_mm256_and_si256(v, low), _mm256_loadu_si256((const __m256i *)xl));
    __m256i b = _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v, 4), low), _mm256_loadu_si256((const __m256i *)xh));
    return widen_pairs(_mm256_add_epi16(a, b));
}

static inline __m128i q4_single(const uint8_t *q, const int8_t *xl, const int8_t *xh) {
    const __m128i low = _mm_set1_epi8(0x0F);
    __m128i v = _mm_loadu_si128((const __m128i *)q);
    __m128i a = _mm_maddubs_epi16(_mm_and_si128(v, low), _mm_loadu_si128((const __m128i *)xl));
    __m128i b = _mm_maddubs_epi16(_mm_and_si128(_mm_srli_epi16(v, 4), low), _mm_loadu_si128((const __m128i *)xh));
    return _mm_madd_epi16(_mm_add_epi16(a, b), _mm_set1_epi16(1));
}

/// |w|·sign(x, w) keeps every product w·x exact and each 16-bit pair sum ≤ 2·128·127.
static inline __m256i q8_pair(const int8_t *wl, const int8_t *wh, const int8_t *xl, const int8_t *xh) {
    __m256i l = _mm256_loadu_si256((const __m256i *)wl), h = _mm256_loadu_si256((const __m256i *)wh);
    __m256i a = _mm256_maddubs_epi16(_mm256_abs_epi8(l), _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)xl), l));
    __m256i b = _mm256_maddubs_epi16(_mm256_abs_epi8(h), _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)xh), h));
    return _mm256_add_epi32(widen_pairs(a), widen_pairs(b));
}

static inline __m128i q8_single(const int8_t *wl, const int8_t *wh, const int8_t *xl, const int8_t *xh) {
    __m128i l = _mm_loadu_si128((const __m128i *)wl), h = _mm_loadu_si128((const __m128i *)wh);
    __m128i a = _mm_maddubs_epi16(_mm_abs_epi8(l), _mm_sign_epi8(_mm_loadu_si128((const __m128i *)xl), l));
    __m128i b = _mm_maddubs_epi16(_mm_abs_epi8(h), _mm_sign_epi8(_mm_loadu_si128((const __m128i *)xh), h));
    const __m128i one = _mm_set1_epi16(1);
    return _mm_add_epi32(_mm_madd_epi16(a, one), _mm_madd_epi16(b, one));
}

static inline float half(uint16_t h) { return _cvtsh_ss(h); }

static inline __attribute__((always_inline)) float dot_row(int kind, const void *quants, const uint16_t *scales, const uint16_t *mins,
                            int32_t blocks, const void *activation) {
    const int8_t *xq = act_q(activation);
    const float *xd = act_d(activation, blocks), *xs = xd + blocks;
    const __m256i spread = _mm256_set_epi32(1, 1, 1, 1, 0, 0, 0, 0);
    __m256 acc = _mm256_setzero_ps();
    __m128 single = _mm_setzero_ps();
    float offsets = 0;
    for (int32_t g = 0; g < blocks; g += 4) {
        int t = blocks - g < 4 ? blocks - g : 4;
        const int8_t *x = xq + 32 * g;
        int i = 0;
        for (; i + 2 <= t; i += 2) {
            const int8_t *xl = x + 16 * i, *xh = x + 16 * t + 16 * i;
            __m256i sums = kind == 2 ? q8_pair((const int8_t *)quants + 32 * g + 16 * i, (const int8_t *)quants + 32 * g + 16 * t + 16 * i, xl, xh)
                                     : q4_pair((const uint8_t *)quants + 16 * (g + i), xl, xh);
            int b = g + i;
            __m128 s2 = _mm_setr_ps(half(scales[b]) * xd[b], half(scales[b + 1]) * xd[b + 1], 0, 0);
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums), _mm256_permutevar8x32_ps(_mm256_castps128_ps256(s2), spread), acc);
        }
        if (i < t) {
            const int8_t *xl = x + 16 * i, *xh = x + 16 * t + 16 * i;
            __m128i sums = kind == 2 ? q8_single((const int8_t *)quants + 32 * g + 16 * i, (const int8_t *)quants + 32 * g + 16 * t + 16 * i, xl, xh)
                                     : q4_single((const uint8_t *)quants + 16 * (g + i), xl, xh);
            int b = g + i;
            single = _mm_fmadd_ps(_mm_cvtepi32_ps(sums), _mm_set1_ps(half(scales[b]) * xd[b]), single);
        }
    }
    // Per-block offset m·s_x: Q4_1's min, −8·d for Q4_0 (none for Q8_0, whose products are signed).
    if (kind != 2) {
        for (int32_t b = 0; b < blocks; b++) {
            float m = kind == 1 ? half(mins[b]) : -8.0f * half(scales[b]);
            offsets = __builtin_fmaf(m, xs[b], offsets);
        }
    }
    __m128 folded = _mm_add_ps(_mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1)), single);
    return sum4(folded) + offsets;
}
#endif

void flash_q4_dot_rows(const uint8_t *quants, const uint16_t *scales, const uint16_t *mins, int32_t blocks,
                       const void *activations, ptrdiff_t activationRowBytes, int32_t count,
                       float *y, ptrdiff_t yStride) {
    // The kind is a constant in each loop, so each gets its own specialised copy of dot_row.
    if (mins) {
        for (int32_t t = 0; t < count; t++)
            y[t * yStride] = dot_row(1, quants, scales, mins, blocks, (const int8_t *)activations + t * activationRowBytes);
    } else {
        for (int32_t t = 0; t < count; t++)
            y[t * yStride] = dot_row(0, quants, scales, NULL, blocks, (const int8_t *)activations + t * activationRowBytes);
    }
}

void flash_q8_0_dot_rows(const int8_t *quants, const uint16_t *scales, int32_t blocks,
                         const void *activations, ptrdiff_t activationRowBytes, int32_t count,
                         float *y, ptrdiff_t yStride) {
    for (int32_t t = 0; t < count; t++) {
        y[t * yStride] = dot_row(2, quants, scales, NULL, blocks, (const int8_t *)activations + t * activationRowBytes);
    }
}

#endif
