// swift-tools-version:6.0
import PackageDescription
import Foundation

// Vector code: Swift's SIMD types only become real AVX2/AVX-512/NEON instructions when the
// compiler may target them. By default we build for the host CPU (`-march=native`, like
// llama.cpp's GGML_NATIVE), so `swift build` on any machine gets that machine's best vector
// unit and the binary runs there. Set FLASH_MARCH to build for another target instead, e.g.
// `FLASH_MARCH=x86-64-v3 swift build` for a portable AVX2/FMA binary, or `FLASH_MARCH=none`
// for the compiler's default (slow generic vector code, but runs on any CPU of the arch).
let environment = ProcessInfo.processInfo.environment
let march = environment["FLASH_MARCH"] ?? "native"

// The vector ISA the build targets decides the kernels' vector type and register tiles
// (`VectorISA` in FlashCore). Swift's `#if` cannot ask the compiler which target features are
// on, so the manifest works it out from the same setting that picks `-march` and passes it as
// a compilation condition: FLASH_ISA_AVX512 (16 floats × 32 registers), FLASH_ISA_AVX2
// (8 × 16), FLASH_ISA_NEON (4 × 32), or none (generic). `-march=native` reads the host CPU's
// flags; the x86-64 levels map directly; FLASH_ISA=avx512|avx2|neon|generic overrides for any
// other -march name (a test checks the choice against the C compiler's own macros).
func hostCPUFlags() -> Set<Substring> {
    guard let cpuinfo = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
          let line = cpuinfo.split(separator: "\n").first(where: { $0.hasPrefix("flags") })
    else { return [] }
    return Set(line.split(separator: " "))
}
func vectorISA() -> String {
    if let forced = environment["FLASH_ISA"] { return forced }
    #if arch(arm64)
    return "neon"  // NEON is part of every arm64 target, native or not.
    #else
    switch march {
    case "x86-64-v4": return "avx512"
    case "x86-64-v3": return "avx2"
    case "native":
        let flags = hostCPUFlags()
        if flags.isSuperset(of: ["avx512f", "avx512vl", "avx512bw", "avx512dq"]) { return "avx512" }
        if flags.isSuperset(of: ["avx2", "fma"]) { return "avx2" }
        return "generic"
    default: return "generic"
    }
    #endif
}
let isa = vectorISA()
let isaDefines: [SwiftSetting] = ["avx512": ["FLASH_ISA_AVX512"], "avx2": ["FLASH_ISA_AVX2"], "neon": ["FLASH_ISA_NEON"]][isa, default: []]
    .map { .define($0) }
let vectorFlags: [SwiftSetting] = (march == "none"
    ? []
    : [.unsafeFlags(["-Xcc", "-march=\(march)"])]) + isaDefines
// The numeric kernels (core and attention) drop Swift's overflow and bounds checks in release
// builds: their inputs are validated once at the public API, and the hot loops index raw
// pointers. Everything that parses files or user input keeps the checks (-O).
let kernelSettings: [SwiftSetting] = vectorFlags + [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]
let optimise: [SwiftSetting] = vectorFlags

