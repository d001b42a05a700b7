import FlashCore
import XCTest

/// Float16 and bfloat16 conversions: exhaustive round trips, round-to-nearest-even ties,
/// and the special values.
final class ElementTypeTests: XCTestCase {
    /// Every bfloat16 bit pattern widens exactly and narrows back to itself; NaN stays NaN
    /// with its sign (a signalling NaN comes back quiet).
    func testBFloat16RoundTripIsExactForAllBitPatterns() {
        let patterns = (0...UInt16.max).map { BFloat16(bitPattern: $0) }
        var widened = [Float](repeating: 0, count: patterns.count)
        var narrowed = [BFloat16](repeating: BFloat16(bitPattern: 0), count: patterns.count)
        ElementConversion.widen(patterns, into: &widened, count: patterns.count)
        ElementConversion.narrow(widened, into: &narrowed, count: patterns.count)
        var nanCount = 0
        for (index, pattern) in patterns.enumerated() {
            let bits = pattern.bitPattern
            // Exact widening: the bfloat16 bits are the top half of the Float32 bits.
            XCTAssertEqual(widened[index].bitPattern, UInt32(bits) << 16)
            if widened[index].isNaN {
                nanCount += 1
                XCTAssertTrue(narrowed[index].floatValue.isNaN, "pattern \(bits)")
                XCTAssertEqual(narrowed[index].bitPattern & 0x8000, bits & 0x8000, "NaN sign of \(bits)")
            } else {
                XCTAssertEqual(narrowed[index].bitPattern, bits, "pattern \(bits)")
            }
        }
        XCTAssertEqual(nanCount, 2 * 127)   // exponent all ones, mantissa ≠ 0, both signs
    }

    func testFloat16RoundTripIsExactForAllBitPatterns() {
        let patterns = (0...UInt16.max).map { Float16(bitPattern: $0) }
        var widened = [Float](repeating: 0, count: patterns.count)
        var narrowed = [Float16](repeating: 0, count: patterns.count)
        ElementConversion.widen(patterns, into: &widened, count: patterns.count)
        ElementConversion.narrow(widened, into: &narrowed, count: patterns.count)
        var nanCount = 0
        for (index, pattern) in patterns.enumerated() {
            let bits = pattern.bitPattern
            if pattern.isNaN {
                nanCount += 1
                XCTAssertTrue(widened[index].isNaN)
                XCTAssertTrue(narrowed[index].isNaN, "pattern \(bits)")
                XCTAssertEqual(narrowed[index].bitPattern & 0x8000, bits & 0x8000, "NaN sign of \(bits)")
            } else {
                // Widening is exact: compare with the value from the bit fields in Float64.
                let exponent = Int(bits >> 10) & 0x1F, mantissa = Double(bits & 0x3FF)
                let magnitude = exponent == 0 ? mantissa * 0x1p-24
                    : exponent == 31 ? Double.infinity : (1 + mantissa / 1024) * Foundation.pow(2, Double(exponent - 15))
                XCTAssertEqual(Double(widened[index]), bits & 0x8000 != 0 ? -magnitude : magnitude, "pattern \(bits)")
                XCTAssertEqual(narrowed[index].bitPattern, bits, "pattern \(bits)")
            }
        }
        XCTAssertEqual(nanCount, 2 * 1023)
    }

    func testBFloat16RoundsToNearestEven() {
        func narrow(_ bits: UInt32) -> UInt16 { BFloat16(Float(bitPattern: bits)).bitPattern }
        XCTAssertEqual(narrow(0x3F80_8000), 0x3F80)   // 1 + 2⁻⁸: tie, down to even 1.0
        XCTAssertEqual(narrow(0x3F81_8000), 0x3F82)   // tie, up to even
        XCTAssertEqual(narrow(0x3F80_8001), 0x3F81)   // just above the tie
        XCTAssertEqual(narrow(0x3F80_7FFF), 0x3F80)   // just below
        XCTAssertEqual(narrow(0xBF81_8000), 0xBF82)   // negative ties mirror
        XCTAssertEqual(narrow(0x7F7F_FFFF), 0x7F80)   // Float32 max rounds up to +Inf
        XCTAssertEqual(narrow(0x7F7F_7FFF), 0x7F7F)   // ... but below the midpoint to bfloat16 max
        // Subnormals round like normal numbers (same exponent range as Float32).
        XCTAssertEqual(narrow(0x0000_8000), 0x0000)   // tie between 0 and the smallest subnormal
        XCTAssertEqual(narrow(0x0001_8000), 0x0002)
        XCTAssertEqual(narrow(0x0000_8001), 0x0001)
        XCTAssertEqual(narrow(0x807F_FFFF), 0x8080)   // largest negative subnormal rounds to −min normal
        // Specials.
        XCTAssertEqual(BFloat16(Float.infinity).bitPattern, 0x7F80)
        XCTAssertEqual(BFloat16(-Float.infinity).bitPattern, 0xFF80)
        XCTAssertEqual(BFloat16(Float(0)).bitPattern, 0x0000)
        XCTAssertEqual(BFloat16(Float(-0.0)).bitPattern, 0x8000)
        // A NaN whose payload lies only in the low bits must not truncate to Inf.
        let lowPayloadNaN = Float(bitPattern: 0x7F80_0001)
        XCTAssertTrue(BFloat16(lowPayloadNaN).floatValue.isNaN)
        XCTAssertTrue(BFloat16(-Float.nan).floatValue.isNaN)
        XCTAssertEqual(BFloat16(-Float.nan).bitPattern & 0x8000, 0x8000)
    }

