import FlashCore
#if FLASH_ISA_AVX512 || FLASH_ISA_AVX2
import QuantizedDotKernels
#endif

/// Rows of activations quantised to 8 bits per block of 32, the form in which the quantised
/// products (Q4_0, Q4_1, Q8_0 weights) take their input — llama.cpp's `vec_dot_type` (Q8_0,
/// with the block sum of Q8_1). Each row is quantised once per product and then used by every
/// weight row, so the integer block dot products read 8-bit activations.
///
/// Per block of 32 values x: d = max|x| / 127, q = round(x / d) to nearest even (computed as
/// x · (1/d) in Float32, so |q − x/d| ≤ 1/2 up to one rounding), q ∈ [−127, 127]; the block
/// with max|x| = 0 has d = 0 and q = 0. The block also keeps s = d · Σ q, which carries the
/// per-block offsets of Q4_0/Q4_1 (and the bias of the unsigned form of Q8_0) in one multiply.
/// A block holding a non-finite value gets d = NaN (q = 0), so the products come out NaN
/// rather than from a truncated integer.
///
/// Row layout (read by the C kernels, see QuantizedDotKernels.h): 32·B signed bytes in groups
/// of 4 blocks (elements 0..15 of each block of the group, then 16..31 of each), then B Float32
/// d, then B Float32 s.
///
/// Not locked: each product makes its own, its rows are quantised by one thread each (workers
/// take disjoint rows), and the region's join orders those writes before any read.
public final class Q8Activations: @unchecked Sendable {
    /// Number of rows and of blocks of 32 per row.
    public let rows: Int
    public let blocks: Int
    /// Bytes from one row to the next.
    let rowBytes: Int
    let data: UnsafeMutableRawPointer

    /// Room for `rows` rows of `columns` values (a multiple of 32).
    public convenience init(rows: Int, columns: Int) throws {
        try InvalidArgument.require(rows >= 0, "rows", expected: "non-negative", got: "\(rows)")
        try InvalidArgument.require(columns >= 0 && columns % 32 == 0, "columns", expected: "a non-negative multiple of 32", got: "\(columns)")
        self.init(validatedRows: rows, columns: columns)
    }

    /// Unchecked (callers validated the shape).
    init(validatedRows rows: Int, columns: Int) {
        self.rows = rows
        blocks = columns / 32
        rowBytes = 40 * blocks
        // 64 bytes of padding: the kernels' last group of a row reads whole registers.
        data = UnsafeMutableRawPointer.allocate(byteCount: rows * rowBytes + 64, alignment: 64)
        (data + rows * rowBytes).initializeMemory(as: UInt8.self, repeating: 0, count: 64)
    }

    deinit { data.deallocate() }

    /// The byte offset of element `e` of block `b` within a row's values.
    @inline(__always)
    static func offset(block b: Int, element e: Int, blocks: Int) -> Int {
        let group = b >> 2, i = b & 3
        let t = min(4, blocks - 4 * group)
        return 128 * group + (e < 16 ? 16 * i + e : 16 * t + 16 * i + e - 16)
    }

    @inline(__always) func row(_ r: Int) -> UnsafeMutableRawPointer { data + r * rowBytes }
    @inline(__always) func scales(_ r: Int) -> UnsafeMutablePointer<Float> {
        (row(r) + 32 * blocks).assumingMemoryBound(to: Float.self)
    }
    @inline(__always) func scaledSums(_ r: Int) -> UnsafeMutablePointer<Float> { scales(r) + blocks }

    /// Quantises `32·blocks` values at `x` into row `r`.
    public func quantize(row r: Int, from x: UnsafePointer<Float>) {
        #if FLASH_ISA_AVX512 || FLASH_ISA_AVX2
        // The same arithmetic in C (see QuantizedDotKernels.h for why).
        flash_quantize_q8_row(x, Int32(blocks), row(r))
        #else
        let values = row(r).assumingMemoryBound(to: Int8.self)
        let d = scales(r), s = scaledSums(r)
        for b in 0..<blocks {
            let v = UnsafeRawPointer(x + 32 * b).loadUnaligned(as: SIMD32<Float>.self)
            let amax = max(v.max(), -v.min())
            guard amax.isFinite else {
                for e in 0..<32 { values[Self.offset(block: b, element: e, blocks: blocks)] = 0 }
                (d[b], s[b]) = (.nan, .nan)
                continue
            }
            let scale = amax / 127
            // A scale that underflows to a subnormal would make 1/d infinite: such a block is
            // below Float32's resolution anyway and quantises to zero.
            let inverse = scale > 0 && (1 / scale).isFinite ? 1 / scale : 0
            let q = (v * inverse).rounded(.toNearestOrEven)
            var sum = 0
            for e in 0..<32 {
                let value = Int8(q[e])
                values[Self.offset(block: b, element: e, blocks: blocks)] = value
                sum += Int(value)
            }
            (d[b], s[b]) = (inverse == 0 ? 0 : scale, (inverse == 0 ? 0 : scale) * Float(sum))
        }
        #endif
    }

    /// Quantised value of element `e` (0..<32·blocks, in row order) of row `r`.
    public func value(row r: Int, element e: Int) -> Int8 {
        row(r).load(fromByteOffset: Self.offset(block: e / 32, element: e % 32, blocks: blocks), as: Int8.self)
    }

    /// d of block `b` of row `r`.
    public func scale(row r: Int, block b: Int) -> Float { scales(r)[b] }

    /// s = d·Σq of block `b` of row `r`.
    public func scaledSum(row r: Int, block b: Int) -> Float { scaledSums(r)[b] }
}