let package = Package(
    name: "FlashTransformer",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "flash", targets: ["flash"]),
        .library(name: "FlashCore", targets: ["FlashCore"]),
        .library(name: "FlashAttention", targets: ["FlashAttention"]),
        .library(name: "Transformer", targets: ["Transformer"]),
        .library(name: "ModelFormats", targets: ["ModelFormats"]),
        .library(name: "Estimates", targets: ["Estimates"]),
        .library(name: "Serving", targets: ["Serving"]),
        .library(name: "ServingHTTP", targets: ["ServingHTTP"]),
        .library(name: "Distributed", targets: ["Distributed"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // `swift package generate-documentation`: the DocC catalogs in Sources/*/*.docc.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.4.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.4.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.60.0"),
    ],
    targets: [
        // The C compiler's own view of the vector target (macros only), for the test that checks
        // the ISA chosen above.
        .target(name: "CompilerTarget", cSettings: march == "none" ? [] : [.unsafeFlags(["-march=\(march)"])]),
        // The integer block dot products of the quantised products (vpdpbusd / vpmaddubsw),
        // which Swift cannot reach (README, "Quantised products with 8-bit activations"); the
        // Swift code uses it only on AVX2/AVX-512 builds and has a portable loop otherwise.
        .target(name: "QuantizedDotKernels",
                cSettings: march == "none" ? [] : [.unsafeFlags(["-march=\(march)", "-O3"])]),
        // The prefetch hint of the GEMM driver, which Swift cannot express (header-only; see
        // CacheHints.h and README, "GEMM").
        .target(name: "CacheHints"),
        // Float16 ⇄ Float32 rows in one instruction per 8 or 16 values (vcvtph2ps / vcvtps2ph),
        // for the half-precision KV cache (header-only; see HalfPrecision.h).
        .target(name: "HalfPrecision"),
        // Compute core: tensors, element types, GEMM, parallel loops, vector math.
        .target(name: "FlashCore", dependencies: ["CacheHints", "HalfPrecision"], swiftSettings: kernelSettings),
        // Attention: descriptor, standard and flash kernels (forward, backward, decode), masks.
        .target(name: "FlashAttention", dependencies: ["FlashCore", "CacheHints"], swiftSettings: kernelSettings),
        // Model file formats: safetensors, GGUF, tokenizers.
        .target(name: "ModelFormats", dependencies: ["FlashCore", "QuantizedDotKernels"], swiftSettings: optimise),
        // Distributed: the communicator protocol, Open MPI loaded at run time (dlopen, so nothing
        // links against libmpi), an in-process communicator over threads for tests, ring attention
        // over a communicator.
        .target(name: "Distributed", dependencies: ["FlashCore", "FlashAttention"], swiftSettings: optimise),
        // Transformer: layers (forward/backward pairs), models, optimizer, trainer, sampler, KV cache.
        .target(name: "Transformer", dependencies: ["FlashCore", "FlashAttention", "ModelFormats", "Distributed"],
                resources: [.copy("Corpus")], swiftSettings: optimise),
        // Estimates: parameter/FLOP/memory counts and the attention IO model.
        .target(name: "Estimates", dependencies: ["FlashCore", "FlashAttention", "Transformer"], swiftSettings: optimise),
        // Serving: block manager (paged KV cache, prefix caching), scheduler, engine.
        .target(name: "Serving", dependencies: ["FlashCore", "FlashAttention", "Transformer", "ModelFormats"], swiftSettings: optimise),
        // OpenAI-compatible HTTP server over the serving engine (Hummingbird 2, Prometheus metrics).
        .target(name: "ServingHTTP",
                dependencies: [
                    "FlashCore", "Transformer", "ModelFormats", "Serving",
                    .product(name: "Hummingbird", package: "hummingbird"),
                    .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                    .product(name: "Metrics", package: "swift-metrics"),
                    .product(name: "Prometheus", package: "swift-prometheus"),
                    .product(name: "Logging", package: "swift-log"),
                    .product(name: "NIOCore", package: "swift-nio"),
                ],
                swiftSettings: optimise),
        .executableTarget(
            name: "flash",
            dependencies: [
                "FlashCore", "FlashAttention", "Transformer", "ModelFormats", "Estimates", "Serving", "ServingHTTP", "Distributed",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: optimise),
        .testTarget(name: "FlashCoreTests", dependencies: ["FlashCore", "CompilerTarget"], swiftSettings: vectorFlags),
        .testTarget(name: "FlashAttentionTests", dependencies: ["FlashAttention", "ModelFormats", "Distributed"],
                    resources: [.copy("Fixtures")], swiftSettings: vectorFlags),
        .testTarget(name: "ModelFormatsTests", dependencies: ["ModelFormats"], swiftSettings: vectorFlags),
        .testTarget(name: "TransformerTests", dependencies: ["Transformer"],
                    resources: [.copy("Fixtures")], swiftSettings: vectorFlags),
        .testTarget(name: "DistributedTests", dependencies: ["Distributed", "FlashCore", "Transformer", "Estimates"], swiftSettings: vectorFlags),
        .testTarget(name: "ServingHTTPTests",
                    dependencies: ["ServingHTTP", "Serving", .product(name: "HummingbirdTesting", package: "hummingbird")],
                    swiftSettings: vectorFlags),
        .testTarget(name: "ServingTests", dependencies: ["Serving", "Transformer", "ModelFormats"], swiftSettings: vectorFlags),
        .testTarget(name: "EstimatesTests", dependencies: ["Estimates", "Transformer"],
                    resources: [.copy("Fixtures")], swiftSettings: vectorFlags),
    ],
    // Swift 5 language mode: the kernels share raw buffers between Dispatch workers by design
    // (each worker writes a disjoint range), which Swift 6's strict Sendable checking rejects.
    swiftLanguageModes: [.v5]
)
