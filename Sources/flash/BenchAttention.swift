import ArgumentParser
import Foundation
import FlashCore
import FlashAttention

/// `flash bench attention`: time, GFLOP/s and peak memory of the standard and flash kernels.
struct BenchAttention: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attention",
        abstract: "Benchmark attention: standard vs flash, forward and forward+backward.",
        discussion: """
            With no shape flag, runs a sweep: B=1, H=8, head dim 64 and 128, causal and not, \
            N = 512…2048 (forward+backward up to 1024); GQA (32 query heads over 8 kv heads, head dim \
            128, N = 1024); decode (batch 8, one query against a 4096-key cache, 32/8 heads, head \
            dim 128). --full extends N to 16384 (standard and backward capped, see below), GQA to \
            N = 16384 and decode to a 32768-key cache. Any shape flag (--seq, --seq-q, --seq-k, \
            --batch, --heads, --kv-heads, --head-dim, --causal, --backward) runs that single case \
            instead (defaults: batch 1, 8 heads, head dim 64, N 1024).

            FLOPs: forward 4·B·Hq·D·(visible query–key pairs): Nq·Nk, or for the bottom-right \
            causal mask Σᵢ min(Nk, i + Nk − Nq + 1), which is N(N+1)/2 when Nq = Nk — the \
            "halved for causal" of FlashAttention's papers, counted exactly. Backward counts 2.5× \
            forward (FlashAttention's convention), so forward+backward is 3.5× forward. \
            "% peak" (JSON: fraction_of_peak, with peak_gflops) is GFLOP/s over the machine's fp32 \
            FMA peak on the same thread count (FMAPeak, measured once before the cases in the \
            build's native vector width, as flash bench gemm does). \
            Time: best of up to 5 runs after one warm-up run (at least 0.3 s of runs where a run \
            is short). Peak memory: the resident-set high-water mark the call adds beyond its \
            inputs (Linux /proc/self/clear_refs), measured on the warm-up run; it includes the \
            outputs (O, LSE, and dQ/dK/dV). A kernel that refuses a case (e.g. standard attention \
            needing more memory than the machine has) is reported as refused with its message.
            """)

    @Flag(name: .long, help: "Print JSON (a list of result objects) instead of a table.")
    var json = false
    @Flag(name: .long, help: "The full sweep (N up to 16384, decode cache up to 32768): minutes.")
    var full = false
    @Option(name: .long, help: "Only this implementation: flash or standard.")
    var impl: String?
    @Option(name: .long, help: "Batch size (single case).")
    var batch: Int?
    @Option(name: .long, help: "Sequence length of queries and keys (single case).")
    var seq: Int?
    @Option(name: .customLong("seq-q"), help: "Query length (single case).")
    var seqQ: Int?
    @Option(name: .customLong("seq-k"), help: "Key length (single case).")
    var seqK: Int?
    @Option(name: .long, help: "Query heads (single case).")
    var heads: Int?
    @Option(name: .customLong("kv-heads"), help: "Key/value heads (single case; default = heads).")
    var kvHeads: Int?
    @Option(name: .customLong("head-dim"), help: "Head dimension (single case).")
    var headDim: Int?
    @Flag(name: .long, help: "Causal mask (single case).")
    var causal = false
    @Flag(name: .long, help: "Time forward+backward instead of forward (single case).")
    var backward = false
    @Option(name: .long, help: "Threads (default: all cores, or FLASH_THREADS).")
    var threads: Int?

    func run() throws {
        let threadCount = threads ?? Parallel.defaultThreads
        try InvalidArgument.require(threadCount >= 1, "--threads", expected: "≥ 1", got: "\(threadCount)")
        var implementations = AttentionImplementation.allCases.reversed() as [AttentionImplementation]  // standard first
        if let impl {
            guard let chosen = AttentionImplementation(rawValue: impl) else {
                throw InvalidArgument("--impl", expected: "flash or standard", got: "'\(impl)'")
            }
            implementations = [chosen]
        }
        let singleCase = [batch, seq, seqQ, seqK, heads, kvHeads, headDim].contains { $0 != nil } || causal || backward
        let cases = try singleCase ? single(implementations, threads: threadCount)
            : AttentionBenchCase.sweep(full: full, implementations: implementations, threads: threadCount)
        PeakMemory.prepare()
        let peak = FMAPeak.measure(threads: threadCount)
        var results: [AttentionBenchResult] = []
        for (index, benchCase) in cases.enumerated() {
            FileHandle.standardError.write(Data("[\(index + 1)/\(cases.count)] \(benchCase.label)\n".utf8))
            var result = try benchCase.run()
            result.peakGflops = peak
            result.fractionOfPeak = result.gflops.map { $0 / peak }
            results.append(result)
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            encoder.keyEncodingStrategy = .convertToSnakeCase
            print(String(decoding: try encoder.encode(results), as: UTF8.self))
        } else {
            print(Bench.isaLine)
            print(String(format: "fp32 FMA peak, %d thread(s): %.1f GFLOP/s", threadCount, peak))
            AttentionBenchResult.printTable(results)
        }
    }

    private func single(_ implementations: [AttentionImplementation], threads: Int) throws -> [AttentionBenchCase] {
        let heads = self.heads ?? 8
        let shape = AttentionBenchCase(
            implementation: .flash, backward: backward, batch: batch ?? 1, heads: heads, kvHeads: kvHeads ?? heads,
            seqQ: seqQ ?? seq ?? 1024, seqK: seqK ?? seq ?? 1024, headDim: headDim ?? 64, causal: causal, threads: threads)
        for (name, value) in [("--batch", shape.batch), ("--heads", shape.heads), ("--kv-heads", shape.kvHeads),
                              ("--seq-q", shape.seqQ), ("--seq-k", shape.seqK), ("--head-dim", shape.headDim)] {
            try InvalidArgument.require(value >= 1, name, expected: "≥ 1", got: "\(value)")
        }
        try InvalidArgument.require(shape.heads % shape.kvHeads == 0, "--kv-heads", expected: "a divisor of --heads (\(shape.heads))", got: "\(shape.kvHeads)")
        return implementations.map { var c = shape; c.implementation = $0; return c }
    }
}
