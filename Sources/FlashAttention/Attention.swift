import Foundation
import FlashCore

/// Public entry points. (Provisional implementation: a direct per-row loop supporting scale,
/// causal and GQA; the attention work replaces it with the standard and flash kernels behind
/// the same signatures.)
public enum Attention {
    /// O = softmax(scale·QKᵀ + masks)·V. `query` is [B, Nq, Hq, D], `key`/`value` are
    /// [B, Nk, Hkv, D] with Hq a multiple of Hkv. Writes into `output` when given (a
    /// [B, Nq, Hq, D] Float32 view, any strides), else allocates it.
    public static func forward(
        query: Tensor, key: Tensor, value: Tensor,
        descriptor: AttentionDescriptor = AttentionDescriptor(), output: Tensor? = nil
    ) throws -> AttentionOutput {
        let (b, nq, hq, d) = (query.shape[0], query.shape[1], query.shape[2], query.shape[3])
        let (nk, hkv) = (key.shape[1], key.shape[2])
        let out = try output ?? Tensor(zeros: [b, nq, hq, d])
        let lse = try Tensor(zeros: [b, hq, nq])
        let scale = descriptor.scale ?? 1 / Float(d).squareRoot()
        var p = [Float](repeating: 0, count: nk)
        for bi in 0..<b { for h in 0..<hq { for i in 0..<nq {
            let kvh = h / (hq / hkv)
            var m = -Float.infinity
            for j in 0..<nk {
                if descriptor.causal && j > i + nk - nq { p[j] = -.infinity; continue }
                var s: Float = 0
                for x in 0..<d { s += query[bi, i, h, x] * key[bi, j, kvh, x] }
                p[j] = s * scale
                m = max(m, p[j])
            }
            var sum: Float = 0
            for j in 0..<nk { p[j] = m == -.infinity ? 0 : Foundation.exp(p[j] - m); sum += p[j] }
            lse[bi, h, i] = m == -.infinity ? -.infinity : m + Foundation.log(sum)
            for x in 0..<d {
                var o: Float = 0
                for j in 0..<nk where sum > 0 { o += p[j] / sum * value[bi, j, kvh, x] }
                out[bi, i, h, x] = o
            }
        }}}
        return AttentionOutput(output: out, logSumExp: lse)
    }

    /// dQ, dK, dV given dO (`outputGradient`, shaped like O) and the forward's O and LSE.
    public static func backward(
        query: Tensor, key: Tensor, value: Tensor, output: Tensor, logSumExp: Tensor,
        outputGradient: Tensor, descriptor: AttentionDescriptor = AttentionDescriptor()
    ) throws -> AttentionGradients {
        let (b, nq, hq, d) = (query.shape[0], query.shape[1], query.shape[2], query.shape[3])
        let (nk, hkv) = (key.shape[1], key.shape[2])
        let scale = descriptor.scale ?? 1 / Float(d).squareRoot()
        let dq = try Tensor(zeros: query.shape), dk = try Tensor(zeros: key.shape), dv = try Tensor(zeros: value.shape)
        var p = [Float](repeating: 0, count: nk), dp = [Float](repeating: 0, count: nk)
        for bi in 0..<b { for h in 0..<hq { for i in 0..<nq {
            let kvh = h / (hq / hkv)
            let l = logSumExp[bi, h, i]
            var rowDot: Float = 0
            for x in 0..<d { rowDot += outputGradient[bi, i, h, x] * output[bi, i, h, x] }
            for j in 0..<nk {
                if l == -.infinity || (descriptor.causal && j > i + nk - nq) { p[j] = 0; dp[j] = 0; continue }
                var s: Float = 0, g: Float = 0
                for x in 0..<d {
                    s += query[bi, i, h, x] * key[bi, j, kvh, x]
                    g += outputGradient[bi, i, h, x] * value[bi, j, kvh, x]
                }
                p[j] = Foundation.exp(s * scale - l)
                dp[j] = p[j] * (g - rowDot) * scale
            }
            for j in 0..<nk where p[j] != 0 || dp[j] != 0 {
                for x in 0..<d {
                    dv[bi, j, kvh, x] += p[j] * outputGradient[bi, i, h, x]
                    dq[bi, i, h, x] += dp[j] * key[bi, j, kvh, x]
                    dk[bi, j, kvh, x] += dp[j] * query[bi, i, h, x]
                }
            }
        }}}
        return AttentionGradients(query: dq, key: dk, value: dv)
    }
}
