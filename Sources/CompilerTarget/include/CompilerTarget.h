// What the C compiler itself says about the vector target it builds for, under the same
// -march as the Swift code. Swift imports these integer macros as constants; a test checks
// that the ISA the package manifest chose (FlashCore's `VectorISA.compiled`) agrees with them,
// so a wrong guess in Package.swift cannot silently build the wrong register tiles.
#ifndef FLASH_COMPILER_TARGET_H
#define FLASH_COMPILER_TARGET_H

#if defined(__AVX512F__) && defined(__AVX512VL__) && defined(__AVX512BW__) && defined(__AVX512DQ__)
#define FLASH_CC_HAS_AVX512 1
#else
#define FLASH_CC_HAS_AVX512 0
#endif

#if defined(__AVX2__) && defined(__FMA__)
#define FLASH_CC_HAS_AVX2_FMA 1
#else
#define FLASH_CC_HAS_AVX2_FMA 0
#endif

#if defined(__ARM_NEON) || defined(__ARM_NEON__)
#define FLASH_CC_HAS_NEON 1
#else
#define FLASH_CC_HAS_NEON 0
#endif

#endif
