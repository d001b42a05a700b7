import FlashCore

/// Q4_0, Q4_1 and Q8_0 rows rearranged, once at load, into a layout vector registers decode
/// without widening instructions: the same quantised bytes, transposed so that one 64-byte load
/// viewed as 16 UInt32 lanes holds, in lane j, element j of several consecutive 16-element
/// runs; scales widened to Float32 so they broadcast straight from memory (Q4_1: 96 bytes per
/// 128 elements instead of 80; the decode loop is instruction-bound, not memory-bound, here).
///
/// - Q4 group (4 blocks, 128 elements, 96 bytes): bytes [0, 64): lane j byte b is byte j of
///   block b's nibbles, so nibble 2b of lane j is element 32b + j and nibble 2b+1 is element
///   32b + 16 + j; then 4 Float32 `d` and 4 Float32 `m` (0 for Q4_0).
/// - Q8 group (2 blocks, 64 elements, 72 bytes): lane j byte k is element 16k + j; then 2
///   Float32 `d`.
///
/// A lane's field becomes a Float32 by the exponent trick: OR-ing an integer n < 2^22 into the
/// mantissa of 2^23 (0x4B000000) gives the float 2^23 + n exactly; signed bytes use 1.5·2^23.
final class PackedRows: @unchecked Sendable {
    let type: GGMLType
    let rows: Int
    let blocks: Int
    let groups: Int
    let groupBytes: Int
    let blocksPerGroup: Int
    let rowBytes: Int
    let data: UnsafeMutableRawPointer

    static func supports(_ type: GGMLType) -> Bool { type == .q4_0 || type == .q4_1 || type == .q8_0 }

    init(type: GGMLType, rows: Int, columns: Int, source: UnsafeRawPointer, sourceRowBytes: Int) {
        self.type = type
        self.rows = rows
        blocks = columns / 32
        blocksPerGroup = type == .q8_0 ? 2 : 4
        groups = (blocks + blocksPerGroup - 1) / blocksPerGroup
        groupBytes = type == .q8_0 ? 72 : 96
        rowBytes = groups * groupBytes
        data = UnsafeMutableRawPointer.allocate(byteCount: max(rows * rowBytes, 1), alignment: 64)
        data.initializeMemory(as: UInt8.self, repeating: 0, count: max(rows * rowBytes, 1))
        let (blocks, groups, groupBytes, rowBytes, data) = (blocks, groups, groupBytes, rowBytes, data)
        let type = type
        Parallel.forEach(rows) { r in
            let from = source + r * sourceRowBytes
            let to = data + r * rowBytes
            for g in 0..<groups {
                let group = to + g * groupBytes
                if type == .q8_0 {
                    for bi in 0..<2 where 2 * g + bi < blocks {
                        let block = from + (2 * g + bi) * 34
                        group.storeBytes(of: Quantization.half(block), toByteOffset: 64 + 4 * bi, as: Float.self)
                        for e in 0..<32 {
                            let k = 2 * bi + e / 16, j = e % 16
                            group.storeBytes(of: block.load(fromByteOffset: 2 + e, as: UInt8.self), toByteOffset: 4 * j + k, as: UInt8.self)
                        }
                    }
                } else {
                    let header = type == .q4_1 ? 4 : 2
                    let blockBytes = type.blockBytes
                    for bi in 0..<4 where 4 * g + bi < blocks {
                        let block = from + (4 * g + bi) * blockBytes
                        group.storeBytes(of: Quantization.half(block), toByteOffset: 64 + 4 * bi, as: Float.self)
                        if type == .q4_1 {
                            group.storeBytes(of: Quantization.half(block, 2), toByteOffset: 80 + 4 * bi, as: Float.self)
                        }
                        for j in 0..<16 {
                            group.storeBytes(of: block.load(fromByteOffset: header + j, as: UInt8.self), toByteOffset: 4 * j + bi, as: UInt8.self)
                        }
                    }
                }
            }
        }
    }

    deinit { data.deallocate() }

    typealias Vector = SIMD16<Float>
    typealias Lanes = SIMD16<UInt32>

    @inline(__always)
    static func scale(_ p: UnsafeRawPointer, _ offset: Int) -> Float {
        p.loadUnaligned(fromByteOffset: offset, as: Float.self)
    }

    /// Nibble field `shift` of every lane as Float32, minus `offset` (8 for Q4_0, 0 for Q4_1).
    @inline(__always)
    static func nibbles(_ v: Lanes, _ shift: UInt32, minus offset: Float) -> Vector {
        let bits = ((v &>> shift) & 0xF) | 0x4B00_0000
        return unsafeBitCast(bits, to: Vector.self) - (8_388_608 + offset)
    }

    /// Signed byte field `k` of every lane as Float32.
    @inline(__always)
    static func signedBytes(_ v: Lanes, _ k: UInt32) -> Vector {
        let signed = (unsafeBitCast(v, to: SIMD16<Int32>.self) &<< Int32(24 - 8 * k)) &>> Int32(24)
        return unsafeBitCast(signed &+ 0x4B40_0000, to: Vector.self) - 12_582_912
    }

    @inline(__always)
    static func load(_ p: UnsafePointer<Float>) -> Vector { UnsafeRawPointer(p).loadUnaligned(as: Vector.self) }

