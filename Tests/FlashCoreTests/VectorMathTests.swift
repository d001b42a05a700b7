import FlashCore
import Foundation
import XCTest

/// Vector math against Float64 references (Foundation's libm in double precision).
final class VectorMathTests: XCTestCase {
    /// Error of `got` in units in the last place of the Float32 nearest `exact` (subnormal
    /// spacing 2⁻¹⁴⁹ at the bottom).
    static func ulpError(_ got: Float, _ exact: Double) -> Double {
        if got.isNaN || exact.isNaN { return got.isNaN && exact.isNaN ? 0 : .infinity }
        if exact.isInfinite || got.isInfinite { return Double(got) == exact ? 0 : .infinity }
        return abs(Double(got) - exact) / ulpSize(exact)
    }

    /// The spacing of Float32 values around `value` (2⁻¹⁴⁹ among subnormals).
    static func ulpSize(_ value: Double) -> Double {
        let exponent = value == 0 ? -126 : max(Foundation.floor(Foundation.log2(abs(value))), -126)
        return Foundation.pow(2, exponent - 23)
    }

    /// Applies `function` to `count` evenly spaced points of `range` through its buffer form
    /// and returns the largest ulp error against `reference` and where it occurred.
    ///
    /// With `conditioned`, the error first loses what the function's own sensitivity to a
    /// relative change of its input costs (4·2⁻²⁴·|x·f′(x)|: an activation that computes an
    /// inner argument such as GELU's u = c·(x + 0.044715x³) in Float32 rounds it, and the
    /// function amplifies that rounding by its condition number); what remains is the
    /// error of the evaluation itself.
    static func sweep(_ range: ClosedRange<Double>, count: Int, conditioned: Bool = false,
                      _ function: (UnsafeMutablePointer<Float>, Int) -> Void,
                      _ reference: (Double) -> Double) -> (error: Double, at: Float) {
        var xs = (0..<count).map { Float(range.lowerBound + (range.upperBound - range.lowerBound) * Double($0) / Double(count - 1)) }
        let inputs = xs
        xs.withUnsafeMutableBufferPointer { function($0.baseAddress!, count) }
        var worst = (error: 0.0, at: Float(0))
        for (x, y) in zip(inputs, xs) {
            let exact = reference(Double(x))
            var error = ulpError(y, exact)
            if conditioned {
                let h = 1e-6 * Swift.max(1, abs(Double(x)))
                let slope = (reference(Double(x) + h) - reference(Double(x) - h)) / (2 * h)
                let allowance = 4 * 0x1p-24 * abs(Double(x) * slope)
                error = Swift.max(0, error - allowance / ulpSize(exact))
            }
            if error > worst.error { worst = (error, x) }
        }
        return worst
    }

    func testExpAccuracyOverItsRange() {
        // Normal results, subnormal results (x < −87.3) and the top of the range.
        let worst = Self.sweep(-104...88.72, count: 1_000_003, { VectorMath.exp($0, count: $1) }, Foundation.exp)
        print("exp max error \(worst.error) ulp at x = \(worst.at)")
        XCTAssertLessThanOrEqual(worst.error, 2, "at x = \(worst.at)")
        let near = Self.sweep(-1...1, count: 100_003, { VectorMath.exp($0, count: $1) }, Foundation.exp)
        XCTAssertLessThanOrEqual(near.error, 2, "at x = \(near.at)")
    }

    func testExpSpecialValues() {
        XCTAssertEqual(VectorMath.exp(-Float.infinity), 0)
        XCTAssertEqual(VectorMath.exp(Float(-104)), 0)
        XCTAssertEqual(VectorMath.exp(Float(-200)), 0)
        XCTAssertEqual(VectorMath.exp(Float(0)), 1)
        XCTAssertEqual(VectorMath.exp(Float(-0.0)), 1)
        XCTAssertEqual(VectorMath.exp(Float.infinity), .infinity)
        XCTAssertEqual(VectorMath.exp(Float(89)), .infinity)
        XCTAssertTrue(VectorMath.exp(Float.nan).isNaN)
        XCTAssertTrue(VectorMath.exp(-Float.nan).isNaN)
        // The smallest results are subnormal and rounded, not flushed to zero.
        XCTAssertGreaterThan(VectorMath.exp(Float(-103)), 0)
        XCTAssertLessThan(VectorMath.exp(Float(-103)), Float.leastNormalMagnitude)
        XCTAssertEqual(VectorMath.exp(Float(88.7)), Float(Foundation.exp(Double(Float(88.7)))), accuracy: 2 * Float(Foundation.exp(88.7)).ulp)
    }

