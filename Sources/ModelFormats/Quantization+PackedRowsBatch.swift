import FlashCore

extension PackedRows {
    /// Row `r` · x_t for the four tokens x[0...3] at once, each result bit-for-bit `dot(r, x_t, sums_t)`:
    /// every token runs exactly `dot`'s operations in `dot`'s order (the same products, the same
    /// two accumulators, the same offset sums); only the work that does not depend on the token
    /// — loading the group, decoding its nibbles or bytes, converting its scales — is done once
    /// for the four. That is what makes a batched decode step cheaper per token than four
    /// matrix-vector products while keeping each row's logits independent of the batch.
    @inline(__always)
    func dot4(_ r: Int, _ x: UnsafePointer<UnsafePointer<Float>>, _ sums: UnsafePointer<UnsafePointer<Float>>) -> SIMD4<Float> {
        let row = UnsafeRawPointer(data) + r &* rowBytes
        let (x0, x1, x2, x3) = (x[0], x[1], x[2], x[3])
        let (s0, s1, s2, s3) = (sums[0], sums[1], sums[2], sums[3])
        var acc0 = Vector(), acc1 = Vector(), acc2 = Vector(), acc3 = Vector()
        var oth0 = Vector(), oth1 = Vector(), oth2 = Vector(), oth3 = Vector()
        var off0: Float = 0, off1: Float = 0, off2: Float = 0, off3: Float = 0
        if type == .q8_0 {
            let fullGroups = blocks / 2
            var g = 0
            while g < fullGroups {
                let group = row + g &* 68
                let v = group.loadUnaligned(as: Lanes.self)
                let (w0, w1, w2, w3) = (Self.byte(v, 0), Self.byte(v, 1), Self.byte(v, 2), Self.byte(v, 3))
                let (d0, d1) = (Self.half(group, 64), Self.half(group, 66))
                let (e0, e1) = (Vector(repeating: 256 * d0), Vector(repeating: 256 * d1))
                @inline(__always) func token(_ x: UnsafePointer<Float>, _ s: UnsafePointer<Float>,
                                             _ acc: inout Vector, _ other: inout Vector, _ offsets: inout Float) {
                    let xs = x + g &* 64
                    let b0 = (w0 * Self.load(xs)).addingProduct(w1, Self.load(xs + 16))
                    let b1 = (w2 * Self.load(xs + 32)).addingProduct(w3, Self.load(xs + 48))
                    acc = acc.addingProduct(b0, e0)
                    other = other.addingProduct(b1, e1)
                    let sums = s + g &* 2
                    offsets -= 384 * (d0 * sums[0] + d1 * sums[1])
                }
                token(x0, s0, &acc0, &oth0, &off0)
                token(x1, s1, &acc1, &oth1, &off1)
                token(x2, s2, &acc2, &oth2, &off2)
                token(x3, s3, &acc3, &oth3, &off3)
                g &+= 1
            }
            if fullGroups < groups {
                let group = row + fullGroups &* 68
                let v = group.loadUnaligned(as: Lanes.self)
                let (w0, w1) = (Self.byte(v, 0), Self.byte(v, 1))
                let d0 = Self.half(group, 64)
                @inline(__always) func token(_ x: UnsafePointer<Float>, _ s: UnsafePointer<Float>, _ acc: inout Vector, _ offsets: inout Float) {
                    let xs = x + fullGroups &* 64
                    let b0 = (w0 * Self.load(xs)).addingProduct(w1, Self.load(xs + 16))
                    acc = acc.addingProduct(b0, Vector(repeating: 256 * d0))
                    offsets -= 384 * d0 * s[2 * fullGroups]
                }
                token(x0, s0, &acc0, &off0)
                token(x1, s1, &acc1, &off1)
                token(x2, s2, &acc2, &off2)
                token(x3, s3, &acc3, &off3)
            }
        } else {
            let fullGroups = blocks / 4
            var g = 0
            while g < fullGroups {
                let group = row + g &* 80
                let v = group.loadUnaligned(as: Lanes.self)
                let (n0, n4, n8, n12) = (Self.nibble(v, 0), Self.nibble(v, 4), Self.nibble(v, 8), Self.nibble(v, 12))
                let (n16, n20, n24, n28) = (Self.nibble(v, 16), Self.nibble(v, 20), Self.nibble(v, 24), Self.nibble(v, 28))
                let (a0, a1, a2, a3) = (q4Affine(group, 0), q4Affine(group, 1), q4Affine(group, 2), q4Affine(group, 3))
                let (e0, e1, e2, e3) = (Vector(repeating: a0.d), Vector(repeating: a1.d), Vector(repeating: a2.d), Vector(repeating: a3.d))
                @inline(__always) func token(_ x: UnsafePointer<Float>, _ s: UnsafePointer<Float>,
                                             _ acc: inout Vector, _ other: inout Vector, _ offsets: inout Float) {
                    let xs = x + g &* 128
                    let b0 = (n0 * Self.load(xs)).addingProduct(n4, Self.load(xs + 16))
                    let b1 = (n8 * Self.load(xs + 32)).addingProduct(n12, Self.load(xs + 48))
                    let b2 = (n16 * Self.load(xs + 64)).addingProduct(n20, Self.load(xs + 80))
                    let b3 = (n24 * Self.load(xs + 96)).addingProduct(n28, Self.load(xs + 112))
                    acc = acc.addingProduct(b0, e0)
                    other = other.addingProduct(b1, e1)
                    acc = acc.addingProduct(b2, e2)
                    other = other.addingProduct(b3, e3)
                    let sums = s + g &* 4
                    offsets += a0.c * sums[0] + a1.c * sums[1] + a2.c * sums[2] + a3.c * sums[3]
                }
                token(x0, s0, &acc0, &oth0, &off0)
                token(x1, s1, &acc1, &oth1, &off1)
                token(x2, s2, &acc2, &oth2, &off2)
                token(x3, s3, &acc3, &oth3, &off3)
                g &+= 1
            }
            if fullGroups < groups {
                let group = row + fullGroups &* 80
                let v = group.loadUnaligned(as: Lanes.self)
                for bi in 0..<(blocks - 4 * fullGroups) {
                    let shift = UInt32(8 * bi)
                    let (low, high) = (Self.nibble(v, shift), Self.nibble(v, shift + 4))
                    let affine = q4Affine(group, bi)
                    @inline(__always) func token(_ x: UnsafePointer<Float>, _ s: UnsafePointer<Float>, _ acc: inout Vector, _ offsets: inout Float) {
                        let xs = x + 128 * fullGroups + 32 * bi
                        let block = (low * Self.load(xs)).addingProduct(high, Self.load(xs + 16))
                        acc = acc.addingProduct(block, Vector(repeating: affine.d))
                        offsets = offsets.addingProduct(affine.c, s[4 * fullGroups + bi])
                    }
                    token(x0, s0, &acc0, &off0)
                    token(x1, s1, &acc1, &off1)
                    token(x2, s2, &acc2, &off2)
                    token(x3, s3, &acc3, &off3)
                }
            }
        }
        return SIMD4(VectorMath.sum(acc0 + oth0) + off0, VectorMath.sum(acc1 + oth1) + off1,
                     VectorMath.sum(acc2 + oth2) + off2, VectorMath.sum(acc3 + oth3) + off3)
    }
}
