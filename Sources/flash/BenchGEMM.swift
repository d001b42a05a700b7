import ArgumentParser
import Dispatch
import FlashCore
import Foundation

/// `flash bench gemm`: GEMM throughput in GFLOP/s on 1 thread and on all threads, next to the
/// machine's fp32 FMA peak (`FMAPeak`, in the build's native vector width). scripts/bench_gemm.py runs numpy
/// (OpenBLAS) on the same cases and prints the ratios.
struct BenchGEMM: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gemm",
        abstract: "GEMM GFLOP/s for square and attention-tile shapes, and the fp32 FMA peak.",
        discussion: """
            Without --m/--n/--k it runs the standard set: squares 256, 512, 1024, 2048 and the \
            attention tiles 64×64×64 (also with B transposed, as in Q·Kᵀ), 128×1024×64, \
            1024×64×1024, each on 1 thread and on all threads (or --threads). Times are the \
            best of 10 samples of at least 10 ms after a warm-up. --json prints a list: one \
            object per case (m, n, k, threads, transpose_a, transpose_b, cpu_time, gflops, \
            seconds, isa), then one per thread count (threads, peak_gflops, isa). The first \
            line of the table names the vector ISA the binary was built for.
            """)

    @Option(help: "Rows of C (with --n and --k: run this one case).") var m: Int?
    @Option(help: "Columns of C.") var n: Int?
    @Option(help: "Inner dimension.") var k: Int?
    @Option(help: "Thread count (default: 1 and all cores).") var threads: Int?
    @Flag(help: "Transpose A (stored k×m) in the single case.") var transposeA = false
    @Flag(help: "Transpose B (stored n×k) in the single case.") var transposeB = false
    @Flag(help: "Write JSON (a list of result objects) instead of a table.") var json = false
    @Flag(help: ArgumentHelp("Time by the thread's CPU time instead of wall time (1 thread only).",
                             discussion: "On a machine shared with other work, CPU time leaves out the time the thread waited for a core."))
    var cpuTime = false

    struct Case {
        let m, n, k: Int
        var transposeA = false
        var transposeB = false
    }

    struct Result: Encodable {
        let m, n, k, threads: Int
        let transpose_a, transpose_b: Bool
        let cpu_time: Bool
        let gflops: Double
        let seconds: Double
        var isa = Bench.isa
    }

    struct Peak: Encodable {
        let threads: Int
        let peak_gflops: Double
        var isa = Bench.isa
    }

    func validate() throws {
        let given = [m, n, k].compactMap { $0 }
        if !given.isEmpty && given.count != 3 {
            throw ValidationError("--m, --n and --k go together (give all three or none)")
        }
        for (name, value) in [("--m", m), ("--n", n), ("--k", k)] {
            if let value, value < 1 || value > 16384 { throw ValidationError("\(name) must be in 1...16384, got \(value)") }
        }
        if let threads, threads < 1 || threads > 1024 { throw ValidationError("--threads must be in 1...1024, got \(threads)") }
        if cpuTime && threads != 1 { throw ValidationError("--cpu-time needs --threads 1 (it reads one thread's clock)") }
    }

    func run() throws {
        Self.clock = cpuTime ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC
        let all = ProcessInfo.processInfo.activeProcessorCount
        let threadCounts = threads.map { [$0] } ?? (all > 1 ? [1, all] : [1])
        let cases: [Case]
        if let m, let n, let k {
            cases = [Case(m: m, n: n, k: k, transposeA: transposeA, transposeB: transposeB)]
        } else {
            cases = [256, 512, 1024, 2048].map { Case(m: $0, n: $0, k: $0) } + [
                Case(m: 64, n: 64, k: 64), Case(m: 64, n: 64, k: 64, transposeB: true),
                Case(m: 128, n: 1024, k: 64), Case(m: 1024, n: 64, k: 1024),
            ]
        }
        if !json { print(Bench.isaLine) }
        var peaks: [Peak] = []
        for t in threadCounts {
            peaks.append(Peak(threads: t, peak_gflops: FMAPeak.measure(threads: t)))
            if !json { print(String(format: "fp32 FMA peak, %d thread(s): %.1f GFLOP/s", t, peaks.last!.peak_gflops)) }
        }
        if !json { print("     m      n      k  op     threads  GFLOP/s  % of peak") }
        var results: [Result] = []
        for c in cases {
            for t in threadCounts {
                let seconds = try Self.time(c, threads: t)
                let gflops = 2 * Double(c.m) * Double(c.n) * Double(c.k) / seconds / 1e9
                results.append(Result(m: c.m, n: c.n, k: c.k, threads: t, transpose_a: c.transposeA,
                                      transpose_b: c.transposeB, cpu_time: cpuTime, gflops: gflops, seconds: seconds))
                if !json {
                    let peak = peaks.first { $0.threads == t }!.peak_gflops
                    let op = (c.transposeA ? "T" : "N") + (c.transposeB ? "T" : "N")
                    print(String(format: "%6d %6d %6d  %@  %7d  %7.1f  %8.0f%%", c.m, c.n, c.k, op, t, gflops,
                                 100 * gflops / peak))
                }
            }
        }
        if json {
            // One list: the GEMM results, then one peak object per thread count.
            var items: [String] = []
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            for r in results { items.append(String(decoding: try encoder.encode(r), as: UTF8.self)) }
            for p in peaks { items.append(String(decoding: try encoder.encode(p), as: UTF8.self)) }
            print("[\n  " + items.joined(separator: ",\n  ") + "\n]")
        }
    }

    /// Best time of one multiply over 10 samples after a warm-up; each sample repeats the
    /// multiply enough times to last about 10 ms. The best of many short samples is the
    /// figure least disturbed by other processes on a shared machine.
    static func time(_ c: Case, threads: Int) throws -> Double {
        // Values in [-1, 1) from a 64-bit LCG: the system generator makes a syscall per value.
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func random(_ count: Int) -> [Float] {
            (0..<count).map { _ in
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                return Float(state >> 40) / Float(1 << 23) - 1
            }
        }
        let a = random(c.m * c.k), b = random(c.k * c.n)
        var out = [Float](repeating: 0, count: c.m * c.n)
        let lda = c.transposeA ? c.m : c.k
        let ldb = c.transposeB ? c.k : c.n
        func once() throws {
            try GEMM.multiply(transposeA: c.transposeA, transposeB: c.transposeB, m: c.m, n: c.n, k: c.k,
                              a: a, lda: lda, b: b, ldb: ldb, c: &out, ldc: c.n, threads: threads)
        }
        let start = now()
        try once()
        let estimate = max(now() - start, 1e-7)
        let repetitions = max(1, Int(0.01 / estimate))
        var best = Double.infinity
        for _ in 0..<10 {
            let begin = now()
            for _ in 0..<repetitions { try once() }
            best = min(best, (now() - begin) / Double(repetitions))
        }
        return best
    }

    /// The clock `now()` reads: monotonic wall time, or the calling thread's CPU time.
    nonisolated(unsafe) static var clock = CLOCK_MONOTONIC

    static func now() -> Double {
        var time = timespec()
        clock_gettime(clock, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) * 1e-9
    }
}