    func testTanh() {
        let worst = Self.sweep(-10...10, count: 400_001, { VectorMath.tanh($0, count: $1) }, Foundation.tanh)
        print("tanh max error \(worst.error) ulp at x = \(worst.at)")
        XCTAssertLessThanOrEqual(worst.error, 4, "at x = \(worst.at)")
        let tiny = Self.sweep(-1e-3...1e-3, count: 10_001, { VectorMath.tanh($0, count: $1) }, Foundation.tanh)
        XCTAssertLessThanOrEqual(tiny.error, 2, "at x = \(tiny.at)")
        var specials: [Float] = [.infinity, -.infinity, .nan, 0, -0.0, 50, -50]
        specials.withUnsafeMutableBufferPointer { VectorMath.tanh($0.baseAddress!, count: $0.count) }
        XCTAssertEqual(Array(specials[0..<2]), [1, -1])
        XCTAssertTrue(specials[2].isNaN)
        XCTAssertEqual(specials[3].bitPattern, Float(0).bitPattern)
        XCTAssertEqual(specials[4].bitPattern, Float(-0.0).bitPattern)
        XCTAssertEqual(Array(specials[5...]), [1, -1])
    }

    /// GELU (tanh form) in Float64: 0.5·x·(1 + tanh(u)), written as x·σ(2u) to avoid the
    /// cancellation of 1 + tanh(u) in double as well.
    static func geluTanhReference(_ x: Double) -> Double {
        let u = 0.7978845608028654 * (x + 0.044715 * x * x * x)
        return x / (1 + Foundation.exp(-2 * u))
    }

    static func geluErfReference(_ x: Double) -> Double { 0.5 * x * Foundation.erfc(-x / 2.0.squareRoot()) }

    static func siluReference(_ x: Double) -> Double { x / (1 + Foundation.exp(-x)) }

    func testActivationsAgainstFloat64() {
        // Over |x| ≤ 3, within a few ulp beyond what the function's conditioning costs.
        let cases: [(String, (UnsafeMutablePointer<Float>, Int) -> Void, (Double) -> Double, Double)] = [
            ("geluTanh", { VectorMath.geluTanh($0, count: $1) }, Self.geluTanhReference, 4),
            ("geluErf", { VectorMath.geluErf($0, count: $1) }, Self.geluErfReference, 4),
            ("silu", { VectorMath.silu($0, count: $1) }, Self.siluReference, 4),
        ]
        for (name, function, reference, bound) in cases {
            let worst = Self.sweep(-3...3, count: 200_001, conditioned: true, function, reference)
            print("\(name) max error \(worst.error) ulp at x = \(worst.at)")
            XCTAssertLessThanOrEqual(worst.error, bound, "\(name) at x = \(worst.at)")
        }
        // In the tails the functions amplify the rounding of their argument (GELU's u is
        // cubic in x), so check the error relative to |x| instead: at most 2⁻²² |x|.
        for (name, function, reference, _) in cases {
            var xs = (0..<20_001).map { Float(-60 + 120 * Double($0) / 20_000) }
            let inputs = xs
            xs.withUnsafeMutableBufferPointer { function($0.baseAddress!, $0.count) }
            for (x, y) in zip(inputs, xs) {
                let exact = reference(Double(x))
                if !(abs(Double(y) - exact) <= 0x1p-22 * Swift.max(1, abs(Double(x)))) {
                    XCTFail("\(name)(\(x)) = \(y), expected \(exact)")
                    break
                }
            }
        }
        // Limits and NaN.
        for (name, function, _, _) in cases {
            var specials: [Float] = [.infinity, -.infinity, .nan, 0]
            specials.withUnsafeMutableBufferPointer { function($0.baseAddress!, $0.count) }
            XCTAssertEqual(specials[0], .infinity, name)
            XCTAssertEqual(specials[1], 0, name)
            XCTAssertTrue(specials[2].isNaN, name)
            XCTAssertEqual(specials[3], 0, name)
        }
    }

