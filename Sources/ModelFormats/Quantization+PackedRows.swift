import FlashCore

/// Q4_0, Q4_1 and Q8_0 rows rearranged, once at load, into a layout vector registers decode
/// in two instructions per 16 elements (a shift and a fused and-or), with no widening or
/// int-to-float conversion: the same quantised bytes, transposed so that one 64-byte load viewed
/// as 16 UInt32 lanes holds, in lane j, element j of several consecutive 16-element runs.
///
/// Decoding: a q-bit field placed in the top mantissa bits of 1.0 gives f = 1 + q/2^q exactly
/// (OR into 0x3F800000). Every block's values are then affine in f, value = D·f + C, so
/// Σ value·x = D·Σ f·x + C·Σ x: the vector loop multiplies raw f by x, and C is applied once
/// per block through the block sums of x. f − 1 is never formed, so there is no cancellation
/// beyond that of Σ x itself. D and C are computed per block from the file's Float16 d (and m),
/// which stay Float16 so that the packed rows are exactly as large as the file's (decoding is
/// memory-bound: every weight byte is read once per token). Per block:
/// - Q4_1 (value d·q + m, q = 16(f − 1)): D = 16d, C = m − 16d.
/// - Q4_0 (value d·(q − 8)): D = 16d, C = −24d.
/// - Q8_0 (value d·q, q signed; stored as u = q + 128, q = 256(f − 1) − 128): D = 256d, C = −384d.
///
/// Layout per group:
/// - Q4 (4 blocks, 128 elements, 80 bytes): bytes [0, 64): lane j byte b is byte j of block
///   b's nibbles (nibble 2b of lane j is element 32b + j, nibble 2b+1 element 32b + 16 + j);
///   then 4 Float16 d and 4 Float16 m (0 for Q4_0).
/// - Q8 (2 blocks, 64 elements, 68 bytes): lane j byte k is u of element 16k + j; then 2
///   Float16 d.
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
        groupBytes = type == .q8_0 ? 68 : 80
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
                        group.storeBytes(of: block.loadUnaligned(as: UInt16.self), toByteOffset: 64 + 2 * bi, as: UInt16.self)
                        for e in 0..<32 {
                            let k = 2 * bi + e / 16, j = e % 16
                            let u = block.load(fromByteOffset: 2 + e, as: UInt8.self) ^ 0x80
                            group.storeBytes(of: u, toByteOffset: 4 * j + k, as: UInt8.self)
                        }
                    }
                } else {
                    let header = type == .q4_1 ? 4 : 2
                    let blockBytes = type.blockBytes
                    for bi in 0..<4 where 4 * g + bi < blocks {
                        let block = from + (4 * g + bi) * blockBytes
                        group.storeBytes(of: block.loadUnaligned(as: UInt16.self), toByteOffset: 64 + 2 * bi, as: UInt16.self)
                        if type == .q4_1 {
                            group.storeBytes(of: block.loadUnaligned(fromByteOffset: 2, as: UInt16.self), toByteOffset: 72 + 2 * bi, as: UInt16.self)
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
    static func half(_ p: UnsafeRawPointer, _ offset: Int) -> Float {
        Float(Float16(bitPattern: p.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
    }

    /// D and C of Q4 block `bi` of a group (see the type's documentation).
    @inline(__always)
    func q4Affine(_ group: UnsafeRawPointer, _ bi: Int) -> (d: Float, c: Float) {
        let d = Self.half(group, 64 &+ 2 &* bi)
        let c = type == .q4_1 ? Self.half(group, 72 &+ 2 &* bi) - 16 * d : -24 * d
        return (16 * d, c)
    }

    /// f = 1 + q/16 for the nibble at bit `shift` of every lane (moved to mantissa bits 19–22).
    @inline(__always)
    static func nibble(_ v: Lanes, _ shift: UInt32) -> Vector {
        let placed = shift <= 19 ? v &<< (19 - shift) : v &>> (shift - 19)
        return unsafeBitCast((placed & 0x0078_0000) | 0x3F80_0000, to: Vector.self)
    }

    /// f = 1 + u/256 for byte `k` of every lane (moved to mantissa bits 15–22).
    @inline(__always)
    static func byte(_ v: Lanes, _ k: UInt32) -> Vector {
        let shift = 8 * k
        let placed = shift <= 15 ? v &<< (15 - shift) : v &>> (shift - 15)
        return unsafeBitCast((placed & 0x007F_8000) | 0x3F80_0000, to: Vector.self)
    }

    @inline(__always)
    static func load(_ p: UnsafePointer<Float>) -> Vector { UnsafeRawPointer(p).loadUnaligned(as: Vector.self) }

    /// Row `r` · x, with `blockSums[b]` = Σ x over block b.
    @inline(__always)
    func dot(_ r: Int, _ x: UnsafePointer<Float>, _ blockSums: UnsafePointer<Float>) -> Float {
        let row = UnsafeRawPointer(data) + r &* rowBytes
        var acc = Vector(), other = Vector()
        var offsets: Float = 0
        if type == .q8_0 {
            let fullGroups = blocks / 2
            var g = 0
            while g < fullGroups {
                let group = row + g &* 68
                let v = group.loadUnaligned(as: Lanes.self)
                let xs = x + g &* 64
                let b0 = (Self.byte(v, 0) * Self.load(xs)).addingProduct(Self.byte(v, 1), Self.load(xs + 16))
                let b1 = (Self.byte(v, 2) * Self.load(xs + 32)).addingProduct(Self.byte(v, 3), Self.load(xs + 48))
                let (d0, d1) = (Self.half(group, 64), Self.half(group, 66))
                acc = acc.addingProduct(b0, Vector(repeating: 256 * d0))
                other = other.addingProduct(b1, Vector(repeating: 256 * d1))
                let sums = blockSums + g &* 2
                offsets -= 384 * (d0 * sums[0] + d1 * sums[1])
                g &+= 1
            }
            if fullGroups < groups {
                let group = row + fullGroups &* 68
                let v = group.loadUnaligned(as: Lanes.self)
                let xs = x + fullGroups &* 64
                let b0 = (Self.byte(v, 0) * Self.load(xs)).addingProduct(Self.byte(v, 1), Self.load(xs + 16))
                let d0 = Self.half(group, 64)
                acc = acc.addingProduct(b0, Vector(repeating: 256 * d0))
                offsets -= 384 * d0 * blockSums[2 * fullGroups]
            }
            return VectorMath.sum(acc + other) + offsets
        }
        // Q4: full groups unrolled (two accumulators for instruction-level parallelism), then
        // the blocks of a partial last group.
        let fullGroups = blocks / 4
        var g = 0
        while g < fullGroups {
            let group = row + g &* 80
            let v = group.loadUnaligned(as: Lanes.self)
            let xs = x + g &* 128
            let b0 = (Self.nibble(v, 0) * Self.load(xs)).addingProduct(Self.nibble(v, 4), Self.load(xs + 16))
            let b1 = (Self.nibble(v, 8) * Self.load(xs + 32)).addingProduct(Self.nibble(v, 12), Self.load(xs + 48))
            let b2 = (Self.nibble(v, 16) * Self.load(xs + 64)).addingProduct(Self.nibble(v, 20), Self.load(xs + 80))
            let b3 = (Self.nibble(v, 24) * Self.load(xs + 96)).addingProduct(Self.nibble(v, 28), Self.load(xs + 112))
            let (a0, a1, a2, a3) = (q4Affine(group, 0), q4Affine(group, 1), q4Affine(group, 2), q4Affine(group, 3))
            acc = acc.addingProduct(b0, Vector(repeating: a0.d))
            other = other.addingProduct(b1, Vector(repeating: a1.d))
            acc = acc.addingProduct(b2, Vector(repeating: a2.d))
            other = other.addingProduct(b3, Vector(repeating: a3.d))
            let sums = blockSums + g &* 4
            offsets += a0.c * sums[0] + a1.c * sums[1] + a2.c * sums[2] + a3.c * sums[3]
            g &+= 1
        }
        if fullGroups < groups {
            let group = row + fullGroups &* 80
            let v = group.loadUnaligned(as: Lanes.self)
            for bi in 0..<(blocks - 4 * fullGroups) {
                let xs = x + 128 * fullGroups + 32 * bi
                let shift = UInt32(8 * bi)
                let block = (Self.nibble(v, shift) * Self.load(xs)).addingProduct(Self.nibble(v, shift + 4), Self.load(xs + 16))
                let affine = q4Affine(group, bi)
                acc = acc.addingProduct(block, Vector(repeating: affine.d))
                offsets = offsets.addingProduct(affine.c, blockSums[4 * fullGroups + bi])
            }
        }
        return VectorMath.sum(acc + other) + offsets
    }

    /// Decodes row `r` to Float32 (value = D·f + C per block).
    func dequantizeRow(_ r: Int, into y: UnsafeMutablePointer<Float>) {
        let row = UnsafeRawPointer(data + r * rowBytes)
        for g in 0..<groups {
            let group = row + g * groupBytes
            let v = group.loadUnaligned(as: Lanes.self)
            for bi in 0..<min(blocksPerGroup, blocks - blocksPerGroup * g) {
                let out = y + 32 * (blocksPerGroup * g + bi)
                let affine = type == .q8_0 ? (d: 256 * Self.half(group, 64 + 2 * bi), c: -384 * Self.half(group, 64 + 2 * bi))
                    : q4Affine(group, bi)
                let d = Vector(repeating: affine.d), c = Vector(repeating: affine.c)
                let (low, high) = type == .q8_0
                    ? (Self.byte(v, UInt32(2 * bi)), Self.byte(v, UInt32(2 * bi + 1)))
                    : (Self.nibble(v, UInt32(8 * bi)), Self.nibble(v, UInt32(8 * bi + 4)))
                UnsafeMutableRawPointer(out).storeBytes(of: low * d + c, as: Vector.self)
                UnsafeMutableRawPointer(out + 16).storeBytes(of: high * d + c, as: Vector.self)
            }
        }
    }
}
