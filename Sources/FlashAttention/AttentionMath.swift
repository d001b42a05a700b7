import FlashCore

/// Attention-specific vector math; the general functions (exp, tanh, max, dot, softmax) are
/// FlashCore's `VectorMath`.
enum AttentionMath {
    typealias Vector = SIMD16<Float>

    /// e^x for the softmax, where x = s − max ≤ 0 (up to rounding): a cheaper variant of `exp`
    /// that flushes results below 2^−126 (x < −87.3, −Inf included) to 0 instead of producing
    /// subnormals, so one exponent factor suffices, and has no overflow branch (valid to 88).
    @inline(__always)
    static func softmaxExp(_ x: Vector) -> Vector {
        let underflow = x .< -87.3
        let clamped = x.replacing(with: -87.3, where: underflow)
        let magic: Float = 12_582_912
        let biased = Vector(repeating: magic).addingProduct(clamped, Vector(repeating: 1.442_695_040_888_963))
        let n = biased - magic
        var r = clamped.addingProduct(n, Vector(repeating: -0.693_359_375))
        r = r.addingProduct(n, Vector(repeating: 2.121_944_4e-4))
        var p = Vector(repeating: 1.398_199_950_7e-3).addingProduct(Vector(repeating: 1.987_569_15e-4), r)
        p = Vector(repeating: 8.333_451_907_3e-3).addingProduct(p, r)
        p = Vector(repeating: 4.166_579_589_4e-2).addingProduct(p, r)
        p = Vector(repeating: 1.666_666_545_9e-1).addingProduct(p, r)
        p = Vector(repeating: 5.000_000_120_1e-1).addingProduct(p, r)
        p = r.addingProduct(p, r * r) + 1   // the small terms first, then 1
        let exponent = (unsafeBitCast(biased, to: SIMD16<Int32>.self) &- 0x4B40_0000 &+ 127) &<< 23
        return (p * unsafeBitCast(exponent, to: Vector.self)).replacing(with: 0, where: underflow)
    }
}