    /// For random Float32 bit patterns (all exponents, subnormals included), the bfloat16
    /// result is the nearer of the two bfloat16 values around x, the even one on a tie,
    /// decided in Float64 (bfloat16 max rounds up to Inf past max + half an ulp, as 2¹²⁸).
    func testBFloat16MatchesNearestEvenReference() {
        var state: UInt64 = 12345
        for _ in 0..<200_000 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let bits = UInt32(truncatingIfNeeded: state >> 32)
            let x = Float(bitPattern: bits)
            if x.isNaN || x.isInfinite { continue }
            let low = UInt16(bits >> 16)              // truncated: toward zero in magnitude
            let high = low &+ 1                       // next bfloat16 away from zero
            func value(_ pattern: UInt16) -> Double {
                pattern & 0x7FFF == 0x7F80 ? (pattern & 0x8000 != 0 ? -0x1p128 : 0x1p128)
                    : Double(Float(bitPattern: UInt32(pattern) << 16))
            }
            let toLow = abs(Double(x) - value(low)), toHigh = abs(value(high) - Double(x))
            let expected = toLow < toHigh ? low : toHigh < toLow ? high : (low & 1 == 0 ? low : high)
            XCTAssertEqual(BFloat16(x).bitPattern, expected, "x bits \(String(bits, radix: 16))")
        }
    }

    func testFloat16RoundsToNearestEven() {
        func narrow(_ value: Double) -> UInt16 { Float16(Float(value)).bitPattern }
        XCTAssertEqual(narrow(1 + 0x1p-11), 0x3C00)        // tie, down to even 1.0
        XCTAssertEqual(narrow(1 + 3 * 0x1p-11), 0x3C02)    // tie, up to even
        XCTAssertEqual(narrow(1 + 0x1p-11 + 0x1p-20), 0x3C01)
        XCTAssertEqual(narrow(0x1p-25), 0x0000)            // tie between 0 and the smallest subnormal
        XCTAssertEqual(narrow(3 * 0x1p-25), 0x0002)        // tie between subnormals 1 and 2 → 2
        XCTAssertEqual(narrow(0x1p-24), 0x0001)            // smallest subnormal is exact
        XCTAssertEqual(narrow(65504), 0x7BFF)              // largest finite
        XCTAssertEqual(narrow(65519), 0x7BFF)              // below the midpoint to 65536
        XCTAssertEqual(narrow(65520), 0x7C00)              // the midpoint rounds to +Inf
        XCTAssertEqual(narrow(-.infinity), 0xFC00)
        XCTAssertEqual(narrow(-0.0), 0x8000)
        XCTAssertTrue(Float16(Float.nan).isNaN)
    }

    func testTensorStorageInEachElementType() throws {
        let values: [Float] = [1, -2.5, 0.1, 65504, 1e-6, -0.0, .infinity, 3.140625]
        for type in ElementType.allCases {
            let tensor = try Tensor(shape: [2, 4], values: values, elementType: type)
            XCTAssertEqual(tensor.storage.byteCount, 8 * type.byteSize)
            let expected: [Float] = values.map {
                switch type {
                case .float32: return $0
                case .float16: return Float(Float16($0))
                case .bfloat16: return BFloat16($0).floatValue
                }
            }
            XCTAssertEqual(tensor.floats().map(\.bitPattern), expected.map(\.bitPattern), "\(type)")
            tensor[1, 3] = 0.333
            XCTAssertEqual(tensor[1, 3], type == .float32 ? 0.333 : type == .float16 ? Float(Float16(0.333)) : BFloat16(0.333).floatValue)
            // Converting to another type rounds once from the stored value.
            let converted = tensor.contiguous(as: .bfloat16)
            XCTAssertEqual(converted.floats().map(\.bitPattern), tensor.floats().map { BFloat16($0).floatValue.bitPattern })
        }
    }
}
