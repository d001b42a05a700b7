import Foundation

/// Vectorised elementwise and row operations on Float32 buffers.
///
/// Loops run 16 lanes at a time (one AVX-512 register, two AVX2 or four NEON registers) with a
/// scalar tail, so any count works.
///
/// Everything here is written with SIMD operations that the compiler lowers to single vector
/// instructions (arithmetic, `addingProduct`, compares, `replacing(with:where:)`, `lowHalf`/
/// `highHalf`). The standard library's generic `clamped(lowerBound:upperBound:)`,
/// `pointwiseMax`/`pointwiseMin` and `.max()`/`.min()` compile to per-lane scalar loops (or a
/// call into the runtime), and `.sum()` to 15 dependent scalar adds: use the lane helpers
/// below (`maximum`, `minimum`, `sum(_:)`, `max(_:)`) instead, and clamp with two
/// `replacing(with:where:)`. The vector functions are `@inline(__always)` because a SIMD16
/// passed to a function that is not inlined travels as four 128-bit registers.
///
/// Why 16 lanes on every target, not the native `FloatVector`: these are streaming loops
/// (no register tile), and on AVX2 a `SIMD16<Float>` is two ymm per operation with no spills
/// but one constant reload per step in the `exp` loop (`objdump -d` of the x86-64-v3 build).
/// Making the lane functions generic over the vector type (tried, issue 9) is worse: in a
/// generic `V: SIMD` body, `.<`, `.==` and `replacing(with:where:)` resolve to the standard
/// library's per-lane protocol implementations instead of the concrete types' vector
/// builtins, and even after specialisation they compile to a scalar loop through the stack.
public enum VectorMath {
    /// The vector the functions here take: 16 floats (one AVX-512 register, two AVX2 ones).
    public typealias Vector = SIMD16<Float>

    /// Lanes per vector (a computed constant rather than a stored `static let`, whose lazy
    /// initialiser check would be a call inside every loop that reads it).
    @inlinable
    public static var width: Int { Vector.scalarCount }

    // MARK: lane helpers

    /// Lane-wise maximum. Where `b` is NaN the lane keeps `a` (so a running maximum that starts
    /// from a number skips NaN inputs); one `vmaxps`.
    @inlinable @inline(__always)
    public static func maximum(_ a: Vector, _ b: Vector) -> Vector { a.replacing(with: b, where: a .< b) }

    /// Lane-wise minimum. Where `b` is NaN the lane keeps `a`; one `vminps`.
    @inlinable @inline(__always)
    public static func minimum(_ a: Vector, _ b: Vector) -> Vector { a.replacing(with: b, where: b .< a) }

    /// Sum of the 16 lanes by halving: a tree of 4 dependent vector adds instead of the 15
    /// sequential scalar adds of `.sum()` (a fixed order, so the result is reproducible).
    @inlinable @inline(__always)
    public static func sum(_ v: Vector) -> Float {
        let eight = v.lowHalf + v.highHalf
        let four = eight.lowHalf + eight.highHalf
        let two = four.lowHalf + four.highHalf
        return two[0] + two[1]
    }

    /// Largest of the 16 lanes by halving. NaN lanes are skipped unless all lanes are NaN
    /// (callers start from −Inf, so that never happens in the row reductions here).
    @inlinable @inline(__always)
    public static func max(_ v: Vector) -> Float {
        let eight = v.lowHalf.replacing(with: v.highHalf, where: v.lowHalf .< v.highHalf)
        let four = eight.lowHalf.replacing(with: eight.highHalf, where: eight.lowHalf .< eight.highHalf)
        let two = four.lowHalf.replacing(with: four.highHalf, where: four.lowHalf .< four.highHalf)
        return two[0] < two[1] ? two[1] : two[0]
    }

    /// The first `count` (< 16 allowed) values at `p` in the low lanes, `padding` in the rest.
    @inlinable @inline(__always)
    public static func load(_ p: UnsafePointer<Float>, count: Int, padding: Float = 0) -> Vector {
        if count >= width { return UnsafeRawPointer(p).loadUnaligned(as: Vector.self) }
        var v = Vector(repeating: padding)
        for lane in 0..<count { v[lane] = p[lane] }
        return v
    }

    /// Stores the low `count` (< 16 allowed) lanes of `v` at `p`.
    @inlinable @inline(__always)
    public static func store(_ v: Vector, to p: UnsafeMutablePointer<Float>, count: Int) {
        if count >= width { UnsafeMutableRawPointer(p).storeBytes(of: v, as: Vector.self); return }
        for lane in 0..<count { p[lane] = v[lane] }
    }

