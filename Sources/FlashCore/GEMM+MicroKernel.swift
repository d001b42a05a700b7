/// The register-blocked micro-kernel: one 8×32 tile of C in sixteen `SIMD16<Float>`
/// accumulators (zmm registers on AVX-512), updated by one fused multiply-add per accumulator
/// per step of k. Each A value is broadcast from memory; the two B vectors of a step are
/// shared by all eight rows. The compiled loop is 16 `vfmadd231ps zmm` + 2 vector loads +
/// 8 `vbroadcastss` per step with no spills (check: objdump -d GEMM+MicroKernel.swift.o).
extension GEMM {
    /// `C[0..<8, 0..<32] = alpha · A · Bpanel + beta · C`, reading element (r, p) of A at
    /// `a[r·aRowStride + p·aStepStride]` and a packed B panel (32 floats per step, 64-byte
    /// aligned). `beta == 0` never reads C. Each accumulator sums its products in order of p,
    /// one FMA per step, so every element of C gets the same arithmetic wherever its tile
    /// lies and however A is stored.
    @inline(never)
    static func microKernel8x32(
        depth: Int, a: UnsafePointer<Float>, aRowStride: Int, aStepStride: Int, b: UnsafePointer<Float>,
        c: UnsafeMutablePointer<Float>, ldc: Int, alpha: Float, beta: Float
    ) {
        typealias V = SIMD16<Float>
        var c00 = V(), c01 = V()
        var c10 = V(), c11 = V()
        var c20 = V(), c21 = V()
        var c30 = V(), c31 = V()
        var c40 = V(), c41 = V()
        var c50 = V(), c51 = V()
        var c60 = V(), c61 = V()
        var c70 = V(), c71 = V()
        var ap = a
        var bp = UnsafeRawPointer(b)
        for _ in 0..<depth {
            let b0 = bp.load(as: V.self)
            let b1 = bp.load(fromByteOffset: 64, as: V.self)
            let a0 = V(repeating: ap[0 * aRowStride])
            c00 = c00.addingProduct(a0, b0)
            c01 = c01.addingProduct(a0, b1)
            let a1 = V(repeating: ap[1 * aRowStride])
            c10 = c10.addingProduct(a1, b0)
            c11 = c11.addingProduct(a1, b1)
            let a2 = V(repeating: ap[2 * aRowStride])
            c20 = c20.addingProduct(a2, b0)
            c21 = c21.addingProduct(a2, b1)
            let a3 = V(repeating: ap[3 * aRowStride])
            c30 = c30.addingProduct(a3, b0)
            c31 = c31.addingProduct(a3, b1)
            let a4 = V(repeating: ap[4 * aRowStride])
            c40 = c40.addingProduct(a4, b0)
            c41 = c41.addingProduct(a4, b1)
            let a5 = V(repeating: ap[5 * aRowStride])
            c50 = c50.addingProduct(a5, b0)
            c51 = c51.addingProduct(a5, b1)
            let a6 = V(repeating: ap[6 * aRowStride])
            c60 = c60.addingProduct(a6, b0)
            c61 = c61.addingProduct(a6, b1)
            let a7 = V(repeating: ap[7 * aRowStride])
            c70 = c70.addingProduct(a7, b0)
            c71 = c71.addingProduct(a7, b1)
            ap += aStepStride
            bp += 128
        }
        @inline(__always)
        func update(_ row: UnsafeMutablePointer<Float>, _ low: V, _ high: V) {
            let target = UnsafeMutableRawPointer(row)
            if beta == 0 {
                target.storeBytes(of: alpha * low, as: V.self)
                target.storeBytes(of: alpha * high, toByteOffset: 64, as: V.self)
            } else {
                let oldLow = target.loadUnaligned(as: V.self)
                let oldHigh = target.loadUnaligned(fromByteOffset: 64, as: V.self)
                target.storeBytes(of: alpha * low + beta * oldLow, as: V.self)
                target.storeBytes(of: alpha * high + beta * oldHigh, toByteOffset: 64, as: V.self)
            }
        }
        update(c + 0 * ldc, c00, c01)
        update(c + 1 * ldc, c10, c11)
        update(c + 2 * ldc, c20, c21)
        update(c + 3 * ldc, c30, c31)
        update(c + 4 * ldc, c40, c41)
        update(c + 5 * ldc, c50, c51)
        update(c + 6 * ldc, c60, c61)
        update(c + 7 * ldc, c70, c71)
    }
}
