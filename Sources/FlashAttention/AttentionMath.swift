import FlashCore

/// Attention-specific vector math; the general functions (exp, tanh, max, dot, softmax) are
/// FlashCore's `VectorMath`.
enum AttentionMath {
    typealias Vector = SIMD16<Float>

    /// e^x for the softmax, where x = s − max ≤ 0 (up to rounding): a cheaper variant of `exp`
    /// that flushes results below 2^−126 (x < −87.3, −Inf included) to 0 instead of producing
    /// subnormals, so one exponent factor suffices, and has no overflow branch (valid to 88).
    /// Transparent (mandatory inlining): with a mere `@inline(__always)` the optimiser kept it
    /// out of line in the large tile loops, a call per 16 logits that passes the vector in four
    /// XMM registers and clears the upper halves (vzeroupper) each time.
    @_transparent
    static func softmaxExp(_ x: Vector) -> Vector {
        let underflow = x .< -87.3
        let clamped = x.replacing(with: -87.3, where: underflow)
        let (p, n) = VectorMath.expReduced(clamped)
        let exponent = (n &+ 127) &<< 23
        return (p * unsafeBitCast(exponent, to: Vector.self)).replacing(with: 0, where: underflow)
    }
}