    func testVectorAndScalarFormsAgree() {
        let x = VectorMath.Vector((0..<16).map { Float($0) * 0.7 - 5 })
        let vector = VectorMath.geluErf(x)
        for lane in 0..<16 { XCTAssertEqual(vector[lane], VectorMath.geluErf(x[lane])) }
        let e = VectorMath.exp(x)
        for lane in 0..<16 { XCTAssertEqual(e[lane], VectorMath.exp(x[lane])) }
    }

    /// Deterministic values in [-1, 1).
    static func values(_ count: Int, seed: UInt64) -> [Float] {
        var state = seed
        return (0..<count).map { _ in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Float(state >> 40) / Float(1 << 23) - 1
        }
    }

    func testReductionsAndBLAS1() {
        for count in [0, 1, 15, 16, 17, 100, 1000] {
            let x = Self.values(count, seed: UInt64(count) + 1)
            let y = Self.values(count, seed: UInt64(count) + 99)
            let magnitude = x.reduce(0.0) { $0 + abs(Double($1)) }
            let bound = Double(count + 1) * 0x1p-24 * magnitude
            XCTAssertEqual(Double(VectorMath.sum(x, count: count)), x.reduce(0.0) { $0 + Double($1) }, accuracy: bound)
            let dotExact = zip(x, y).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            XCTAssertEqual(Double(VectorMath.dot(x, y, count: count)), dotExact, accuracy: bound + 1e-30)
            XCTAssertEqual(VectorMath.max(x, count: count), x.max() ?? -.infinity)
            // Squares are exact in Float64; only the count − 1 additions round (relative 2⁻⁵³ each).
            let squares = x.reduce(0.0) { $0 + Double($1) * Double($1) }
            XCTAssertEqual(VectorMath.sumOfSquares(x, count: count), squares, accuracy: Double(count + 1) * 0x1p-53 * squares)
            var scaled = x
            VectorMath.scale(&scaled, count: count, by: -2.5)
            XCTAssertEqual(scaled, x.map { $0 * -2.5 })
            var axpy = y
            VectorMath.addScaled(x, 0.5, to: &axpy, count: count)
            XCTAssertEqual(axpy, zip(x, y).map { $0.0 * 0.5 + $0.1 })   // one rounding: exact product ×0.5
            var added = y
            VectorMath.add(x, to: &added, count: count)
            XCTAssertEqual(added, zip(x, y).map { $0.0 + $0.1 })
        }
    }

    /// `sums` (the 16 halving trees as one butterfly) against `sum` lane by lane, bit for bit,
    /// with signed zeros, infinities, a subnormal and values whose sums cancel, so any change
    /// of pairing shows.
    func testButterflySumsEqualEachHorizontalSum() {
        var vectors = InlineArray<16, VectorMath.Vector>(repeating: VectorMath.Vector())
        for k in 0..<16 {
            let values = Self.values(16, seed: UInt64(300 + k)).enumerated().map { i, v in (i + k) % 5 == 0 ? v * 1e7 : v }
            vectors[k] = VectorMath.Vector(values)
        }
        vectors[3] = VectorMath.Vector(repeating: -0.0)
        vectors[7][2] = .infinity
        vectors[9][11] = -.infinity
        vectors[12][5] = 0x1p-140
        let together = VectorMath.sums(vectors)
        for k in 0..<16 {
            XCTAssertEqual(together[k].bitPattern, VectorMath.sum(vectors[k]).bitPattern, "lane \(k)")
        }
    }

