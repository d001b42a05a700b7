import Foundation
import FlashCore

extension StandardAttention {
    /// dQ, dK, dV with P and dP materialised. P is recomputed from S and the forward's LSE
    /// and its residual (P = e^((S − LSE) − residual)); dS = P∘(dP − rowsum(dO∘O)) is formed
    /// in dP's matrix.
    static func backward(
        _ problem: AttentionProblem, output: HeadRows, logSumExp: LogSumExpRows, outputGradient: HeadRows,
        queryGradient: HeadRows, keyGradient: HeadRows, valueGradient: HeadRows
    ) throws {
        try checkMemory(problem, matrices: 2)
        let offsets = matrixOffsets(problem)
        let probabilities = UnsafeMutablePointer<Float>.allocate(capacity: max(offsets.last!, 1))
        let probabilityGradients = UnsafeMutablePointer<Float>.allocate(capacity: max(offsets.last!, 1))
        defer { probabilities.deallocate(); probabilityGradients.deallocate() }
        let items = self.items(problem)
        let threads = problem.threads
        let outer = items.count >= threads ? threads : 1
        let inner = items.count >= threads ? 1 : threads
        let d = problem.headDim
        let dropout = problem.dropoutProbability > 0
        Parallel.forEachDynamic(items.count, threads: outer) { itemIndex in
            let (s, kvh) = items[itemIndex]
            let nq = problem.queryLengths[s], nk = problem.keyLengths[s]
            let qStart = problem.queryStarts[s], kStart = problem.keyStarts[s]
            let buffers = UnsafeMutablePointer<Float>.allocate(capacity: max(4 * nk * d + 4 * nq * d + nq, 1))
            defer { buffers.deallocate() }
            let k = buffers, v = k + nk * d, dk = v + nk * d, dv = dk + nk * d
            let q = dv + nk * d, dO = q + nq * d, o = dO + nq * d, dq = o + nq * d, rowDots = dq + nq * d
            dk.update(repeating: 0, count: 2 * nk * d)
            gather(problem.key, sequence: s, start: kStart, count: nk, head: kvh, headDim: d, into: k)
            gather(problem.value, sequence: s, start: kStart, count: nk, head: kvh, headDim: d, into: v)
            if let traffic = problem.traffic {
                traffic.add(.key, read: nk * d * problem.keyElementBytes)
                traffic.add(.value, read: nk * d * problem.valueElementBytes)
                traffic.add(.keyGradient, written: nk * d * 4)
                traffic.add(.valueGradient, written: nk * d * 4)
                // Per query head: S and dP written by two GEMMs; the row pass reads both and
                // rewrites them as P and dS; three GEMMs read P once and dS twice.
                for _ in 0..<problem.groupSize {
                    traffic.add(.query, read: nq * d * problem.queryElementBytes)
                    traffic.add(.outputGradient, read: nq * d * outputGradient.tensor.elementType.byteSize)
                    traffic.add(.output, read: nq * d * output.tensor.elementType.byteSize)
                    traffic.add(.logSumExp, read: nq * (logSumExp.residual == nil ? 4 : 8))
                    traffic.add(.scores, read: 5 * nq * nk * 4, written: 4 * nq * nk * 4)
                    traffic.add(.queryGradient, written: nq * d * 4)
                }
            }
            for h in kvh * problem.groupSize..<(kvh + 1) * problem.groupSize {
                let p = probabilities + offsets[s * problem.queryHeads + h]
                let dp = probabilityGradients + offsets[s * problem.queryHeads + h]
                gather(problem.query, sequence: s, start: qStart, count: nq, head: h, headDim: d, into: q)
                gather(outputGradient, sequence: s, start: qStart, count: nq, head: h, headDim: d, into: dO)
                gather(output, sequence: s, start: qStart, count: nq, head: h, headDim: d, into: o)
                for i in 0..<nq { rowDots[i] = VectorMath.dot(dO + i * d, o + i * d, count: d) }
                GEMM.multiplyUnchecked(transposeA: false, transposeB: true, m: nq, n: nk, k: d, alpha: problem.scale,
                                       a: q, lda: d, b: k, ldb: d, beta: 0, c: p, ldc: max(nk, 1), threads: inner)
                GEMM.multiplyUnchecked(transposeA: false, transposeB: true, m: nq, n: nk, k: d, alpha: 1,
                                       a: dO, lda: d, b: v, ldb: d, beta: 0, c: dp, ldc: max(nk, 1), threads: inner)
                Parallel.forEach(nq, threads: inner) { i in
                    let pRow = p + i * nk, dpRow = dp + i * nk
                    let derivative = UnsafeMutablePointer<Float>.allocate(capacity: max(nk, 1))
                    defer { derivative.deallocate() }
                    problem.prepareLogits(pRow, count: nk, sequence: s, head: h, query: i, key: 0,
                                          line: .alongKeys, fullyVisible: false, derivative: derivative)
                    let lse = logSumExp.load(sequence: s, token: qStart + i, head: h)
                    // A fully masked row (LSE = −Inf) has P = 0 and no gradient.
                    let shift = lse.high == -.infinity ? Float.infinity : lse.high
                    VectorMath.map(pRow, count: nk) { VectorMath.exp(($0 - shift) - lse.low) }
                    if dropout {
                        problem.applyDropout(dpRow, count: nk, sequence: s, head: h, query: i, key: 0, line: .alongKeys)
                    }
                    let rowDot = rowDots[i]
                    for j in 0..<nk { dpRow[j] = pRow[j] * (dpRow[j] - rowDot) * derivative[j] }
                    if dropout {
                        problem.applyDropout(pRow, count: nk, sequence: s, head: h, query: i, key: 0, line: .alongKeys)
                    }
                }
                // dV += P_dropᵀ·dO, dQ = dS·K, dK += dSᵀ·Q.
                GEMM.multiplyUnchecked(transposeA: true, transposeB: false, m: nk, n: d, k: nq, alpha: 1,
                                       a: p, lda: max(nk, 1), b: dO, ldb: d, beta: 1, c: dv, ldc: d, threads: inner)
                GEMM.multiplyUnchecked(transposeA: false, transposeB: false, m: nq, n: d, k: nk, alpha: 1,
                                       a: dp, lda: max(nk, 1), b: k, ldb: d, beta: 0, c: dq, ldc: d, threads: inner)
                GEMM.multiplyUnchecked(transposeA: true, transposeB: false, m: nk, n: d, k: nq, alpha: 1,
                                       a: dp, lda: max(nk, 1), b: q, ldb: d, beta: 1, c: dk, ldc: d, threads: inner)
                for i in 0..<nq {
                    queryGradient.store(dq + i * d, count: d, at: queryGradient.offset(sequence: s, token: qStart + i, head: h))
                }
            }
            for j in 0..<nk {
                keyGradient.store(dk + j * d, count: d, at: keyGradient.offset(sequence: s, token: kStart + j, head: kvh))
                valueGradient.store(dv + j * d, count: d, at: valueGradient.offset(sequence: s, token: kStart + j, head: kvh))
            }
        }
    }
}
