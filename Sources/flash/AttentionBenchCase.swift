import Foundation
import FlashCore
import FlashAttention

/// One shape and algorithm `flash bench attention` measures.
struct AttentionBenchCase {
    var implementation: AttentionImplementation
    /// Time forward+backward rather than forward alone.
    var backward: Bool
    var batch: Int
    var heads: Int
    var kvHeads: Int
    var seqQ: Int
    var seqK: Int
    var headDim: Int
    var causal: Bool
    var threads: Int

    var pass: String { backward ? "forward+backward" : "forward" }
    var label: String {
        "\(implementation.rawValue) \(pass) B=\(batch) H=\(heads)/\(kvHeads) Nq=\(seqQ) Nk=\(seqK) D=\(headDim)\(causal ? " causal" : "")"
    }

    /// Query–key pairs the mask leaves visible, per batch entry and head.
    var visiblePairs: Int {
        guard causal else { return seqQ * seqK }
        return (0..<seqQ).reduce(0) { $0 + min(seqK, max(0, $1 + seqK - seqQ + 1)) }
    }

    /// 4·B·H·D·pairs forward (QKᵀ and PV, 2 FLOPs per multiply-add); backward 2.5× that.
    var flops: Double {
        let forward = 4 * Double(batch * heads * headDim) * Double(visiblePairs)
        return backward ? 3.5 * forward : forward
    }

    /// The default sweep (a few minutes on 2 cores with the fast kernels), or the full one.
    /// Caps keep the full sweep to tens of minutes: standard attention and backward passes stop
    /// at N = 8192 and 4096 (standard's S and P at N = 8192, 8 heads, are 2 GiB each).
    static func sweep(full: Bool, implementations: [AttentionImplementation], threads: Int) -> [AttentionBenchCase] {
        let lengths = full ? [512, 1024, 2048, 4096, 8192, 16384] : [512, 1024, 2048]
        let backwardLimit = full ? 4096 : 1024
        let standardLimit = full ? 8192 : 2048
        var cases: [AttentionBenchCase] = []
        func add(_ backward: Bool, batch: Int, heads: Int, kvHeads: Int, seqQ: Int, seqK: Int, headDim: Int, causal: Bool) {
            for implementation in implementations where implementation == .flash || max(seqQ, seqK) <= standardLimit || seqQ == 1 {
                cases.append(AttentionBenchCase(implementation: implementation, backward: backward, batch: batch, heads: heads, kvHeads: kvHeads,
                                                seqQ: seqQ, seqK: seqK, headDim: headDim, causal: causal, threads: threads))
            }
        }
        for headDim in [64, 128] {
            for causal in [false, true] {
                for n in lengths {
                    add(false, batch: 1, heads: 8, kvHeads: 8, seqQ: n, seqK: n, headDim: headDim, causal: causal)
                    if n <= backwardLimit { add(true, batch: 1, heads: 8, kvHeads: 8, seqQ: n, seqK: n, headDim: headDim, causal: causal) }
                }
            }
        }
        for n in full ? [1024, 4096, 16384] : [1024] {
            add(false, batch: 1, heads: 32, kvHeads: 8, seqQ: n, seqK: n, headDim: 128, causal: true)
        }
        for cache in full ? [4096, 8192, 16384, 32768] : [4096] {
            add(false, batch: 8, heads: 32, kvHeads: 8, seqQ: 1, seqK: cache, headDim: 128, causal: true)
        }
        return cases
    }

    /// A tensor of uniform values in [−1, 1) from a fixed LCG (the values do not affect timing,
    /// only keep the softmax well spread).
    private static func random(_ shape: [Int], seed: UInt64) throws -> Tensor {
        let tensor = try Tensor(zeros: shape)
        let pointer = tensor.floatPointer
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        for index in 0..<tensor.elementCount {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            pointer[index] = Float(state >> 40) * 0x1p-23 - 1
        }
        return tensor
    }

