import Foundation
import FlashCore

extension StandardAttention {
    /// O = softmax(S)·V with S materialised; writes `output` and `logSumExp`.
    static func forward(_ problem: AttentionProblem, output: HeadRows, logSumExp: LogSumExpRows) throws {
        try checkMemory(problem, matrices: 1)
        let offsets = matrixOffsets(problem)
        let scores = UnsafeMutablePointer<Float>.allocate(capacity: max(offsets.last!, 1))
        defer { scores.deallocate() }
        let items = self.items(problem)
        let threads = problem.threads
        // Parallel over items when there are enough of them, else inside each GEMM and softmax.
        let outer = items.count >= threads ? threads : 1
        let inner = items.count >= threads ? 1 : threads
        let d = problem.headDim
        Parallel.forEachDynamic(items.count, threads: outer) { itemIndex in
            let (s, kvh) = items[itemIndex]
            let nq = problem.queryLengths[s], nk = problem.keyLengths[s]
            let k = UnsafeMutablePointer<Float>.allocate(capacity: max(nk * d, 1))
            let v = UnsafeMutablePointer<Float>.allocate(capacity: max(nk * d, 1))
            let q = UnsafeMutablePointer<Float>.allocate(capacity: max(nq * d, 1))
            let o = UnsafeMutablePointer<Float>.allocate(capacity: max(nq * d, 1))
            defer { k.deallocate(); v.deallocate(); q.deallocate(); o.deallocate() }
            gather(problem.key, sequence: s, start: problem.keyStarts[s], count: nk, head: kvh, headDim: d, into: k)
            gather(problem.value, sequence: s, start: problem.keyStarts[s], count: nk, head: kvh, headDim: d, into: v)
            if let traffic = problem.traffic {
                traffic.add(.key, read: nk * d * problem.keyElementBytes)
                traffic.add(.value, read: nk * d * problem.valueElementBytes)
                // Per query head: S written by the GEMM, read and rewritten as P by the softmax,
                // read by the second GEMM.
                for _ in 0..<problem.groupSize {
                    traffic.add(.query, read: nq * d * problem.queryElementBytes)
                    traffic.add(.scores, read: 2 * nq * nk * 4, written: 2 * nq * nk * 4)
                    traffic.add(.output, written: nq * d * 4)
                    traffic.add(.logSumExp, written: nq * 8)
                }
            }
            for h in kvh * problem.groupSize..<(kvh + 1) * problem.groupSize {
                let p = scores + offsets[s * problem.queryHeads + h]
                gather(problem.query, sequence: s, start: problem.queryStarts[s], count: nq, head: h, headDim: d, into: q)
                GEMM.multiplyUnchecked(transposeA: false, transposeB: true, m: nq, n: nk, k: d, alpha: problem.scale,
                                       a: q, lda: d, b: k, ldb: d, beta: 0, c: p, ldc: max(nk, 1), threads: inner)
                Parallel.forEach(nq, threads: inner) { i in
                    let row = p + i * nk
                    problem.prepareLogits(row, count: nk, sequence: s, head: h, query: i, key: 0,
                                          line: .alongKeys, fullyVisible: false)
                    // P = e^(s − m)/l, keeping m and l apart for the LSE's split (see
                    // `AttentionMath.splitLogSumExp`).
                    let m = nk == 0 ? -Float.infinity : VectorMath.max(row, count: nk)
                    var sum: Float = 0
                    if m == -.infinity {
                        row.update(repeating: 0, count: nk)
                    } else {
                        VectorMath.map(row, count: nk) { VectorMath.exp($0 - m) }
                        sum = VectorMath.sum(row, count: nk)
                        VectorMath.scale(row, count: nk, by: 1 / sum)
                    }
                    logSumExp.store(maximum: m, sum: sum, sequence: s, token: problem.queryStarts[s] + i, head: h)
                    if problem.dropoutProbability > 0 {
                        problem.applyDropout(row, count: nk, sequence: s, head: h, query: i, key: 0, line: .alongKeys)
                    }
                }
                GEMM.multiplyUnchecked(transposeA: false, transposeB: false, m: nq, n: d, k: nk, alpha: 1,
                                       a: p, lda: max(nk, 1), b: v, ldb: d, beta: 0, c: o, ldc: d, threads: inner)
                for i in 0..<nq {
                    output.store(o + i * d, count: d, at: output.offset(sequence: s, token: problem.queryStarts[s] + i, head: h))
                }
            }
        }
    }
}
