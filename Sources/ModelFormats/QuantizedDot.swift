import FlashCore

/// Dot products taken directly on encoded blocks: each block's integers are widened to Float32 in
/// vector registers and multiplied with the activations, so a weight row is read once, in its
/// compact form. The per-block offsets (Q4_0's −8, Q4_1's m) are applied through the block sums
/// of x, Σ_block (d·q + m)·x = d·Σ q·x + m·Σ x, which the caller computes once per vector.
enum QuantizedDot {
    typealias Vector = SIMD16<Float>

    /// Per-vector data shared by every row's dot product.
    final class Scratch {
        let x: UnsafePointer<Float>
        let blockSums: UnsafeMutablePointer<Float>?

        init(columns: Int, type: GGMLType, x: UnsafePointer<Float>) {
            self.x = x
            if type == .q4_0 || type == .q4_1 {
                let blocks = columns / 32
                let sums = UnsafeMutablePointer<Float>.allocate(capacity: max(blocks, 1))
                for b in 0..<blocks { sums[b] = VectorMath.sum(x + 32 * b, count: 32) }
                blockSums = sums
            } else {
                blockSums = nil
            }
        }

        func release() { blockSums?.deallocate() }
    }

    @inline(__always)
    static func load(_ p: UnsafePointer<Float>) -> Vector {
        UnsafeRawPointer(p).loadUnaligned(as: Vector.self)
    }

    @inline(__always)
    static func nibbles(_ p: UnsafeRawPointer) -> (low: Vector, high: Vector) {
        let q = p.loadUnaligned(as: SIMD16<UInt8>.self)
        let low = Vector(SIMD16<Int32>(truncatingIfNeeded: q & 0x0F))
        let high = Vector(SIMD16<Int32>(truncatingIfNeeded: q &>> 4))
        return (low, high)
    }

    /// Q4_1 row · x over `blocks` blocks of 32.
    @inline(__always)
    static func q4_1(_ row: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ blockSums: UnsafePointer<Float>, blocks: Int) -> Float {
        var acc = Vector()
        var offsets: Float = 0
        for b in 0..<blocks {
            let p = row + 20 * b
            let d = Quantization.half(p), m = Quantization.half(p, 2)
            let (low, high) = nibbles(p + 4)
            let xs = x + 32 * b
            let block = (low * load(xs)).addingProduct(high, load(xs + 16))
            acc = acc.addingProduct(block, Vector(repeating: d))
            offsets = offsets.addingProduct(m, blockSums[b])
        }
        return acc.sum() + offsets
    }

    /// Q4_0 row · x (values d·(q − 8)).
    @inline(__always)
    static func q4_0(_ row: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ blockSums: UnsafePointer<Float>, blocks: Int) -> Float {
        var acc = Vector()
        var offsets: Float = 0
        for b in 0..<blocks {
            let p = row + 18 * b
            let d = Quantization.half(p)
            let (low, high) = nibbles(p + 2)
            let xs = x + 32 * b
            let block = (low * load(xs)).addingProduct(high, load(xs + 16))
            acc = acc.addingProduct(block, Vector(repeating: d))
            offsets = offsets.addingProduct(-8 * d, blockSums[b])
        }
        return acc.sum() + offsets
    }

    /// Q8_0 row · x.
    @inline(__always)
    static func q8_0(_ row: UnsafeRawPointer, _ x: UnsafePointer<Float>, blocks: Int) -> Float {
        var acc = Vector()
        for b in 0..<blocks {
            let p = row + 34 * b
            let d = Quantization.half(p)
            let q0 = Vector(SIMD16<Int32>(truncatingIfNeeded: (p + 2).loadUnaligned(as: SIMD16<Int8>.self)))
            let q1 = Vector(SIMD16<Int32>(truncatingIfNeeded: (p + 18).loadUnaligned(as: SIMD16<Int8>.self)))
            let xs = x + 32 * b
            let block = (q0 * load(xs)).addingProduct(q1, load(xs + 16))
            acc = acc.addingProduct(block, Vector(repeating: d))
        }
        return acc.sum()
    }

    /// y[i·yStride + j] = w_j · x_i for 4 weight rows (`k` apart) and 4 activation rows: 16
    /// vector accumulators, 8 loads per 16 multiply-adds.
    @inline(__always)
    static func kernel4x4(_ w: UnsafePointer<Float>, k: Int, _ x: UnsafePointer<Float>, xStride: Int,
                          _ y: UnsafeMutablePointer<Float>, yStride: Int) {
        var a00 = Vector(), a01 = Vector(), a02 = Vector(), a03 = Vector()
        var a10 = Vector(), a11 = Vector(), a12 = Vector(), a13 = Vector()
        var a20 = Vector(), a21 = Vector(), a22 = Vector(), a23 = Vector()
        var a30 = Vector(), a31 = Vector(), a32 = Vector(), a33 = Vector()
        var c = 0
        while c + 16 <= k {
            let w0 = load(w + c), w1 = load(w + k + c), w2 = load(w + 2 * k + c), w3 = load(w + 3 * k + c)
            var xv = load(x + c)
            a00 = a00.addingProduct(xv, w0); a01 = a01.addingProduct(xv, w1)
            a02 = a02.addingProduct(xv, w2); a03 = a03.addingProduct(xv, w3)
            xv = load(x + xStride + c)
            a10 = a10.addingProduct(xv, w0); a11 = a11.addingProduct(xv, w1)
            a12 = a12.addingProduct(xv, w2); a13 = a13.addingProduct(xv, w3)
            xv = load(x + 2 * xStride + c)
            a20 = a20.addingProduct(xv, w0); a21 = a21.addingProduct(xv, w1)
            a22 = a22.addingProduct(xv, w2); a23 = a23.addingProduct(xv, w3)
            xv = load(x + 3 * xStride + c)
            a30 = a30.addingProduct(xv, w0); a31 = a31.addingProduct(xv, w1)
            a32 = a32.addingProduct(xv, w2); a33 = a33.addingProduct(xv, w3)
            c += 16
        }
        var sums: [Float] = [a00.sum(), a01.sum(), a02.sum(), a03.sum(), a10.sum(), a11.sum(), a12.sum(), a13.sum(),
                             a20.sum(), a21.sum(), a22.sum(), a23.sum(), a30.sum(), a31.sum(), a32.sum(), a33.sum()]
        // Columns past the last multiple of 16 (block sizes are multiples of 32, so only for
        // plain F32/F16 matrices of odd width).
        while c < k {
            for i in 0..<4 { for j in 0..<4 { sums[4 * i + j] += x[i * xStride + c] * w[j * k + c] } }
            c += 1
        }
        for i in 0..<4 { for j in 0..<4 { y[i * yStride + j] = sums[4 * i + j] } }
    }
}
