import Dispatch

/// The machine's fp32 fused-multiply-add peak, measured: the figure GEMM and attention
/// benchmarks state their "% of peak" against.
///
/// Each thread runs `chains` independent chains of FMAs on the native `FloatVector` (one
/// register each), so the FMA units never wait for a result: a chain's next FMA needs the
/// previous one's (latency ~4 cycles), and the units retire 1–2 per cycle, so latency ×
/// throughput = 4–8 chains keep them busy; 12 leave a margin and, with the two operands, still
/// fit AVX2's 16 ymm registers (12 + 2 = 14; a chain of `SIMD16<Float>` there would take two
/// registers each and spill, which is how an earlier version reported a "peak" below what
/// numpy reaches). The compiled loop is 12 register-to-register `vfmadd` per iteration.
public enum FMAPeak {
    /// Independent accumulator chains per thread.
    public static let chains = 12

    /// GFLOP/s of fp32 FMAs on `threads` threads (2 flops per lane per FMA): best of
    /// `repeats` runs of `iterations` steps of all chains on every thread.
    public static func measure(threads: Int, iterations: Int = 1 << 18, repeats: Int = 5) -> Double {
        var best = Double.infinity
        for _ in 0..<max(1, repeats) {
            let begin = DispatchTime.now().uptimeNanoseconds
            Parallel.forEach(threads, threads: threads) { worker in
                keep(chainsOfFMAs(iterations: iterations, seed: Float(worker) * 1e-3))
            }
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - begin) * 1e-9)
        }
        let flops = Double(threads) * Double(iterations) * Double(chains * FloatVector.scalarCount) * 2
        return flops / best / 1e9
    }

    /// `iterations` steps of 12 independent FMA chains, c ← x + c·y (y < 1 keeps the values
    /// finite and normal).
    @inline(never)
    static func chainsOfFMAs(iterations: Int, seed: Float) -> Float {
        typealias V = FloatVector
        let x = V(repeating: 0.5 + seed), y = V(repeating: 0.999)
        var c0 = V(repeating: 1), c1 = V(repeating: 2), c2 = V(repeating: 3), c3 = V(repeating: 4)
        var c4 = V(repeating: 5), c5 = V(repeating: 6), c6 = V(repeating: 7), c7 = V(repeating: 8)
        var c8 = V(repeating: 9), c9 = V(repeating: 10), c10 = V(repeating: 11), c11 = V(repeating: 12)
        for _ in 0..<iterations {
            c0 = x.addingProduct(c0, y); c1 = x.addingProduct(c1, y); c2 = x.addingProduct(c2, y)
            c3 = x.addingProduct(c3, y); c4 = x.addingProduct(c4, y); c5 = x.addingProduct(c5, y)
            c6 = x.addingProduct(c6, y); c7 = x.addingProduct(c7, y); c8 = x.addingProduct(c8, y)
            c9 = x.addingProduct(c9, y); c10 = x.addingProduct(c10, y); c11 = x.addingProduct(c11, y)
        }
        return (c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11).sum()
    }

    /// Keeps the compiler from dropping the chains' result.
    @inline(never)
    static func keep(_ value: Float) {
        if value == 12345.678 { print("") }
    }
}