    // MARK: exp

    /// e^x for 16 lanes, within 1 ulp over [-104, 88.72] (0.99 ulp measured against Float64 by
    /// VectorMathTests; subnormal results included),
    /// exactly 0 for x ≤ -104 and -Inf, +Inf above 88.72, NaN for NaN.
    ///
    /// Method (Cephes expf): x = n·ln2 + r with |r| ≤ ln2/2, using a two-part ln2 so that r is
    /// computed exactly; e^r by a degree-6 polynomial; then 2^n applied as two factors
    /// 2^(n/2)·2^(n−n/2), each a normal number for n in [−150, 128], so subnormal results are
    /// rounded once instead of flushed to zero.
    @inlinable @inline(__always)
    public static func exp(_ x: Vector) -> Vector {
        // NaN passes the two clamps unchanged and is restored at the end.
        let raised = x.replacing(with: -104, where: x .< -104)
        let clamped = raised.replacing(with: 88.8, where: raised .> 88.8)
        let (p, ni) = expReduced(clamped)
        let half = ni &>> 1
        let rest = ni &- half
        let scale1 = unsafeBitCast((half &+ 127) &<< 23, to: Vector.self)
        let scale2 = unsafeBitCast((rest &+ 127) &<< 23, to: Vector.self)
        return (p * scale1 * scale2)
            .replacing(with: 0, where: x .<= -104)
            .replacing(with: Float.infinity, where: x .> 88.722_84)
            .replacing(with: x, where: x .!= x)
    }

    /// The core of `exp`, shared with attention's softmax variant: for x already limited to
    /// [−104, 88.8], splits x = n·ln2 + r with |r| ≤ ln2/2 (a two-part ln2, so r is exact) and
    /// returns e^r by a degree-6 polynomial together with the integer n; e^x = e^r·2^n.
    @_transparent
    public static func expReduced(_ clamped: Vector) -> (polynomial: Vector, exponent: SIMD16<Int32>) {
        // Adding 1.5·2^23 rounds to the nearest integer (ties to even) and leaves that integer
        // in the low mantissa bits, so n comes out both as a float and as an integer without a
        // float-to-int conversion.
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
        return (p, unsafeBitCast(biased, to: SIMD16<Int32>.self) &- 0x4B40_0000)
    }

    /// e^x for one value, by the same method as the vector form (used for loop tails so that
    /// every element of a buffer gets bit-identical treatment whatever its position).
    @inlinable
    public static func exp(_ x: Float) -> Float {
        exp(Vector(repeating: x))[0]
    }

    /// `buffer[i] = e^buffer[i]` for `count` values.
    @inlinable
    public static func exp(_ buffer: UnsafeMutablePointer<Float>, count: Int) {
        map(buffer, count: count) { exp($0) }
    }

    // MARK: activations

    /// tanh(x), within a few ulp: an odd polynomial for |x| < 0.625 (Cephes tanhf), where the
    /// form below would lose relative precision to cancellation, else 1 − 2/(e^{2x} + 1),
    /// which saturates to ±1. NaN stays NaN.
    @inlinable @inline(__always)
    public static func tanh(_ x: Vector) -> Vector {
        let raised = x.replacing(with: -20, where: x .< -20)
        let e = exp(2 * raised.replacing(with: 20, where: raised .> 20))
        var result = 1 - 2 / (e + 1)
        let z = x * x
        var p = Vector(repeating: -5.704_988_727_45e-3)
        p = p * z + 2.063_908_879_54e-2
        p = p * z - 5.373_971_555_31e-2
        p = p * z + 1.333_144_220_36e-1
        p = p * z - 3.333_328_194_22e-1
        let small = (x .< 0.625) .& (x .> -0.625)
        result.replace(with: p * z * x + x, where: small)
        result.replace(with: x, where: (x .!= x) .| (x .== 0))   // NaN stays NaN, ±0 keeps its sign
        return result
    }

    /// GELU, tanh form (GPT-2's): 0.5·x·(1 + tanh(u)) with u = √(2/π)·(x + 0.044715·x³),
    /// computed as x / (1 + e^{−2u}), the same function since 1 + tanh(u) = 2/(1 + e^{−2u}),
    /// but without the cancellation of 1 + tanh(u) for negative x.
    @inlinable @inline(__always)
    public static func geluTanh(_ x: Vector) -> Vector {
        let u = 0.797_884_560_802_865_4 * (x + 0.044_715 * x * x * x)
        var result = x / (1 + exp(-2 * u))
        result.replace(with: 0, where: x .== -.infinity)   // −∞/∞ would be NaN; the limit is 0
        return result
    }

