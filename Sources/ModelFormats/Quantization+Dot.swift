import FlashCore

/// Shared pieces of the quantised products: per-vector block sums of x (for the packed rows'
/// per-block affine offsets) and the register-blocked Float32 kernel of the prefill products.
enum QuantizedDot {
    typealias Vector = SIMD16<Float>

    /// Per-vector data shared by every row's dot product.
    final class Scratch {
        let x: UnsafePointer<Float>
        let blockSums: UnsafeMutablePointer<Float>?

        init(columns: Int, type: GGMLType, x: UnsafePointer<Float>) {
            self.x = x
            if PackedRows.supports(type) {
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

    /// y[i·yStride + j] = w_j · x_i for 4 weight rows (`k` apart) and 4 activation rows: 16
    /// vector accumulators, 8 loads per 16 multiply-adds. The 8 row pointers are hoisted so the
    /// accumulators stay in registers.
    @inline(__always)
    static func kernel4x4(_ w: UnsafePointer<Float>, k: Int, _ x: UnsafePointer<Float>, xStride: Int,
                          _ y: UnsafeMutablePointer<Float>, yStride: Int) {
        let (w0, w1, w2, w3) = (w, w + k, w + 2 * k, w + 3 * k)
        let (x0, x1, x2, x3) = (x, x + xStride, x + 2 * xStride, x + 3 * xStride)
        var a00 = Vector(), a01 = Vector(), a02 = Vector(), a03 = Vector()
        var a10 = Vector(), a11 = Vector(), a12 = Vector(), a13 = Vector()
        var a20 = Vector(), a21 = Vector(), a22 = Vector(), a23 = Vector()
        var a30 = Vector(), a31 = Vector(), a32 = Vector(), a33 = Vector()
        var c = 0
        while c &+ 16 <= k {
            let v0 = load(w0 + c), v1 = load(w1 + c), v2 = load(w2 + c), v3 = load(w3 + c)
            var xv = load(x0 + c)
            a00 = a00.addingProduct(xv, v0); a01 = a01.addingProduct(xv, v1)
            a02 = a02.addingProduct(xv, v2); a03 = a03.addingProduct(xv, v3)
            xv = load(x1 + c)
            a10 = a10.addingProduct(xv, v0); a11 = a11.addingProduct(xv, v1)
            a12 = a12.addingProduct(xv, v2); a13 = a13.addingProduct(xv, v3)
            xv = load(x2 + c)
            a20 = a20.addingProduct(xv, v0); a21 = a21.addingProduct(xv, v1)
            a22 = a22.addingProduct(xv, v2); a23 = a23.addingProduct(xv, v3)
            xv = load(x3 + c)
            a30 = a30.addingProduct(xv, v0); a31 = a31.addingProduct(xv, v1)
            a32 = a32.addingProduct(xv, v2); a33 = a33.addingProduct(xv, v3)
            c &+= 16
        }
        let sums = [a00, a01, a02, a03, a10, a11, a12, a13, a20, a21, a22, a23, a30, a31, a32, a33]
        for i in 0..<4 {
            for j in 0..<4 {
                var total = VectorMath.sum(sums[4 * i + j])
                // Columns past the last multiple of 16 (only plain F32/F16 matrices of odd width:
                // block sizes are multiples of 32).
                for t in c..<k { total += x[i * xStride + t] * w[j * k + t] }
                y[i * yStride + j] = total
            }
        }
    }
}
