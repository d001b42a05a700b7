/// The vector instruction set the package was compiled for, and the vector type the kernels
/// use on it.
///
/// Register tiles are a property of the compilation target, not of one machine: a tile that
/// fills AVX-512's 32 × 16-float registers needs twice the 16 ymm registers of AVX2 and
/// spills there. `Package.swift` works out the ISA from `FLASH_MARCH` (`-march=native` reads
/// the host's CPU flags) and passes it as a compilation condition; this type turns that into
/// the vector type and register-file size the kernels size their tiles from.
///
/// | ISA | `FloatVector` | vector registers | floats per register |
/// |---|---|---|---|
/// | AVX-512 (x86-64-v4) | `SIMD16<Float>` | 32 zmm | 16 |
/// | AVX2 + FMA (x86-64-v3) | `SIMD8<Float>` | 16 ymm | 8 |
/// | NEON (arm64) | `SIMD4<Float>` | 32 q | 4 |
/// | generic | `SIMD4<Float>` | 16 (SSE2 xmm) | 4 |
public enum VectorISA: String, Sendable, CaseIterable, Codable {
    /// x86-64 with AVX-512 (F, VL, BW, DQ): 16-float zmm registers.
    case avx512 = "AVX-512"
    /// x86-64 with AVX2 and FMA: 8-float ymm registers.
    case avx2 = "AVX2+FMA"
    /// arm64's Advanced SIMD: 4-float q registers.
    case neon = "NEON"
    /// No known vector extension: the compiler's baseline (SSE2 on x86-64).
    case generic = "generic"

    /// The ISA this binary was built for.
    public static let compiled: VectorISA = {
        #if FLASH_ISA_AVX512
        return .avx512
        #elseif FLASH_ISA_AVX2
        return .avx2
        #elseif FLASH_ISA_NEON
        return .neon
        #else
        return .generic
        #endif
    }()

    /// Floats in one native vector register.
    public var floatLanes: Int {
        switch self {
        case .avx512: return 16
        case .avx2: return 8
        case .neon, .generic: return 4
        }
    }

    /// Architectural vector registers the compiler can allocate.
    public var vectorRegisters: Int {
        switch self {
        case .avx512, .neon: return 32
        case .avx2, .generic: return 16
        }
    }

    /// Whether the target has a fused multiply-add (one rounding per `a·b + c`).
    public var hasFusedMultiplyAdd: Bool { self != .generic }
}

/// The native float vector of the compiled ISA: one register wide (see `VectorISA`).
#if FLASH_ISA_AVX512
/// The native float vector of the compiled ISA: 16 floats, one AVX-512 zmm register.
public typealias FloatVector = SIMD16<Float>
#elseif FLASH_ISA_AVX2
/// The native float vector of the compiled ISA: 8 floats, one AVX2 ymm register.
public typealias FloatVector = SIMD8<Float>
#else
/// The native float vector of the compiled ISA: 4 floats, one NEON q or SSE xmm register.
public typealias FloatVector = SIMD4<Float>
#endif
