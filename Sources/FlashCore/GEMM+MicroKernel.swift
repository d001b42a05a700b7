/// The register-blocked micro-kernel, written once for any vector type and tile: one
/// `mr`×`nr` tile of C (`RegisterTile.compiled`) in `mr × vectorsPerRow` accumulators of the
/// native `FloatVector`, updated by one fused multiply-add per accumulator per step of k. Each
/// A value is broadcast from memory; the B vectors of a step are shared by all rows.
///
/// The code names 8 rows × 3 vectors of accumulators; the tile is a compile-time constant, so
/// the rows and vectors beyond it fold away and each build keeps exactly its tile in registers.
/// What the compiled loops hold (`objdump -d GEMM+MicroKernel.swift.o`, Swift 6.3, one k step):
/// - AVX-512 (native, 8×32): 16 `vfmadd231ps zmm` + 8 `vbroadcastss` + 2 B loads, no stack
///   traffic;
/// - AVX2 (x86-64-v3, 6×16): 12 `vfmadd231ps ymm` + 6 `vbroadcastss` + 2 B loads, no stack
///   traffic (the old 8×32 tile of `SIMD16<Float>` had 32 ymm FMAs and 104 stack loads/stores).
extension GEMM {
    /// `C[0..<mr, 0..<nr] = alpha · A · Bpanel + beta · C`, reading element (r, p) of A at
    /// `a[r·aRowStride + p·aStepStride]` and a packed B panel (nr floats per step, aligned to
    /// the vector size). `beta == 0` never reads C. Each accumulator sums its products in order
    /// of p, one FMA per step, so every element of C gets the same arithmetic wherever its
    /// tile lies and however A is stored.
    @inline(never)
    static func microKernel(
        depth: Int, a: UnsafePointer<Float>, aRowStride: Int, aStepStride: Int, b: UnsafePointer<Float>,
        c: UnsafeMutablePointer<Float>, ldc: Int, alpha: Float, beta: Float
    ) {
        tileKernel(FloatVector.self, depth: depth, a: a, aRowStride: aRowStride, aStepStride: aStepStride, b: b,
                   c: c, ldc: ldc, alpha: alpha, beta: beta)
    }

    @inline(__always)
    static func tileKernel<V: SIMD>(
        _: V.Type, depth: Int, a: UnsafePointer<Float>, aRowStride: Int, aStepStride: Int, b: UnsafePointer<Float>,
        c: UnsafeMutablePointer<Float>, ldc: Int, alpha: Float, beta: Float
    ) where V.Scalar == Float {
        let tile = RegisterTile.compiled
        let rows = tile.rows, vectors = tile.vectorsPerRow
        let vectorBytes = MemoryLayout<V>.size
        var c00 = V(), c01 = V(), c02 = V()
        var c10 = V(), c11 = V(), c12 = V()
        var c20 = V(), c21 = V(), c22 = V()
        var c30 = V(), c31 = V(), c32 = V()
        var c40 = V(), c41 = V(), c42 = V()
        var c50 = V(), c51 = V(), c52 = V()
        var c60 = V(), c61 = V(), c62 = V()
        var c70 = V(), c71 = V(), c72 = V()
        var ap = a
        var bp = UnsafeRawPointer(b)
        for _ in 0..<depth {
            let b0 = bp.load(as: V.self)
            let b1 = vectors > 1 ? bp.load(fromByteOffset: vectorBytes, as: V.self) : V()
            let b2 = vectors > 2 ? bp.load(fromByteOffset: 2 * vectorBytes, as: V.self) : V()
            @inline(__always)
            func row(_ r: Int, _ x0: inout V, _ x1: inout V, _ x2: inout V) {
                guard r < rows else { return }
                let broadcast = V(repeating: ap[r * aRowStride])
                x0 = x0.addingProduct(broadcast, b0)
                if vectors > 1 { x1 = x1.addingProduct(broadcast, b1) }
                if vectors > 2 { x2 = x2.addingProduct(broadcast, b2) }
            }
            row(0, &c00, &c01, &c02)
            row(1, &c10, &c11, &c12)
            row(2, &c20, &c21, &c22)
            row(3, &c30, &c31, &c32)
            row(4, &c40, &c41, &c42)
            row(5, &c50, &c51, &c52)
            row(6, &c60, &c61, &c62)
            row(7, &c70, &c71, &c72)
            ap += aStepStride
            bp += vectors * vectorBytes
        }
        @inline(__always)
        func update(_ r: Int, _ x0: V, _ x1: V, _ x2: V) {
            guard r < rows else { return }
            let target = UnsafeMutableRawPointer(c + r * ldc)
            @inline(__always)
            func store(_ value: V, _ index: Int) {
                let offset = index * vectorBytes
                if beta == 0 {
                    target.storeBytes(of: alpha * value, toByteOffset: offset, as: V.self)
                } else {
                    let old = target.loadUnaligned(fromByteOffset: offset, as: V.self)
                    target.storeBytes(of: alpha * value + beta * old, toByteOffset: offset, as: V.self)
                }
            }
            store(x0, 0)
            if vectors > 1 { store(x1, 1) }
            if vectors > 2 { store(x2, 2) }
        }
        update(0, c00, c01, c02)
        update(1, c10, c11, c12)
        update(2, c20, c21, c22)
        update(3, c30, c31, c32)
        update(4, c40, c41, c42)
        update(5, c50, c51, c52)
        update(6, c60, c61, c62)
        update(7, c70, c71, c72)
    }
}
