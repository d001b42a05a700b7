import HalfPrecision

/// Whole rows converted between Float16 and Float32 with the vector unit's conversion
/// instructions (see HalfPrecision.h for why not Swift's `Float16(_:)` in a loop). Used by the
/// half-precision KV cache: rows are narrowed once when stored and widened once per tile read.
public enum HalfRows {
    /// destination[i] = Float(source[i]) for i < count.
    @inlinable @inline(__always)
    public static func widen(_ source: UnsafePointer<Float16>, into destination: UnsafeMutablePointer<Float>, count: Int) {
        flash_halves_to_floats(UnsafeRawPointer(source).assumingMemoryBound(to: UInt16.self), destination, count)
    }

    /// destination[i] = Float16(source[i]) (nearest, ties to even) for i < count.
    @inlinable @inline(__always)
    public static func narrow(_ source: UnsafePointer<Float>, into destination: UnsafeMutablePointer<Float16>, count: Int) {
        flash_floats_to_halves(source, UnsafeMutableRawPointer(destination).assumingMemoryBound(to: UInt16.self), count)
    }
}
