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
            if d % 16 == 0 {
                for j in 0..<length { scores[j] = dot16(q, keys + j &* kvStride + kvHead &* d, count: d) * scale }
            } else {
                for j in 0..<length { scores[j] = VectorMath.dot(q, keys + j * kvStride + kvHead * d, count: d) * scale }
            }
            VectorMath.softmax(scores, count: length)
            let out = output + (t * heads + h) * d
            if d % 16 == 0 {
                // One 16-wide slice of the output at a time, accumulated in a register over
                // all keys (no load/store of the output per key).
                var slice = 0
                while slice < d {
                    var acc = SIMD16<Float>()
                    var v = values + (kvHead &* d &+ slice)
                    for j in 0..<length {
                        acc = acc.addingProduct(UnsafeRawPointer(v).loadUnaligned(as: SIMD16<Float>.self),
                                                SIMD16<Float>(repeating: scores[j]))
                        v += kvStride
                    }
                    UnsafeMutableRawPointer(out + slice).storeBytes(of: acc, as: SIMD16<Float>.self)
                    slice &+= 16
                }
            } else {
                out.update(repeating: 0, count: d)
                for j in 0..<length {
                    VectorMath.addScaled(values + j * kvStride + kvHead * d, scores[j], to: out, count: d)
                }
            }
        }
    }

    /// q·k for `count` a multiple of 16, reduced as a tree (VectorMath.dot's serial 16-lane sum
    /// is a long dependency chain for head-sized vectors, computed once per cached key).
    @inline(__always)
    static func dot16(_ q: UnsafePointer<Float>, _ k: UnsafePointer<Float>, count: Int) -> Float {
        typealias Vector = SIMD16<Float>
        var acc = Vector()
        var i = 0
        while i < count {
            acc = acc.addingProduct(UnsafeRawPointer(q + i).loadUnaligned(as: Vector.self),
                                    UnsafeRawPointer(k + i).loadUnaligned(as: Vector.self))
            i &+= 16
        }
        let eight = acc.lowHalf + acc.highHalf
        let four = eight.lowHalf + eight.highHalf
        let two = four.lowHalf + four.highHalf
        return two[0] + two[1]
    }
}