    /// GELU, exact erf form (BERT's): 0.5·x·(1 + erf(x/√2)), computed as 0.5·x·erfc(−x/√2)
    /// (the same function; erfc keeps relative precision in the negative tail).
    @inlinable
    public static func geluErf(_ x: Float) -> Float {
        if x == -.infinity { return 0 }   // −∞·erfc(∞) would be NaN; the limit is 0
        return 0.5 * x * Foundation.erfc(-x * 0.707_106_781_186_547_6)
    }

    /// GELU (erf form) on 16 lanes, one `erfc` per lane.
    @inlinable
    public static func geluErf(_ x: Vector) -> Vector {
        var result = Vector()
        for lane in 0..<width { result[lane] = geluErf(x[lane]) }
        return result
    }

    /// SiLU (swish): x·σ(x) = x / (1 + e^{−x}); −0 below x ≈ −88.7, where e^{−x} overflows
    /// (the true value is then below 10⁻³⁶).
    @inlinable @inline(__always)
    public static func silu(_ x: Vector) -> Vector {
        var result = x / (1 + exp(-x))
        result.replace(with: 0, where: x .== -.infinity)   // −∞/∞ would be NaN; the limit is 0
        return result
    }

    /// `buffer[i] = tanh(buffer[i])` for `count` values.
    @inlinable
    public static func tanh(_ buffer: UnsafeMutablePointer<Float>, count: Int) {
        map(buffer, count: count) { tanh($0) }
    }

    /// `buffer[i] = geluTanh(buffer[i])` for `count` values.
    @inlinable
    public static func geluTanh(_ buffer: UnsafeMutablePointer<Float>, count: Int) {
        map(buffer, count: count) { geluTanh($0) }
    }

    /// `buffer[i] = geluErf(buffer[i])` for `count` values.
    @inlinable
    public static func geluErf(_ buffer: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { buffer[i] = geluErf(buffer[i]) }
    }

    /// `buffer[i] = silu(buffer[i])` for `count` values.
    @inlinable
    public static func silu(_ buffer: UnsafeMutablePointer<Float>, count: Int) {
        map(buffer, count: count) { silu($0) }
    }

    /// Applies `body` to `count` values in place, 16 at a time; the tail goes through the
    /// same vector function (padded), so results never depend on an element's position.
    @inlinable @inline(__always)
    public static func map(_ buffer: UnsafeMutablePointer<Float>, count: Int, _ body: (Vector) -> Vector) {
        var i = 0
        while i + width <= count {
            let v = UnsafeRawPointer(buffer + i).loadUnaligned(as: Vector.self)
            UnsafeMutableRawPointer(buffer + i).storeBytes(of: body(v), as: Vector.self)
            i += width
        }
        if i < count { store(body(load(buffer + i, count: count - i)), to: buffer + i, count: count - i) }
    }

    // MARK: reductions and BLAS-1

    /// Largest of `count` values (−Inf for none). NaN inputs are ignored by `max`; callers
    /// that must propagate NaN check for it separately.
    @inlinable
    public static func max(_ x: UnsafePointer<Float>, count: Int) -> Float {
        var acc = Vector(repeating: -.infinity)
        var i = 0
        while i + width <= count {
            acc = maximum(acc, UnsafeRawPointer(x + i).loadUnaligned(as: Vector.self))
            i += width
        }
        var result = max(acc)
        while i < count { result = Swift.max(result, x[i]); i += 1 }
        return result
    }

    /// Sum of `count` values: 16 partial sums added as a tree at the end (a fixed order, so
    /// the result never depends on threads).
    @inlinable
    public static func sum(_ x: UnsafePointer<Float>, count: Int) -> Float {
        var acc = Vector()
        var i = 0
        while i + width <= count {
            acc += UnsafeRawPointer(x + i).loadUnaligned(as: Vector.self)
            i += width
        }
        var result = sum(acc)
        while i < count { result += x[i]; i += 1 }
        return result
    }

