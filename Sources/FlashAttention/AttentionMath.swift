import Foundation

/// Vector math for the attention inner loops.
///
/// Same algorithms as FlashCore's `VectorMath`, but written only with operations that the
/// compiler lowers to single AVX-512 instructions: `replacing(with:where:)` after a compare
/// becomes one vmaxps/vblendmps, whereas the generic `clamped`/`pointwiseMax` of the standard
/// library currently compile to per-lane scalar loops (they dominated the softmax profile).
enum AttentionMath {
    typealias Vector = SIMD16<Float>

    /// Lane-wise maximum (NaN-unaware; attention logits are never NaN).
    @inline(__always)
    static func maximum(_ a: Vector, _ b: Vector) -> Vector { a.replacing(with: b, where: a .< b) }

    /// e^x, within a few ulp over [−103.9, 88.7]; 0 for x ≤ −104 (−Inf included), +Inf above
    /// 88.72. Cephes expf: x = n·ln2 + r with a two-part ln2, a degree-6 polynomial for e^r,
    /// and 2^n applied as two factors so that subnormal results round once.
    @inline(__always)
    static func exp(_ x: Vector) -> Vector {
        var clamped = x.replacing(with: -104, where: x .< -104)
        clamped = clamped.replacing(with: 88.8, where: clamped .> 88.8)
        // Adding 1.5·2^23 rounds to the nearest integer and leaves it in the low mantissa bits.
        let magic: Float = 12_582_912
        let biased = clamped * 1.442_695_040_888_963 + magic
        let n = biased - magic
        var r = clamped.addingProduct(n, Vector(repeating: -0.693_359_375))
        r = r.addingProduct(n, Vector(repeating: 2.121_944_4e-4))
        var p = Vector(repeating: 1.987_569_15e-4)
        p = p * r + 1.398_199_950_7e-3
        p = p * r + 8.333_451_907_3e-3
        p = p * r + 4.166_579_589_4e-2
        p = p * r + 1.666_666_545_9e-1
        p = p * r + 5.000_000_120_1e-1
        p = (p * r * r + r) + 1
        let ni = unsafeBitCast(biased, to: SIMD16<Int32>.self) &- 0x4B40_0000
        let half = ni &>> 1
        let rest = ni &- half
        let scale1 = unsafeBitCast((half &+ 127) &<< 23, to: Vector.self)
        let scale2 = unsafeBitCast((rest &+ 127) &<< 23, to: Vector.self)
        var result = p * scale1 * scale2
        result = result.replacing(with: 0, where: x .<= -104)
        result = result.replacing(with: .infinity, where: x .> 88.722_84)
        return result
    }

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
        p = (r + 1).addingProduct(p, r * r)
        let exponent = (unsafeBitCast(biased, to: SIMD16<Int32>.self) &- 0x4B40_0000 &+ 127) &<< 23
        return (p * unsafeBitCast(exponent, to: Vector.self)).replacing(with: 0, where: underflow)
    }

    /// tanh(x) = 1 − 2/(e^{2x} + 1), with x − x³/3 for tiny |x| where the subtraction cancels.
    @inline(__always)
    static func tanh(_ x: Vector) -> Vector {
        var clamped = x.replacing(with: -20, where: x .< -20)
        clamped = clamped.replacing(with: 20, where: clamped .> 20)
        let e = exp(2 * clamped)
        let result = 1 - 2 / (e + 1)
        let small = (x .< 0.004) .& (x .> -0.004)
        return result.replacing(with: x - x * x * x / 3, where: small)
    }

    /// Sum of the 16 lanes by halving (a tree: 4 dependent adds instead of 15).
    @inline(__always)
    static func sum(_ v: Vector) -> Float {
        let eight = v.lowHalf + v.highHalf
        let four = eight.lowHalf + eight.highHalf
        let two = four.lowHalf + four.highHalf
        return two[0] + two[1]
    }

    /// Dot product of two vectors whose length is a multiple of 16.
    @inline(__always)
    static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float {
        var acc = Vector()
        var i = 0
        while i < count {
            acc = acc.addingProduct(UnsafeRawPointer(a + i).loadUnaligned(as: Vector.self),
                                    UnsafeRawPointer(b + i).loadUnaligned(as: Vector.self))
            i += 16
        }
        return sum(acc)
    }

    /// y += alpha·x for vectors whose length is a multiple of 16.
    @inline(__always)
    static func addScaled(_ x: UnsafePointer<Float>, _ alpha: Float, to y: UnsafeMutablePointer<Float>, count: Int) {
        let a = Vector(repeating: alpha)
        var i = 0
        while i < count {
            let yv = UnsafeRawPointer(y + i).loadUnaligned(as: Vector.self)
            let xv = UnsafeRawPointer(x + i).loadUnaligned(as: Vector.self)
            UnsafeMutableRawPointer(y + i).storeBytes(of: yv.addingProduct(xv, a), as: Vector.self)
            i += 16
        }
    }

    /// Largest of `count` values (−Inf for none).
    @inline(__always)
    static func maximum(_ x: UnsafePointer<Float>, count: Int) -> Float {
        var acc = Vector(repeating: -.infinity)
        var i = 0
        while i + 16 <= count {
            acc = maximum(acc, UnsafeRawPointer(x + i).loadUnaligned(as: Vector.self))
            i += 16
        }
        var result = acc.max()
        while i < count { result = Swift.max(result, x[i]); i += 1 }
        return result
    }

    /// Softmax of one row in place (a row of all −Inf becomes zeros); returns its log-sum-exp.
    @inline(__always)
    static func softmax(_ row: UnsafeMutablePointer<Float>, count: Int) -> Float {
        let m = maximum(row, count: count)
        if m == -.infinity {
            row.update(repeating: 0, count: count)
            return -.infinity
        }
        var sum = Vector()
        var i = 0
        while i < count {
            let lanes = min(16, count - i)
            var e = exp(Lanes.load(row + i, lanes) - m)
            if lanes < 16 { for lane in lanes..<16 { e[lane] = 0 } }
            Lanes.store(e, row + i, lanes)
            sum += e
            i += 16
        }
        let total = sum.sum()
        let inverse = 1 / total
        i = 0
        while i < count {
            let lanes = min(16, count - i)
            Lanes.store(Lanes.load(row + i, lanes) * inverse, row + i, lanes)
            i += 16
        }
        return m + Foundation.log(total)
    }
}
