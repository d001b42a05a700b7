import Foundation
import FlashCore

/// Attention-specific vector math; the general functions (exp, tanh, max, dot, softmax) are
/// FlashCore's `VectorMath`.
enum AttentionMath {
    typealias Vector = FloatVector

    /// One native vector from `p` (any alignment).
    @inline(__always)
    static func load(_ p: UnsafePointer<Float>) -> Vector { UnsafeRawPointer(p).loadUnaligned(as: Vector.self) }

    @inline(__always)
    static func load(_ p: UnsafeMutablePointer<Float>) -> Vector { UnsafeRawPointer(p).loadUnaligned(as: Vector.self) }

    @inline(__always)
    static func store(_ v: Vector, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: Vector.self) }

    /// The log-sum-exp m + log l of a row with max m and sum l = Σ e^(s − m), as an unevaluated
    /// sum high + low of two Floats (Knuth's TwoSum: `low` is the exact rounding error of
    /// `high` = fl(m + log l)). The backward recomputes P = e^((s − high) − low): s − high is
    /// exact for the logits that matter (Sterbenz), so P keeps the accuracy of e^(s − m)/l
    /// even when m ~ 10³, where `high` alone is off by up to half its spacing (~3·10⁻⁵).
    /// A row with no visible key (l = 0) gives (−Inf, 0).
    static func splitLogSumExp(maximum m: Float, sum l: Float) -> (high: Float, low: Float) {
        guard l > 0, m.isFinite else { return (-.infinity, 0) }
        let logSum = Foundation.log(l)
        let high = m + logSum
        let mPart = high - logSum
        let logPart = high - mPart
        return (high, (m - mPart) + (logSum - logPart))
    }

    /// e^x for the softmax, where x = s − max ≤ 0 (up to rounding): a cheaper variant of `exp`
    /// that flushes results below 2^−126 (x < −87.3, −Inf included) to 0 instead of producing
    /// subnormals, so one exponent factor suffices, and has no overflow branch (valid to 88).
    /// Transparent (mandatory inlining): with a mere `@inline(__always)` the optimiser kept it
    /// out of line in the large tile loops, a call per 16 logits that passes the vector in four
    /// XMM registers and clears the upper halves (vzeroupper) each time.
    /// Generic over the vector width (the kernels call it with `FloatVector`).
    @_transparent
    static func softmaxExp<V: SIMD>(_ x: V) -> V where V.Scalar == Float {
        let underflow = x .< -87.3
        let clamped = x.replacing(with: -87.3, where: underflow)
        let (p, n) = VectorMath.expReduced(clamped)
        let exponent = (n &+ 127) &<< 23
        return (p * unsafeBitCast(exponent, to: V.self)).replacing(with: 0, where: underflow)
    }
}