    /// Row `r` · x. `blockSums[b]` = Σ x over block b (used by Q4_1's m).
    @inline(__always)
    func dot(_ r: Int, _ x: UnsafePointer<Float>, _ blockSums: UnsafePointer<Float>?) -> Float {
        let row = UnsafeRawPointer(data) + r &* rowBytes
        var acc = Vector()
        var offsets: Float = 0
        if type == .q8_0 {
            for g in 0..<groups {
                let group = row + g * groupBytes
                let v = group.loadUnaligned(as: Lanes.self)
                let xs = x + 64 * g
                let first = (Self.signedBytes(v, 0) * Self.load(xs)).addingProduct(Self.signedBytes(v, 1), Self.load(xs + 16))
                acc = acc.addingProduct(first, Vector(repeating: Self.scale(group, 64)))
                if 2 * g + 1 < blocks {
                    let second = (Self.signedBytes(v, 2) * Self.load(xs + 32)).addingProduct(Self.signedBytes(v, 3), Self.load(xs + 48))
                    acc = acc.addingProduct(second, Vector(repeating: Self.scale(group, 68)))
                }
            }
            return acc.sum()
        }
        // Q4: full groups unrolled (two accumulators for instruction-level parallelism), then
        // the blocks of a partial last group.
        let offset: Float = type == .q4_0 ? 8 : 0
        var other = Vector()
        let fullGroups = blocks / 4
        var g = 0
        while g < fullGroups {
            let group = row + g &* 96
            let v = group.loadUnaligned(as: Lanes.self)
            let xs = x + g &* 128
            let b0 = (Self.nibbles(v, 0, minus: offset) * Self.load(xs)).addingProduct(Self.nibbles(v, 4, minus: offset), Self.load(xs + 16))
            let b1 = (Self.nibbles(v, 8, minus: offset) * Self.load(xs + 32)).addingProduct(Self.nibbles(v, 12, minus: offset), Self.load(xs + 48))
            let b2 = (Self.nibbles(v, 16, minus: offset) * Self.load(xs + 64)).addingProduct(Self.nibbles(v, 20, minus: offset), Self.load(xs + 80))
            let b3 = (Self.nibbles(v, 24, minus: offset) * Self.load(xs + 96)).addingProduct(Self.nibbles(v, 28, minus: offset), Self.load(xs + 112))
            acc = acc.addingProduct(b0, Vector(repeating: Self.scale(group, 64)))
            other = other.addingProduct(b1, Vector(repeating: Self.scale(group, 68)))
            acc = acc.addingProduct(b2, Vector(repeating: Self.scale(group, 72)))
            other = other.addingProduct(b3, Vector(repeating: Self.scale(group, 76)))
            if let blockSums {
                let sums = blockSums + g &* 4
                offsets += Self.scale(group, 80) * sums[0] + Self.scale(group, 84) * sums[1]
                    + Self.scale(group, 88) * sums[2] + Self.scale(group, 92) * sums[3]
            }
            g &+= 1
        }
        if fullGroups < groups {
            let group = row + fullGroups &* 96
            let v = group.loadUnaligned(as: Lanes.self)
            for bi in 0..<(blocks - 4 * fullGroups) {
                let xs = x + 128 * fullGroups + 32 * bi
                let shift = UInt32(8 * bi)
                let block = (Self.nibbles(v, shift, minus: offset) * Self.load(xs))
                    .addingProduct(Self.nibbles(v, shift + 4, minus: offset), Self.load(xs + 16))
                acc = acc.addingProduct(block, Vector(repeating: Self.scale(group, 64 + 4 * bi)))
                if let blockSums {
                    offsets = offsets.addingProduct(Self.scale(group, 80 + 4 * bi), blockSums[4 * fullGroups + bi])
                }
            }
        }
        return (acc + other).sum() + offsets
    }

    /// Decodes row `r` to Float32.
    func dequantizeRow(_ r: Int, into y: UnsafeMutablePointer<Float>) {
        let row = UnsafeRawPointer(data + r * rowBytes)
        for g in 0..<groups {
            let group = row + g * groupBytes
            let v = group.loadUnaligned(as: Lanes.self)
            for bi in 0..<min(blocksPerGroup, blocks - blocksPerGroup * g) {
                let out = y + 32 * (blocksPerGroup * g + bi)
                let d = Vector(repeating: Self.scale(group, 64 + 4 * bi))
                let low: Vector, high: Vector
                if type == .q8_0 {
                    low = Self.signedBytes(v, UInt32(2 * bi)) * d
                    high = Self.signedBytes(v, UInt32(2 * bi + 1)) * d
                } else {
                    let m = Vector(repeating: type == .q4_1 ? Self.scale(group, 80 + 4 * bi) : 0)
                    let offset: Float = type == .q4_0 ? 8 : 0
                    low = Self.nibbles(v, UInt32(8 * bi), minus: offset) * d + m
                    high = Self.nibbles(v, UInt32(8 * bi + 4), minus: offset) * d + m
                }
                UnsafeMutableRawPointer(out).storeBytes(of: low, as: Vector.self)
                UnsafeMutableRawPointer(out + 16).storeBytes(of: high, as: Vector.self)
            }
        }
    }
}
