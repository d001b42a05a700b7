/// ggml's block encodings, decoded to Float32. Each function decodes `count` elements (a whole
/// number of blocks) starting at `source` into `destination`.
///
/// Block layouts (little-endian, `d`/`m` are Float16):
/// - Q4_0: d, 16 bytes; element j < 16 is the low nibble of byte j, element j + 16 the high
///   nibble; value = d·(q − 8).
/// - Q4_1: d, m, 16 bytes of nibbles as Q4_0; value = d·q + m.
/// - Q5_0 / Q5_1: as Q4_0 / Q4_1 with a fifth bit per element in a 32-bit `qh`
///   (bit j for element j); Q5_0 subtracts 16.
/// - Q8_0: d, 32 Int8; value = d·q.
/// - Q4_K: 256 elements in 8 sub-blocks of 32: d, dmin, 12 bytes holding eight 6-bit scales and
///   eight 6-bit mins, 128 bytes of nibbles (each 32-byte group gives two sub-blocks: low nibbles,
///   then high nibbles); value = d·scale·q − dmin·min.
/// - Q5_K: as Q4_K plus 32 bytes `qh` (bit 2i / 2i+1 of byte l is the fifth bit of element l of
///   sub-block 2i / 2i+1), between the scales and the nibbles.
/// - Q6_K: 256 elements in 16 sub-blocks of 16: 128 bytes low nibbles `ql`, 64 bytes `qh`
///   (2 high bits each), 16 Int8 scales, then d; value = d·scale·(q − 32).
public enum Quantization {
    @inline(__always)
    static func half(_ p: UnsafeRawPointer, _ offset: Int = 0) -> Float {
        Float(Float16(bitPattern: p.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
    }

    /// Decodes `count` elements of `type` (validated: `count` a multiple of the block size).
    public static func dequantize(_ type: GGMLType, _ source: UnsafeRawPointer, count: Int,
                                  into destination: UnsafeMutablePointer<Float>) {
        let blocks = count / type.blockSize
        switch type {
        case .f32:
            UnsafeMutableRawPointer(destination).copyMemory(from: source, byteCount: 4 * count)
        case .f16:
            for i in 0..<count { destination[i] = half(source, 2 * i) }
        case .bf16:
            for i in 0..<count {
                destination[i] = Float(bitPattern: UInt32(source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16)
            }
        case .q4_0, .q4_1, .q5_0, .q5_1:
            for b in 0..<blocks { dequantizeQ4Q5(type, source + b * type.blockBytes, into: destination + b * 32) }
        case .q8_0:
            for b in 0..<blocks {
                let p = source + b * 34
                let d = half(p)
                for j in 0..<32 { destination[b * 32 + j] = d * Float(p.load(fromByteOffset: 2 + j, as: Int8.self)) }
            }
        case .q4_K, .q5_K:
            for b in 0..<blocks { dequantizeQ4KQ5K(type, source + b * type.blockBytes, into: destination + b * 256) }
        case .q6_K:
            for b in 0..<blocks { dequantizeQ6K(source + b * 210, into: destination + b * 256) }
        default:
            // Callers check `isSupported` when the file is opened.
            destination.update(repeating: .nan, count: count)
        }
    }

    @inline(__always)
    static func dequantizeQ4Q5(_ type: GGMLType, _ p: UnsafeRawPointer, into y: UnsafeMutablePointer<Float>) {
        let d = half(p)
        let hasMin = type == .q4_1 || type == .q5_1
        let hasHigh = type == .q5_0 || type == .q5_1
        let m: Float = hasMin ? half(p, 2) : 0
        var nibbles = 2 + (hasMin ? 2 : 0)
        var qh: UInt32 = 0
        if hasHigh {
            qh = p.loadUnaligned(fromByteOffset: nibbles, as: UInt32.self)
            nibbles += 4
        }
        let offset: Int = hasMin ? 0 : (hasHigh ? 16 : 8)
        for j in 0..<16 {
            let byte = p.load(fromByteOffset: nibbles + j, as: UInt8.self)
            var lo = Int(byte & 0x0F), hi = Int(byte >> 4)
            if hasHigh {
                lo |= Int((qh >> UInt32(j)) & 1) << 4
                hi |= Int((qh >> UInt32(j + 16)) & 1) << 4
            }
            y[j] = d * Float(lo - offset) + m
            y[j + 16] = d * Float(hi - offset) + m
        }
    }

    /// The 6-bit scale and min of sub-block `j` (0..<8) of a Q4_K/Q5_K block (ggml's
    /// `get_scale_min_k4`): sub-blocks 0–3 use the low 6 bits of bytes j and j+4; 4–7 combine a
    /// nibble of byte j+4 with the top 2 bits of bytes j−4 and j.
    @inline(__always)
    static func scaleMinK4(_ j: Int, _ q: UnsafeRawPointer) -> (scale: Float, min: Float) {
        func byte(_ i: Int) -> UInt8 { q.load(fromByteOffset: i, as: UInt8.self) }
        if j < 4 {
            return (Float(byte(j) & 63), Float(byte(j + 4) & 63))
        }
        let scale = (byte(j + 4) & 0x0F) | ((byte(j - 4) >> 6) << 4)
        let min = (byte(j + 4) >> 4) | ((byte(j) >> 6) << 4)
        return (Float(scale), Float(min))
    }

    @inline(__always)
    static func dequantizeQ4KQ5K(_ type: GGMLType, _ p: UnsafeRawPointer, into y: UnsafeMutablePointer<Float>) {
        let d = half(p), dmin = half(p, 2)
        let scales = p + 4
        let isQ5 = type == .q5_K
        let qh = p + 16
        let qs = p + (isQ5 ? 48 : 16)
        for group in 0..<4 {
            let (s1, m1) = scaleMinK4(2 * group, scales)
            let (s2, m2) = scaleMinK4(2 * group + 1, scales)
            let (d1, o1, d2, o2) = (d * s1, dmin * m1, d * s2, dmin * m2)
            for l in 0..<32 {
                let byte = qs.load(fromByteOffset: 32 * group + l, as: UInt8.self)
                var lo = Int(byte & 0x0F), hi = Int(byte >> 4)
                if isQ5 {
                    let h = qh.load(fromByteOffset: l, as: UInt8.self)
                    lo |= Int((h >> UInt8(2 * group)) & 1) << 4
                    hi |= Int((h >> UInt8(2 * group + 1)) & 1) << 4
                }
                y[64 * group + l] = d1 * Float(lo) - o1
                y[64 * group + 32 + l] = d2 * Float(hi) - o2
            }
        }
    }

    @inline(__always)
    static func dequantizeQ6K(_ p: UnsafeRawPointer, into y: UnsafeMutablePointer<Float>) {
        let d = half(p, 208)
        for half128 in 0..<2 {
            let ql = p + 64 * half128
            let qh = p + 128 + 32 * half128
            let sc = p + 192 + 8 * half128
            let out = y + 128 * half128
            for l in 0..<32 {
                let lowA = ql.load(fromByteOffset: l, as: UInt8.self)
                let lowB = ql.load(fromByteOffset: l + 32, as: UInt8.self)
                let high = qh.load(fromByteOffset: l, as: UInt8.self)
                let q1 = Int((lowA & 0x0F) | ((high & 3) << 4)) - 32
                let q2 = Int((lowB & 0x0F) | (((high >> 2) & 3) << 4)) - 32
                let q3 = Int((lowA >> 4) | (((high >> 4) & 3) << 4)) - 32
                let q4 = Int((lowB >> 4) | (((high >> 6) & 3) << 4)) - 32
                let s = l / 16
                func scale(_ i: Int) -> Float { d * Float(sc.load(fromByteOffset: i, as: Int8.self)) }
                out[l] = scale(s) * Float(q1)
                out[l + 32] = scale(s + 2) * Float(q2)
                out[l + 64] = scale(s + 4) * Float(q3)
                out[l + 96] = scale(s + 6) * Float(q4)
            }
        }
    }
}
