import Foundation
import FlashAttention

/// A plain Float64 implementation of attention with every option, written as directly as
/// possible from the definitions (no tiling, no online softmax), independent of the kernels.
/// Tensors are contiguous [B, N, H, D] arrays of Double.
struct ReferenceAttention {
    var batch: Int, queryLength: Int, keyLength: Int, queryHeads: Int, keyHeads: Int, headDim: Int
    var scale: Double
    var causal = false
    var windowLeft: Int?
    var windowRight: Int?
    var softcap: Double?
    var alibiSlopes: [Double]?
    /// Full [B, Hq, Nq, Nk] bias and keep-mask (already broadcast).
    var bias: [Double]?
    var keep: [Bool]?
    var keyLengths: [Int]?
    var dropout: Double = 0
    var dropoutSeed: UInt64 = 0
    /// Added to the batch index for the dropout coordinates (packed sequences).
    var dropoutBatchOffset = 0

    func q(_ x: [Double], _ b: Int, _ i: Int, _ h: Int, _ d: Int) -> Double {
        x[((b * queryLength + i) * queryHeads + h) * headDim + d]
    }
    func k(_ x: [Double], _ b: Int, _ j: Int, _ h: Int, _ d: Int) -> Double {
        x[((b * keyLength + j) * keyHeads + h) * headDim + d]
    }

    func visible(_ b: Int, _ h: Int, _ i: Int, _ j: Int) -> Bool {
        let diagonal = i + keyLength - queryLength
        if causal && j > diagonal { return false }
        if let windowLeft, j < diagonal - windowLeft { return false }
        if let windowRight, j > diagonal + windowRight { return false }
        if let keyLengths, j >= keyLengths[b] { return false }
        if let keep, !keep[((b * queryHeads + h) * queryLength + i) * keyLength + j] { return false }
        return true
    }

    /// Logit and ∂logit/∂(q·k).
    func logit(_ dot: Double, _ b: Int, _ h: Int, _ i: Int, _ j: Int) -> (Double, Double) {
        var s = dot * scale
        var derivative = scale
        if let cap = softcap {
            let t = Foundation.tanh(s / cap)
            s = cap * t
            derivative = scale * (1 - t * t)
        }
        if let bias { s += bias[((b * queryHeads + h) * queryLength + i) * keyLength + j] }
        if let alibiSlopes { s -= alibiSlopes[h] * Double(abs(i + keyLength - queryLength - j)) }
        return (s, derivative)
    }

    func dropFactor(_ b: Int, _ h: Int, _ i: Int, _ j: Int) -> Double {
        guard dropout > 0 else { return 1 }
        return AttentionDropout.keeps(seed: dropoutSeed, batch: b + dropoutBatchOffset, head: h, query: i, key: j,
                                      probability: Float(dropout)) ? 1 / (1 - Double(Float(dropout))) : 0
    }

    /// P (undropped), logit derivatives and LSE of one row.
    func row(_ query: [Double], _ key: [Double], _ b: Int, _ h: Int, _ i: Int) -> (p: [Double], derivative: [Double], lse: Double) {
        let kvh = h / (queryHeads / keyHeads)
        var s = [Double](repeating: -.infinity, count: keyLength)
        var derivative = [Double](repeating: 0, count: keyLength)
        for j in 0..<keyLength where visible(b, h, i, j) {
            var dot = 0.0
            for d in 0..<headDim { dot += q(query, b, i, h, d) * k(key, b, j, kvh, d) }
            (s[j], derivative[j]) = logit(dot, b, h, i, j)
        }
        let m = s.max() ?? -.infinity
        guard m > -.infinity else { return ([Double](repeating: 0, count: keyLength), derivative, -.infinity) }
        let e = s.map { Foundation.exp($0 - m) }
        let total = e.reduce(0, +)
        return (e.map { $0 / total }, derivative, m + Foundation.log(total))
    }

    func forward(query: [Double], key: [Double], value: [Double]) -> (output: [Double], lse: [Double]) {
        var output = [Double](repeating: 0, count: batch * queryLength * queryHeads * headDim)
        var lse = [Double](repeating: 0, count: batch * queryHeads * queryLength)
        for b in 0..<batch { for h in 0..<queryHeads { for i in 0..<queryLength {
            let kvh = h / (queryHeads / keyHeads)
            let (p, _, l) = row(query, key, b, h, i)
            lse[(b * queryHeads + h) * queryLength + i] = l
            for j in 0..<keyLength where p[j] != 0 {
                let weight = p[j] * dropFactor(b, h, i, j)
                for d in 0..<headDim { output[((b * queryLength + i) * queryHeads + h) * headDim + d] += weight * k(value, b, j, kvh, d) }
            }
        }}}
        return (output, lse)
    }

    func backward(query: [Double], key: [Double], value: [Double], outputGradient: [Double])
        -> (query: [Double], key: [Double], value: [Double]) {
        var dq = [Double](repeating: 0, count: query.count)
        var dk = [Double](repeating: 0, count: key.count), dv = [Double](repeating: 0, count: value.count)
        for b in 0..<batch { for h in 0..<queryHeads { for i in 0..<queryLength {
            let kvh = h / (queryHeads / keyHeads)
            let (p, derivative, _) = row(query, key, b, h, i)
            var dp = [Double](repeating: 0, count: keyLength)
            var rowDot = 0.0
            for j in 0..<keyLength where p[j] != 0 {
                var g = 0.0
                for d in 0..<headDim { g += q(outputGradient, b, i, h, d) * k(value, b, j, kvh, d) }
                dp[j] = g * dropFactor(b, h, i, j)
                rowDot += p[j] * dp[j]
            }
            for j in 0..<keyLength where p[j] != 0 {
                let ds = p[j] * (dp[j] - rowDot) * derivative[j]
                let weight = p[j] * dropFactor(b, h, i, j)
                for d in 0..<headDim {
                    let qi = ((b * queryLength + i) * queryHeads + h) * headDim + d
                    let kj = ((b * keyLength + j) * keyHeads + kvh) * headDim + d
                    dq[qi] += ds * key[kj]
                    dk[kj] += ds * query[qi]
                    dv[kj] += weight * outputGradient[qi]
                }
            }
        }}}
        return (dq, dk, dv)
    }
}
