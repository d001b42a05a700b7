import FlashCore
#if FLASH_ISA_AVX512 || FLASH_ISA_AVX2
import QuantizedDotKernels
#endif

/// Q4_0, Q4_1 and Q8_0 rows rearranged once at load for the integer block dot products with
/// 8-bit activations (`Q8Activations`): per row, the quantised values of every block, then the
/// blocks' Float16 scales d, then (Q4_1) their Float16 mins m. The same bytes as the file's
/// blocks, only regrouped, so the packed rows are exactly as large (decoding reads every weight
/// byte once per token).
/// - Q4: 16 bytes per block in ggml's order (low nibble of byte j is element j, the high
///   nibble element j + 16); values d·(q − 8) (Q4_0) or d·q + m (Q4_1).
/// - Q8_0: 32 signed bytes per block in the activation rows' group order (groups of 4 blocks:
///   elements 0..15 of each block, then 16..31 of each); values d·q.
///
/// A row's dot product with an activation row is, per block, d·d_x·(Σ q·q_x) in exact integers
/// plus an offset through s_x = d_x·Σq_x (m·s_x for Q4_1, −8·d·s_x for Q4_0). On AVX2 and
/// AVX-512 builds it runs in the C kernels of QuantizedDotKernels (vpmaddubsw/vpmaddwd, or
/// VNNI vpdpbusd; Swift cannot reach those instructions, see README); other targets use the
/// portable Swift loop below, which computes the same integer sums.
final class PackedRows: @unchecked Sendable {
    let type: GGMLType
    let rows: Int
    let blocks: Int
    /// Bytes of quantised values per row (16 or 32 per block).
    let quantBytes: Int
    let rowBytes: Int
    let data: UnsafeMutableRawPointer

    static func supports(_ type: GGMLType) -> Bool { type == .q4_0 || type == .q4_1 || type == .q8_0 }

    init(type: GGMLType, rows: Int, columns: Int, source: UnsafeRawPointer, sourceRowBytes: Int) {
        self.type = type
        self.rows = rows
        blocks = columns / 32
        quantBytes = (type == .q8_0 ? 32 : 16) * blocks
        rowBytes = quantBytes + (type == .q4_1 ? 4 : 2) * blocks
        // 64 bytes of padding: the kernels' last group of a row reads whole registers (see
        // QuantizedDotKernels.h).
        data = UnsafeMutableRawPointer.allocate(byteCount: rows * rowBytes + 64, alignment: 64)
        (data + rows * rowBytes).initializeMemory(as: UInt8.self, repeating: 0, count: 64)
        let (blocks, quantBytes, rowBytes, data) = (blocks, quantBytes, rowBytes, data)
        let blockBytes = type.blockBytes
        let header = type == .q4_1 ? 4 : 2
        Parallel.forEach(rows) { r in
            let from = source + r * sourceRowBytes
            let to = data + r * rowBytes
            for b in 0..<blocks {
                let block = from + b * blockBytes
                to.storeBytes(of: block.loadUnaligned(as: UInt16.self), toByteOffset: quantBytes + 2 * b, as: UInt16.self)
                if type == .q4_1 {
                    to.storeBytes(of: block.loadUnaligned(fromByteOffset: 2, as: UInt16.self),
                                  toByteOffset: quantBytes + 2 * blocks + 2 * b, as: UInt16.self)
                }
                if type == .q8_0 {
                    for e in 0..<32 {
                        to.storeBytes(of: block.load(fromByteOffset: 2 + e, as: UInt8.self),
                                      toByteOffset: Q8Activations.offset(block: b, element: e, blocks: blocks), as: UInt8.self)
                    }
                } else {
                    (to + 16 * b).copyMemory(from: block + header, byteCount: 16)
                }
            }
        }
    }

    deinit { data.deallocate() }

