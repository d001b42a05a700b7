import Foundation

/// Attention as PyTorch's math path computes it in Float32, written out with plain loops:
/// S = scale·QKᵀ, P = e^(S − rowmax)/rowsum (the max subtracted exactly, then a division),
/// O = P·V; backward dV = PᵀdO, dP = dO·Vᵀ, dS = P∘(dP − rowsum(P∘dP)), dQ = scale·dS·K,
/// dK = scale·dSᵀ·Q. Only causal masking and grouped heads. It is the Float32 baseline of the
/// 2× rule for cases where the kernels' own standard implementation shares the flash kernels'
/// numerics (the huge-logit tests): a textbook program that nothing in the package computes.
///
/// Each logit is rounded as an FMA machine rounds a dot product, one fused multiply-add per
/// term in order of d, with the scale applied to q first (as the flash kernels do) or to the
/// sum (`scaleAfterDot`, as the standard implementation's GEMM alpha does). At |s| ~ 10³ that
/// rounding (~10⁻³ absolute) dominates O's error and differs at random between the two
/// choices, which would turn a 2× comparison into a coin toss; with the logits rounded alike,
/// the comparison measures what comes after them: P and the products with it.
struct TextbookFloat32Attention {
    let batch: Int, queryLength: Int, keyLength: Int, queryHeads: Int, keyHeads: Int, headDim: Int
    let scale: Float
    let causal: Bool
    var scaleAfterDot = false

    private func qIndex(_ b: Int, _ i: Int, _ h: Int) -> Int { ((b * queryLength + i) * queryHeads + h) * headDim }
    private func kIndex(_ b: Int, _ j: Int, _ h: Int) -> Int { ((b * keyLength + j) * keyHeads + h) * headDim }
    private func visible(_ i: Int, _ j: Int) -> Bool { !causal || j <= i + keyLength - queryLength }

    /// P of one row (0 where masked).
    private func probabilities(_ q: [Float], _ k: [Float], _ b: Int, _ h: Int, _ i: Int) -> [Float] {
        let kvh = h / (queryHeads / keyHeads)
        var s = [Float](repeating: -.infinity, count: keyLength)
        for j in 0..<keyLength where visible(i, j) {
            var dot: Float = 0
            let queryScale = scaleAfterDot ? 1 : scale
            for d in 0..<headDim { dot = dot.addingProduct(q[qIndex(b, i, h) + d] * queryScale, k[kIndex(b, j, kvh) + d]) }
            s[j] = scaleAfterDot ? dot * scale : dot
        }
        let m = s.max() ?? -.infinity
        guard m > -.infinity else { return [Float](repeating: 0, count: keyLength) }
        let e = s.map { Foundation.exp($0 - m) }
        let total = e.reduce(0, +)
        return e.map { $0 / total }
    }

    func forward(q: [Float], k: [Float], v: [Float]) -> [Float] {
        var output = [Float](repeating: 0, count: q.count)
        for b in 0..<batch { for h in 0..<queryHeads { for i in 0..<queryLength {
            let p = probabilities(q, k, b, h, i), kvh = h / (queryHeads / keyHeads)
            for d in 0..<headDim {
                var sum: Float = 0
                for j in 0..<keyLength { sum += p[j] * v[kIndex(b, j, kvh) + d] }
                output[qIndex(b, i, h) + d] = sum
            }
        }}}
        return output
    }

    func backward(q: [Float], k: [Float], v: [Float], dO: [Float]) -> (query: [Float], key: [Float], value: [Float]) {
        var dq = [Float](repeating: 0, count: q.count)
        var dk = [Float](repeating: 0, count: k.count), dv = [Float](repeating: 0, count: v.count)
        for b in 0..<batch { for h in 0..<queryHeads { for i in 0..<queryLength {
            let p = probabilities(q, k, b, h, i), kvh = h / (queryHeads / keyHeads)
            let qi = qIndex(b, i, h)
            var dp = [Float](repeating: 0, count: keyLength)
            var rowDot: Float = 0
            for j in 0..<keyLength {
                for d in 0..<headDim { dp[j] += dO[qi + d] * v[kIndex(b, j, kvh) + d] }
                rowDot += p[j] * dp[j]
            }
            for j in 0..<keyLength {
                let ds = p[j] * (dp[j] - rowDot) * scale, kj = kIndex(b, j, kvh)
                for d in 0..<headDim {
                    dv[kj + d] += p[j] * dO[qi + d]
                    dq[qi + d] += ds * k[kj + d]
                    dk[kj + d] += ds * q[qi + d]
                }
            }
        }}}
        return (dq, dk, dv)
    }
}