    /// Σ x² over `count` values in Float64 (each Float32 square is exact there; only the sums
    /// round): 16 Float64 lanes in two 8-lane accumulators, the tail added in order, the lanes
    /// summed in a fixed order at the end, so the result never depends on threads.
    @inlinable
    public static func sumOfSquares(_ x: UnsafePointer<Float>, count: Int) -> Double {
        var low = SIMD8<Double>(), high = SIMD8<Double>()
        var i = 0
        while i + 16 <= count {
            let v = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self)
            let a = SIMD8<Double>(v.lowHalf), b = SIMD8<Double>(v.highHalf)
            low = low.addingProduct(a, a)
            high = high.addingProduct(b, b)
            i += 16
        }
        let eight = low + high, four = eight.lowHalf + eight.highHalf, two = four.lowHalf + four.highHalf
        var result = two[0] + two[1]
        while i < count { result += Double(x[i]) * Double(x[i]); i += 1 }
        return result
    }

    /// Dot product of two `count`-long vectors: four independent 16-lane FMA chains (so the
    /// loop runs at FMA throughput, not latency), combined in a fixed order. Always inlined:
    /// as a call per key row it was a tenth of a decode step's time (paged attention, D = 64).
    @inlinable @inline(__always)
    public static func dot(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, count: Int) -> Float {
        let whole = count / width * width
        var result = sum(dotLanes(x, y, count: whole))
        for i in whole..<count { result += x[i] * y[i] }
        return result
    }

    /// The vector `dot` sums for the first `count` (a multiple of 16) elements: the four FMA
    /// chains over 64-float steps (then 16-float steps into the first), added as
    /// (c0 + c1) + (c2 + c3). `sum(dotLanes(x, y, count: n))` is `dot(x, y, count: n)` bit for bit.
    @inlinable @inline(__always)
    public static func dotLanes(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, count: Int) -> Vector {
        @inline(__always) func load(_ p: UnsafePointer<Float>, _ i: Int) -> Vector {
            UnsafeRawPointer(p + i).loadUnaligned(as: Vector.self)
        }
        var acc0 = Vector(), acc1 = Vector(), acc2 = Vector(), acc3 = Vector()
        var i = 0
        while i + 4 * width <= count {
            acc0 = acc0.addingProduct(load(x, i), load(y, i))
            acc1 = acc1.addingProduct(load(x, i + width), load(y, i + width))
            acc2 = acc2.addingProduct(load(x, i + 2 * width), load(y, i + 2 * width))
            acc3 = acc3.addingProduct(load(x, i + 3 * width), load(y, i + 3 * width))
            i += 4 * width
        }
        while i + width <= count {
            acc0 = acc0.addingProduct(load(x, i), load(y, i))
            i += width
        }
        return (acc0 + acc1) + (acc2 + acc3)
    }

    /// A length of V 16-float vectors, as a type (see `dotLanes(_:_:rows:rowStride:count:)`).
    public enum Vectors<let V: Int> {}

    /// Element j < `count` (≤ 16): `dotLanes(x, rows + j·rowStride, count: 16·V)`, with the same
    /// operations in the same order — chunk c into chain c mod 4 for the whole 64-float steps,
    /// the rest into chain 0, then (c0 + c1) + (c2 + c3) — but x's V vectors loaded once for all
    /// rows, and the loops unrolled for the known V (paged attention's tile of keys). Zeros
    /// past `count`.
    @inlinable @inline(__always)
    public static func dotLanes<let V: Int>(_ length: Vectors<V>.Type, _ x: UnsafePointer<Float>, rows: UnsafePointer<Float>,
                                            rowStride: Int, count: Int) -> InlineArray<16, Vector> {
        var held = InlineArray<V, Vector>(repeating: Vector())
        for c in 0..<V { held[c] = UnsafeRawPointer(x + width * c).loadUnaligned(as: Vector.self) }
        let chained = V / 4 * 4
        var partials = InlineArray<16, Vector>(repeating: Vector())
        for j in 0..<count {
            let row = rows + j * rowStride
            @inline(__always) func load(_ c: Int) -> Vector { UnsafeRawPointer(row + width * c).loadUnaligned(as: Vector.self) }
            var chains = InlineArray<4, Vector>(repeating: Vector())
            for c in 0..<chained { chains[c % 4] = chains[c % 4].addingProduct(held[c], load(c)) }
            for c in chained..<V { chains[0] = chains[0].addingProduct(held[c], load(c)) }
            partials[j] = (chains[0] + chains[1]) + (chains[2] + chains[3])
        }
        return partials
    }

    /// Lane k = `sum(vectors[k])` bit for bit, for 16 vectors at once: the 16 halving trees run
    /// as one transposing butterfly (four rounds; each adds the low and high halves of its
    /// operands' partial sums, gathered pairwise into full vectors), 15 vector adds and 30
    /// shuffles instead of 16 horizontal sums and 16 lane inserts. Float addition is
    /// commutative, and every lane adds exactly the operands `sum` adds, in the same tree.
    @inlinable @inline(__always)
    public static func sums(_ vectors: InlineArray<16, Vector>) -> Vector {
        typealias Half = SIMD8<Float>
        // Round 1: the 8-lane halves' sum of vectors 2p and 2p+1 side by side.
        var eights = InlineArray<8, Vector>(repeating: Vector())
        for p in 0..<8 {
            let a = vectors[2 * p], b = vectors[2 * p + 1]
            eights[p] = Vector(lowHalf: a.lowHalf, highHalf: b.lowHalf) + Vector(lowHalf: a.highHalf, highHalf: b.highHalf)
        }
        // Round 2: 4-lane partial sums of vectors 4q … 4q+3.
        var fours = InlineArray<4, Vector>(repeating: Vector())
        for q in 0..<4 {
            let a = eights[2 * q], b = eights[2 * q + 1]
            let low = Vector(lowHalf: Half(lowHalf: a.lowHalf.lowHalf, highHalf: a.highHalf.lowHalf),
                             highHalf: Half(lowHalf: b.lowHalf.lowHalf, highHalf: b.highHalf.lowHalf))
            let high = Vector(lowHalf: Half(lowHalf: a.lowHalf.highHalf, highHalf: a.highHalf.highHalf),
                              highHalf: Half(lowHalf: b.lowHalf.highHalf, highHalf: b.highHalf.highHalf))
            fours[q] = low + high
        }
        // Round 3: 2-lane partial sums of vectors 8h … 8h+7 (pairs of lanes moved as 64-bit units).
        @inline(__always) func pairs(_ v: Vector) -> SIMD8<UInt64> { unsafeBitCast(v, to: SIMD8<UInt64>.self) }
        var twos = InlineArray<2, Vector>(repeating: Vector())
        for h in 0..<2 {
            let a = pairs(fours[2 * h]), b = pairs(fours[2 * h + 1])
            twos[h] = unsafeBitCast(SIMD8(lowHalf: a.evenHalf, highHalf: b.evenHalf), to: Vector.self)
                + unsafeBitCast(SIMD8(lowHalf: a.oddHalf, highHalf: b.oddHalf), to: Vector.self)
        }
        // Round 4: lane k = two_k[0] + two_k[1].
        return Vector(lowHalf: twos[0].evenHalf, highHalf: twos[1].evenHalf) + Vector(lowHalf: twos[0].oddHalf, highHalf: twos[1].oddHalf)
    }

    /// `x[i] *= alpha`.
    @inlinable
    public static func scale(_ x: UnsafeMutablePointer<Float>, count: Int, by alpha: Float) {
        map(x, count: count) { $0 * alpha }
    }

    /// `y[i] += alpha·x[i]` (axpy).
    @inlinable
    public static func addScaled(_ x: UnsafePointer<Float>, _ alpha: Float, to y: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        let a = Vector(repeating: alpha)
        while i + width <= count {
            let yv = UnsafeRawPointer(y + i).loadUnaligned(as: Vector.self)
            let xv = UnsafeRawPointer(x + i).loadUnaligned(as: Vector.self)
            UnsafeMutableRawPointer(y + i).storeBytes(of: yv.addingProduct(xv, a), as: Vector.self)
            i += width
        }
        while i < count { y[i] = y[i].addingProduct(x[i], alpha); i += 1 }
    }

    /// `y[i] += x[i]`.
    @inlinable
    public static func add(_ x: UnsafePointer<Float>, to y: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        while i + width <= count {
            let yv = UnsafeRawPointer(y + i).loadUnaligned(as: Vector.self)
            let xv = UnsafeRawPointer(x + i).loadUnaligned(as: Vector.self)
            UnsafeMutableRawPointer(y + i).storeBytes(of: yv + xv, as: Vector.self)
            i += width
        }
        while i < count { y[i] += x[i]; i += 1 }
    }

    /// Numerically safe softmax of one row in place: subtracts the row max before exp.
    /// A row of all −Inf becomes all zeros (not NaN). Returns the log-sum-exp of the input.
    /// Two passes after the max: e^(x − max) stored and summed together, then the scaling.
    @inlinable
    @discardableResult
    public static func softmax(_ row: UnsafeMutablePointer<Float>, count: Int) -> Float {
        let m = max(row, count: count)
        if m == -.infinity {
            row.update(repeating: 0, count: count)
            return -.infinity
        }
        var total = Vector()
        var i = 0
        while i < count {
            let lanes = Swift.min(width, count - i)
            // Padding lanes load −Inf, whose exp is exactly 0, so they add nothing to the sum.
            let e = exp(load(row + i, count: lanes, padding: -.infinity) - m)
            store(e, to: row + i, count: lanes)
            total += e
            i += width
        }
        let s = sum(total)
        scale(row, count: count, by: 1 / s)
        return m + Foundation.log(s)
    }
}
