/// The element types a tensor can store. The 16-bit types are storage formats only: every
/// kernel converts them to Float32 on load and computes in Float32.
public enum ElementType: String, Sendable, CaseIterable, Codable {
    /// IEEE-754 binary32: 4 bytes.
    case float32 = "F32"
    /// IEEE-754 binary16: 2 bytes, 11-bit significand, range ±65504.
    case float16 = "F16"
    /// bfloat16: 2 bytes, Float32's range with an 8-bit significand.
    case bfloat16 = "BF16"

    /// Bytes one element occupies.
    public var byteSize: Int { self == .float32 ? 4 : 2 }
}

/// bfloat16: the top 16 bits of an IEEE-754 binary32 (1 sign, 8 exponent, 7 mantissa bits).
/// Same range as Float32, three significant decimal digits.
public struct BFloat16: Sendable, Hashable, CustomStringConvertible {
    /// The 16 bits: sign, 8 exponent bits, 7 mantissa bits.
    public var bitPattern: UInt16

    /// The value with these 16 bits.
    public init(bitPattern: UInt16) { self.bitPattern = bitPattern }

    /// Rounds to nearest, ties to even. NaN stays NaN (quiet, sign kept), ±Inf and ±0 are exact,
    /// Float32 subnormals round like any other value (bfloat16 has the same subnormal range).
    @inlinable
    public init(_ value: Float) {
        let bits = value.bitPattern
        if value.isNaN {
            // Keep the sign and force a quiet-NaN mantissa bit so truncation cannot yield Inf.
            bitPattern = UInt16(truncatingIfNeeded: bits >> 16) | 0x0040
            return
        }
        // Round to nearest even: add 0x7FFF plus the lowest kept bit, then truncate.
        // Overflow carries correctly into the exponent (and to Inf at the top of the range).
        let lsb = (bits >> 16) & 1
        bitPattern = UInt16(truncatingIfNeeded: (bits &+ 0x7FFF &+ lsb) >> 16)
    }

    /// Exact: every bfloat16 value is a Float32 value.
    @inlinable
    public var floatValue: Float { Float(bitPattern: UInt32(bitPattern) << 16) }

    /// The value as Float32 prints it.
    public var description: String { floatValue.description }
}

/// Conversions between Float32 buffers and the 16-bit storage formats.
public enum ElementConversion {
    /// Converts `count` Float16 values to Float32 (exact).
    @inlinable
    public static func widen(_ source: UnsafePointer<Float16>, into destination: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { destination[i] = Float(source[i]) }
    }

    /// Converts `count` bfloat16 values to Float32 (exact).
    @inlinable
    public static func widen(_ source: UnsafePointer<BFloat16>, into destination: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { destination[i] = source[i].floatValue }
    }

    /// Rounds `count` Float32 values to Float16 (nearest even; overflow to ±Inf, NaN kept).
    @inlinable
    public static func narrow(_ source: UnsafePointer<Float>, into destination: UnsafeMutablePointer<Float16>, count: Int) {
        for i in 0..<count { destination[i] = Float16(source[i]) }
    }

    /// Rounds `count` Float32 values to bfloat16 (nearest even, NaN kept).
    @inlinable
    public static func narrow(_ source: UnsafePointer<Float>, into destination: UnsafeMutablePointer<BFloat16>, count: Int) {
        for i in 0..<count { destination[i] = BFloat16(source[i]) }
    }
}