    @inline(__always) func row(_ r: Int) -> UnsafeRawPointer { UnsafeRawPointer(data) + r &* rowBytes }
    @inline(__always) func scales(_ row: UnsafeRawPointer) -> UnsafePointer<UInt16> {
        (row + quantBytes).assumingMemoryBound(to: UInt16.self)
    }
    /// Q4_1's mins; nil for the other types.
    @inline(__always) func mins(_ row: UnsafeRawPointer) -> UnsafePointer<UInt16>? {
        type == .q4_1 ? scales(row) + blocks : nil
    }

    /// The integer Σ q·q_x of block `b` of weight row `row` and of activation row `x`
    /// (portable reference of the C kernels; q is Q4's unsigned nibble, Q8_0's signed byte).
    @inline(__always)
    func blockSum(_ row: UnsafeRawPointer, _ b: Int, _ x: UnsafeRawPointer) -> Int32 {
        var sum: Int32 = 0
        for e in 0..<32 {
            let o = Q8Activations.offset(block: b, element: e, blocks: blocks)
            let w: Int32
            if type == .q8_0 {
                w = Int32(row.load(fromByteOffset: o, as: Int8.self))
            } else {
                let byte = row.load(fromByteOffset: 16 * b + e % 16, as: UInt8.self)
                w = Int32(e < 16 ? byte & 0x0F : byte >> 4)
            }
            sum &+= w &* Int32(x.load(fromByteOffset: o, as: Int8.self))
        }
        return sum
    }

    /// The kernels' code for the type: 0 = Q4_0, 1 = Q4_1, 2 = Q8_0.
    var kind: Int32 { type == .q4_0 ? 0 : type == .q4_1 ? 1 : 2 }

    /// y[t·yStride + i] = row `rows.lowerBound + i` · activation row `first + t`, for every row
    /// of `rows` and t < count. Each element gets the same arithmetic whatever `rows` and
    /// `count` are, so a mat-vec and any batch or tile give bit-identical results.
    @inline(__always)
    func dot(rows: Range<Int>, _ x: Q8Activations, first: Int, count: Int, _ y: UnsafeMutablePointer<Float>, yStride: Int) {
        #if FLASH_ISA_AVX512 || FLASH_ISA_AVX2
        flash_quantized_dot_tile(kind, row(rows.lowerBound), rowBytes, Int32(rows.count), Int32(blocks),
                                 UnsafeRawPointer(x.row(first)), x.rowBytes, Int32(count), y, yStride)
        #else
        for (i, r) in rows.enumerated() {
            let row = row(r)
            let d = scales(row), m = mins(row)
            for t in 0..<count {
                let a = first + t
                let xq = UnsafeRawPointer(x.row(a)), xd = x.scales(a), xs = x.scaledSums(a)
                var total: Float = 0
                for b in 0..<blocks {
                    let scale = Float(Float16(bitPattern: d[b]))
                    let offset: Float = switch type {
                    case .q4_1: Float(Float16(bitPattern: m![b]))
                    case .q4_0: -8 * scale
                    default: 0
                    }
                    total += Float(blockSum(row, b, xq)) * (scale * xd[b]) + offset * xs[b]
                }
                y[t * yStride + i] = total
            }
        }
        #endif
    }

    /// Decodes row `r` to Float32.
    func dequantizeRow(_ r: Int, into y: UnsafeMutablePointer<Float>) {
        let row = row(r)
        let d = scales(row), m = mins(row)
        for b in 0..<blocks {
            let scale = Float(Float16(bitPattern: d[b]))
            for e in 0..<32 {
                let value: Float
                switch type {
                case .q8_0:
                    let o = Q8Activations.offset(block: b, element: e, blocks: blocks)
                    value = scale * Float(row.load(fromByteOffset: o, as: Int8.self))
                default:
                    let byte = row.load(fromByteOffset: 16 * b + e % 16, as: UInt8.self)
                    let q = Float(e < 16 ? byte & 0x0F : byte >> 4)
                    value = m.map { scale * q + Float(Float16(bitPattern: $0[b])) } ?? scale * (q - 8)
                }
                y[32 * b + e] = value
            }
        }
    }
}
