import Foundation
import FlashCore

/// Causal grouped-query attention of new tokens against a KV cache, the shape decoding needs:
/// query token t (at position start + t) attends to cached positions 0...start + t. Same
/// result as `Attention.forward` with `causal: true` (bottom-right aligned) on the cache
/// prefix, which the tests check; this direct loop skips building tensor views per step.
public enum LlamaAttention {
    /// `query` is [tokens, heads, headDim]; `keys`/`values` are [positions, kvHeads, headDim];
    /// writes [tokens, heads, headDim] to `output`. Scale 1/√headDim.
    public static func causal(query: UnsafePointer<Float>, tokens: Int, start: Int,
                       keys: UnsafePointer<Float>, values: UnsafePointer<Float>,
                       heads: Int, keyValueHeads: Int, headDimension d: Int,
                       into output: UnsafeMutablePointer<Float>, threads: Int?) {
        let group = heads / keyValueHeads
        let kvStride = keyValueHeads * d
        let scale = 1 / Float(d).squareRoot()
        Parallel.forEachDynamic(tokens * heads, threads: threads) { item in
            let (t, h) = (item / heads, item % heads)
            let kvHead = h / group
            let length = start + t + 1
            let q = query + (t * heads + h) * d
            let scores = UnsafeMutablePointer<Float>.allocate(capacity: length)
            defer { scores.deallocate() }
            for j in 0..<length {
                scores[j] = VectorMath.dot(q, keys + j * kvStride + kvHead * d, count: d) * scale
            }
            VectorMath.softmax(scores, count: length)
            let out = output + (t * heads + h) * d
            out.update(repeating: 0, count: d)
            for j in 0..<length {
                VectorMath.addScaled(values + j * kvStride + kvHead * d, scores[j], to: out, count: d)
            }
        }
    }
}
