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
/// beyond that of Σ x itself. Per block:
/// - Q4_1 (value d·q + m, q = 16(f − 1)): D = 16d, C = m − 16d.
/// - Q4_0 (value d·(q − 8)): D = 16d, C = −24d.
/// - Q8_0 (value d·q, q signed; stored as u = q + 128, q = 256(f − 1) − 128): D = 256d, C = −384d.
///
/// Layout per group:
/// - Q4 (4 blocks, 128 elements, 96 bytes): bytes [0, 64): lane j byte b is byte j of block
///   b's nibbles (nibble 2b of lane j is element 32b + j, nibble 2b+1 element 32b + 16 + j);
///   then 4 Float32 D and 4 Float32 C.
/// - Q8 (2 blocks, 64 elements, 80 bytes): lane j byte k is u of element 16k + j; then 2 D
///   and 2 C.
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
        groupBytes = type == .q8_0 ? 80 : 96
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
                        let d = Quantization.half(block)
                        group.storeBytes(of: 256 * d, toByteOffset: 64 + 4 * bi, as: Float.self)
                        group.storeBytes(of: -384 * d, toByteOffset: 72 + 4 * bi, as: Float.self)
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
                        let d = Quantization.half(block)
                        let c = type == .q4_1 ? Quantization.half(block, 2) - 16 * d : -24 * d
                        group.storeBytes(of: 16 * d, toByteOffset: 64 + 4 * bi, as: Float.self)
                        group.storeBytes(of: c, toByteOffset: 80 + 4 * bi, as: Float.self)
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
                let group = row + g &* 80
                let v = group.loadUnaligned(as: Lanes.self)
                let xs = x + g &* 64
                let b0 = (Self.byte(v, 0) * Self.load(xs)).addingProduct(Self.byte(v, 1), Self.load(xs + 16))
                let b1 = (Self.byte(v, 2) * Self.load(xs + 32)).addingProduct(Self.byte(v, 3), Self.load(xs + 48))
                acc = acc.addingProduct(b0, Vector(repeating: Self.scale(group, 64)))
                other = other.addingProduct(b1, Vector(repeating: Self.scale(group, 68)))
                let sums = blockSums + g &* 2
                offsets += Self.scale(group, 72) * sums[0] + Self.scale(group, 76) * sums[1]
                g &+= 1
            }
            if fullGroups < groups {
                let group = row + fullGroups &* 80
                let v = group.loadUnaligned(as: Lanes.self)
                let xs = x + fullGroups &* 64
                let b0 = (Self.byte(v, 0) * Self.load(xs)).addingProduct(Self.byte(v, 1), Self.load(xs + 16))
                acc = acc.addingProduct(b0, Vector(repeating: Self.scale(group, 64)))
                offsets += Self.scale(group, 72) * blockSums[2 * fullGroups]
            }
            return QuantizedDot.horizontalSum(acc + other) + offsets
        }
        // Q4: full groups unrolled (two accumulators for instruction-level parallelism), then
        // the blocks of a partial last group.
        let fullGroups = blocks / 4
        var g = 0
        while g < fullGroups {
            let group = row + g &* 96
            let v = group.loadUnaligned(as: Lanes.self)
            let xs = x + g &* 128
            let b0 = (Self.nibble(v, 0) * Self.load(xs)).addingProduct(Self.nibble(v, 4), Self.load(xs + 16))
            let b1 = (Self.nibble(v, 8) * Self.load(xs + 32)).addingProduct(Self.nibble(v, 12), Self.load(xs + 48))
            let b2 = (Self.nibble(v, 16) * Self.load(xs + 64)).addingProduct(Self.nibble(v, 20), Self.load(xs + 80))
            let b3 = (Self.nibble(v, 24) * Self.load(xs + 96)).addingProduct(Self.nibble(v, 28), Self.load(xs + 112))
            acc = acc.addingProduct(b0, Vector(repeating: Self.scale(group, 64)))
            other = other.addingProduct(b1, Vector(repeating: Self.scale(group, 68)))
            acc = acc.addingProduct(b2, Vector(repeating: Self.scale(group, 72)))
            other = other.addingProduct(b3, Vector(repeating: Self.scale(group, 76)))
            let sums = blockSums + g &* 4
            offsets += Self.scale(group, 80) * sums[0] + Self.scale(group, 84) * sums[1]
                + Self.scale(group, 88) * sums[2] + Self.scale(group, 92) * sums[3]
            g &+= 1
        }
        if fullGroups < groups {
            let group = row + fullGroups &* 96
            let v = group.loadUnaligned(as: Lanes.self)
            for bi in 0..<(blocks - 4 * fullGroups) {
                let xs = x + 128 * fullGroups + 32 * bi
                let shift = UInt32(8 * bi)
                let block = (Self.nibble(v, shift) * Self.load(xs)).addingProduct(Self.nibble(v, shift + 4), Self.load(xs + 16))
                acc = acc.addingProduct(block, Vector(repeating: Self.scale(group, 64 + 4 * bi)))
                offsets = offsets.addingProduct(Self.scale(group, 80 + 4 * bi), blockSums[4 * fullGroups + bi])
            }
        }
        return QuantizedDot.horizontalSum(acc + other) + offsets
    }

    /// Decodes row `r` to Float32 (value = D·f + C per block).
    func dequantizeRow(_ r: Int, into y: UnsafeMutablePointer<Float>) {
        let row = UnsafeRawPointer(data + r * rowBytes)
        let scaleOffset = 4 * blocksPerGroup
        for g in 0..<groups {
            let group = row + g * groupBytes
            let v = group.loadUnaligned(as: Lanes.self)
            for bi in 0..<min(blocksPerGroup, blocks - blocksPerGroup * g) {
                let out = y + 32 * (blocksPerGroup * g + bi)
                let d = Vector(repeating: Self.scale(group, 64 + 4 * bi))
                let c = Vector(repeating: Self.scale(group, 64 + scaleOffset + 4 * bi))
                let (low, high) = type == .q8_0
                    ? (Self.byte(v, UInt32(2 * bi)), Self.byte(v, UInt32(2 * bi + 1)))
                    : (Self.nibble(v, UInt32(8 * bi)), Self.nibble(v, UInt32(8 * bi + 4)))
                UnsafeMutableRawPointer(out).storeBytes(of: low * d + c, as: Vector.self)
                UnsafeMutableRawPointer(out + 16).storeBytes(of: high * d + c, as: Vector.self)
            }
        }
    }
}
