// One-thread timing of the flash attention kernel by the thread's CPU time, for a machine shared
// with other work (wall-clock ratios there measure the load, not the kernels); pairs with
// scripts/sdpa_cputime.py, which times PyTorch SDPA the same way. Used for the "CPU-time"
// rows of BENCHMARKS.md ("Attention on AVX-512 and AVX2 (issue 9)"). Compile it together with
// the FlashCore and FlashAttention sources as one module, with the flags of those targets:
//
//   rm -rf /tmp/attn-cpu && mkdir /tmp/attn-cpu && cp Sources/FlashCore/*.swift Sources/FlashAttention/*.swift /tmp/attn-cpu/ \
//     && sed -i '/^import FlashCore$/d; /^import CacheHints$/d' /tmp/attn-cpu/*.swift \
//     && swiftc -parse-as-library -Ounchecked -wmo -Xcc -march=x86-64-v3 -D FLASH_ISA_AVX2 -import-objc-header Sources/CacheHints/include/CacheHints.h \
//          -o /tmp/attention_cputime /tmp/attn-cpu/*.swift scripts/attention_cputime.swift
//   /tmp/attention_cputime 1024 64 0 0        # N D causal(0/1) backward(0/1) [runs]
//   ATEN_CPU_CAPABILITY=avx2 python3 scripts/sdpa_cputime.py 1024 64 0 0
//
// (-march=native -D FLASH_ISA_AVX512 for the AVX-512 build.) B = 1, H = 8, Float32 inputs
// uniform in [−1, 1); best of the runs; FLOPs counted as `flash bench attention` counts them.
import Foundation

@main
enum AttentionCPUTime {
    static func random(_ shape: [Int], seed: UInt64) throws -> Tensor {
        let tensor = try Tensor(zeros: shape)
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        for index in 0..<tensor.elementCount {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            tensor.floatPointer[index] = Float(state >> 40) * 0x1p-23 - 1
        }
        return tensor
    }

    static func cpuSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    static func main() throws {
        let args = CommandLine.arguments
        guard args.count >= 5, let n = Int(args[1]), let d = Int(args[2]) else {
            print("usage: attention_cputime N D causal(0/1) backward(0/1) [runs]"); exit(2)
        }
        let causal = args[3] == "1", backward = args[4] == "1", runs = args.count > 5 ? Int(args[5]) ?? 5 : 5
        let heads = 8
        let q = try random([1, n, heads, d], seed: 1), k = try random([1, n, heads, d], seed: 2)
        let v = try random([1, n, heads, d], seed: 3), dO = try random([1, n, heads, d], seed: 4)
        let descriptor = AttentionDescriptor(causal: causal, implementation: .flash, threads: 1)
        var best = Double.infinity
        for _ in 0..<runs {
            let start = cpuSeconds()
            let f = try Attention.forward(query: q, key: k, value: v, descriptor: descriptor)
            if backward {
                _ = try Attention.backward(query: q, key: k, value: v, output: f.output, logSumExp: f.logSumExp,
                                           logSumExpResidual: f.logSumExpResidual, outputGradient: dO, descriptor: descriptor)
            }
            best = min(best, cpuSeconds() - start)
        }
        let pairs = causal ? Double(n) * Double(n + 1) / 2 : Double(n) * Double(n)
        let flops = 4 * Double(heads * d) * pairs * (backward ? 3.5 : 1)
        let peak = FMAPeak.measure(threads: 1)
        print(String(format: "flash %@ N %d D %d causal %d backward %d: %.2f ms, %.1f GFLOP/s, %.0f%% of the %.1f GFLOP/s FMA peak (1 thread, CPU time)",
                     VectorISA.compiled.rawValue, n, d, causal ? 1 : 0, backward ? 1 : 0, best * 1e3, flops / best / 1e9,
                     100 * flops / best / 1e9 / peak, peak))
    }
}