    /// The width-instantiated `dotLanes` (x held in registers over up to 16 rows) against the
    /// per-row `dotLanes`, bit for bit, for 1–8 vectors (chains of whole 64-float steps, then
    /// the remainder into the first chain) and a partial tile of rows.
    func testWidthInstantiatedDotLanesEqualPerRow() {
        func check<let V: Int>(_ length: VectorMath.Vectors<V>.Type) {
            let d = 16 * V, stride = d + 5, count = 11
            let x = Self.values(d, seed: UInt64(400 + V)).map { $0 * 1e3 }, rows = Self.values(count * stride, seed: UInt64(500 + V))
            let lanes = VectorMath.dotLanes(length, x, rows: rows, rowStride: stride, count: count)
            for j in 0..<16 {
                let expected = j < count ? rows.withUnsafeBufferPointer { VectorMath.dotLanes(x, $0.baseAddress! + j * stride, count: d) }
                                         : VectorMath.Vector()
                XCTAssertEqual(lanes[j], expected, "\(V) vectors, row \(j)")
            }
        }
        check(VectorMath.Vectors<1>.self); check(VectorMath.Vectors<2>.self); check(VectorMath.Vectors<4>.self)
        check(VectorMath.Vectors<5>.self); check(VectorMath.Vectors<8>.self)
    }

    func testSoftmax() {
        for count in [1, 5, 16, 33, 300] {
            var row = Self.values(count, seed: 7).map { $0 * 30 }
            let input = row.map(Double.init)
            let lse = VectorMath.softmax(&row, count: count)
            let m = input.max()!
            let total = input.reduce(0.0) { $0 + Foundation.exp($1 - m) }
            XCTAssertEqual(Double(lse), m + Foundation.log(total), accuracy: 1e-5 * Swift.max(1, abs(m)))
            for (p, x) in zip(row, input) {
                XCTAssertEqual(Double(p), Foundation.exp(x - m) / total, accuracy: 4e-7 * Foundation.exp(x - m) / total + 1e-12)
            }
        }
        // A fully masked row gives zeros and a log-sum-exp of −∞, not NaN.
        var masked = [Float](repeating: -.infinity, count: 20)
        XCTAssertEqual(VectorMath.softmax(&masked, count: 20), -.infinity)
        XCTAssertEqual(masked, [Float](repeating: 0, count: 20))
        // Large values do not overflow.
        var large: [Float] = [1000, 1000]
        XCTAssertEqual(VectorMath.softmax(&large, count: 2), 1000 + Float(Foundation.log(2.0)), accuracy: 1e-3)
        XCTAssertEqual(large, [0.5, 0.5])
    }

    func testLayerNormAgainstFloat64() {
        for count in [1, 7, 16, 37, 300] {
            let x = Self.values(count, seed: 11).map { $0 * 5 + 3 }   // an offset mean, as residual streams have
            let weight = Self.values(count, seed: 12)
            let bias = Self.values(count, seed: 13)
            let xs = x.map(Double.init)
            let mean = xs.reduce(0, +) / Double(count)
            let variance = xs.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(count)
            let rstd = 1 / (variance + 1e-5).squareRoot()
            for withBias in [true, false] {
                var output = [Float](repeating: .nan, count: count)
                let saved = withBias
                    ? VectorMath.layerNorm(x, count: count, weight: weight, bias: bias, epsilon: 1e-5, output: &output)
                    : VectorMath.layerNorm(x, count: count, weight: weight, bias: nil, epsilon: 1e-5, output: &output)
                XCTAssertEqual(Double(saved.mean), mean, accuracy: 1e-6 * Swift.max(1, abs(mean)))
                XCTAssertEqual(Double(saved.rstd), rstd, accuracy: 1e-5 * rstd)
                for i in 0..<count {
                    let exact = (xs[i] - mean) * rstd * Double(weight[i]) + (withBias ? Double(bias[i]) : 0)
                    XCTAssertEqual(Double(output[i]), exact, accuracy: 2e-5 * Swift.max(1, abs(exact)), "count \(count) i \(i)")
                }
            }
            // In place gives the same values as out of place.
            var inPlace = x
            var separate = [Float](repeating: 0, count: count)
            VectorMath.layerNorm(x, count: count, weight: weight, bias: bias, epsilon: 1e-5, output: &separate)
            _ = inPlace.withUnsafeMutableBufferPointer { row in
                VectorMath.layerNorm(row.baseAddress!, count: count, weight: weight, bias: bias, epsilon: 1e-5, output: row.baseAddress!)
            }
            XCTAssertEqual(inPlace, separate)
        }
    }
}