    func run() throws -> AttentionBenchResult {
        let query = try Self.random([batch, seqQ, heads, headDim], seed: 1)
        let key = try Self.random([batch, seqK, kvHeads, headDim], seed: 2)
        let value = try Self.random([batch, seqK, kvHeads, headDim], seed: 3)
        let outputGradient = backward ? try Self.random([batch, seqQ, heads, headDim], seed: 4) : nil
        let descriptor = AttentionDescriptor(causal: causal, implementation: implementation, threads: threads)
        func once() throws {
            let forward = try Attention.forward(query: query, key: key, value: value, descriptor: descriptor)
            if let outputGradient {
                _ = try Attention.backward(query: query, key: key, value: value, output: forward.output, logSumExp: forward.logSumExp,
                                           logSumExpResidual: forward.logSumExpResidual, outputGradient: outputGradient, descriptor: descriptor)
            }
        }
        var result = AttentionBenchResult(self)
        do {
            var start = DispatchTime.now().uptimeNanoseconds
            result.peakBytes = try PeakMemory.measure(once)
            var best = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
            var spent = 0.0
            for _ in 0..<5 where best < 2000 && (spent < 300) {
                start = DispatchTime.now().uptimeNanoseconds
                try once()
                let milliseconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
                best = min(best, milliseconds)
                spent += milliseconds
            }
            result.ms = best
            result.gflops = flops / (best * 1e6)
        } catch {
            result.status = "refused"
            result.error = "\(error)"
        }
        return result
    }
}

/// One row of `flash bench attention`'s output (JSON keys in snake_case).
struct AttentionBenchResult: Codable {
    var impl: String
    var pass: String
    var batch: Int
    var heads: Int
    var kvHeads: Int
    var seqQ: Int
    var seqK: Int
    var headDim: Int
    var causal: Bool
    var threads: Int
    var flops: Double
    /// "ok", or "refused" with `error` holding the kernel's message.
    var status = "ok"
    var error: String?
    var ms: Double?
    var gflops: Double?
    var peakBytes: Int?
    /// The fp32 FMA peak on `threads` threads (`FMAPeak`), GFLOP/s.
    var peakGflops: Double?
    /// `gflops / peakGflops`: the fraction of the honest peak the kernel reaches.
    var fractionOfPeak: Double?
    var isa = Bench.isa

    init(_ benchCase: AttentionBenchCase) {
        impl = benchCase.implementation.rawValue
        pass = benchCase.pass
        batch = benchCase.batch
        heads = benchCase.heads
        kvHeads = benchCase.kvHeads
        seqQ = benchCase.seqQ
        seqK = benchCase.seqK
        headDim = benchCase.headDim
        causal = benchCase.causal
        threads = benchCase.threads
        flops = benchCase.flops
    }

    static func printTable(_ results: [AttentionBenchResult]) {
        func pad(_ text: String, _ width: Int) -> String { String(repeating: " ", count: max(0, width - text.count)) + text }
        let widths = [9, 17, 3, 4, 4, 6, 6, 4, 7, 10, 8, 7, 9]
        print(["impl", "pass", "B", "H", "Hkv", "Nq", "Nk", "D", "causal", "ms", "GFLOP/s", "% peak", "peak MiB"]
            .enumerated().map { pad($1, widths[$0]) }.joined(separator: " "))
        for r in results {
            let time: String = r.ms.map { String(format: "%.2f", $0) } ?? r.status
            let rate: String = r.gflops.map { String(format: "%.1f", $0) } ?? "-"
            let ofPeak: String = r.fractionOfPeak.map { String(format: "%.0f%%", 100 * $0) } ?? "-"
            let memory: String = r.peakBytes.map { String(format: "%.1f", Double($0) / 1_048_576) } ?? "-"
            var cells: [String] = [r.impl, r.pass, "\(r.batch)", "\(r.heads)", "\(r.kvHeads)", "\(r.seqQ)", "\(r.seqK)"]
            cells += ["\(r.headDim)", r.causal ? "yes" : "no", time, rate, ofPeak, memory]
            print(cells.enumerated().map { pad($1, widths[$0]) }.joined(separator: " "))
            if let error = r.error { print("    \(error)") }
        }
    }
}
