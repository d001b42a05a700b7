// Float16 ⇄ Float32 conversion of whole rows, for the half-precision KV cache. Swift converts
// a SIMD vector of Float16 lane by lane or four at a time through an out-of-line generic (and a
// plain loop one element per instruction; objdump of a release build), where the hardware has
// one instruction for 16 (AVX-512: vcvtph2ps zmm) or 8 (F16C: ymm). Header-only, like
// CacheHints: Swift imports the static inline functions and LLVM inlines them into the caller,
// compiled with the caller's -march (so the #if below sees the build's target features).
// Rounding Float32 → Float16 is to nearest, ties to even, as Swift's Float16(_:) rounds.
#ifndef FLASH_HALF_PRECISION_H
#define FLASH_HALF_PRECISION_H

#include <stdint.h>
#if defined(__F16C__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

/// dst[i] = Float32(src[i]) for i < n; src holds IEEE binary16 values.
static inline __attribute__((always_inline)) void flash_halves_to_floats(const uint16_t *src, float *dst, long n) {
    long i = 0;
#if defined(__AVX512F__)
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(src + i))));
#endif
#if defined(__F16C__)
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
#endif
    for (; i < n; i++) {
        _Float16 h;
        __builtin_memcpy(&h, src + i, sizeof h);
        dst[i] = (float)h;
    }
}

/// dst[i] = src[i] rounded to binary16 (nearest, ties to even; ±Inf past ±65504) for i < n.
static inline __attribute__((always_inline)) void flash_floats_to_halves(const float *src, uint16_t *dst, long n) {
    long i = 0;
#if defined(__AVX512F__)
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(dst + i), _mm512_cvtps_ph(_mm512_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
#endif
#if defined(__F16C__)
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
#endif
    for (; i < n; i++) {
        _Float16 h = (_Float16)src[i];
        __builtin_memcpy(dst + i, &h, sizeof h);
    }
}

#endif
