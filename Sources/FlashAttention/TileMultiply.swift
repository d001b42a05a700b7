/// Register-blocked SIMD16 multiply of small packed Float32 tiles: C (+)= op(A)·B.
///
/// The flash kernels' inner products (Sᵀ = K·Qᵀ, O += P·V, dV += Pᵀ·dO, dK += dSᵀ·Q,
/// dQ += dS·K) all have this form with tiles that live in L1/L2. Each block keeps an R×(16·W)
/// piece of C in 16 AVX-512 registers and streams one row of B (W vectors) and R broadcast
/// elements of A per step of k, so the loop is bound by FMA throughput, not loads.
///
/// A is addressed through two strides so that both op(A) = A (row-major, `transposedA` false)
/// and op(A) = Aᵀ (A stored k×m) cost the same: a broadcast reads one scalar either way.
/// The summation order of every C element depends only on k, never on threads.
enum TileMultiply {
    typealias Vector = SIMD16<Float>

    /// C[m×n] = op(A)·B (+ C when `accumulate`). Requires m a multiple of 8 and n a multiple
    /// of 16; A is m×k (lda its row stride) or, when `transposedA`, stored k×m; B is k×n.
    @inline(__always)
    static func multiply(
        m: Int, n: Int, k: Int,
        a: UnsafePointer<Float>, lda: Int, transposedA: Bool,
        b: UnsafePointer<Float>, ldb: Int,
        c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool
    ) {
        let rowStep = transposedA ? 1 : lda
        let kStep = transposedA ? lda : 1
        var column = 0
        while column + 64 <= n {
            var row = 0
            while row < m {
                block4x64(k: k, a: a + row * rowStep, rowStep: rowStep, kStep: kStep,
                          b: b + column, ldb: ldb, c: c + row * ldc + column, ldc: ldc, accumulate: accumulate)
                row += 4
            }
            column += 64
        }
        if column + 32 <= n {
            var row = 0
            while row < m {
                block8x32(k: k, a: a + row * rowStep, rowStep: rowStep, kStep: kStep,
                          b: b + column, ldb: ldb, c: c + row * ldc + column, ldc: ldc, accumulate: accumulate)
                row += 8
            }
            column += 32
        }
        if column + 16 <= n {
            var row = 0
            while row < m {
                block8x16(k: k, a: a + row * rowStep, rowStep: rowStep, kStep: kStep,
                          b: b + column, ldb: ldb, c: c + row * ldc + column, ldc: ldc, accumulate: accumulate)
                row += 8
            }
        }
    }

    @inline(__always)
    static func load(_ p: UnsafePointer<Float>) -> Vector {
        UnsafeRawPointer(p).loadUnaligned(as: Vector.self)
    }

    @inline(__always)
    static func load(_ p: UnsafeMutablePointer<Float>) -> Vector {
        UnsafeRawPointer(p).loadUnaligned(as: Vector.self)
    }

    @inline(__always)
    static func store(_ v: Vector, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: Vector.self)
    }

    @inline(__always)
    static func block4x64(
        k: Int, a: UnsafePointer<Float>, rowStep: Int, kStep: Int,
        b: UnsafePointer<Float>, ldb: Int, c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool
    ) {
        var c00 = accumulate ? load(c + 0 * ldc + 0) : Vector()
        var c01 = accumulate ? load(c + 0 * ldc + 16) : Vector()
        var c02 = accumulate ? load(c + 0 * ldc + 32) : Vector()
        var c03 = accumulate ? load(c + 0 * ldc + 48) : Vector()
        var c10 = accumulate ? load(c + 1 * ldc + 0) : Vector()
        var c11 = accumulate ? load(c + 1 * ldc + 16) : Vector()
        var c12 = accumulate ? load(c + 1 * ldc + 32) : Vector()
        var c13 = accumulate ? load(c + 1 * ldc + 48) : Vector()
        var c20 = accumulate ? load(c + 2 * ldc + 0) : Vector()
        var c21 = accumulate ? load(c + 2 * ldc + 16) : Vector()
        var c22 = accumulate ? load(c + 2 * ldc + 32) : Vector()
        var c23 = accumulate ? load(c + 2 * ldc + 48) : Vector()
        var c30 = accumulate ? load(c + 3 * ldc + 0) : Vector()
        var c31 = accumulate ? load(c + 3 * ldc + 16) : Vector()
        var c32 = accumulate ? load(c + 3 * ldc + 32) : Vector()
        var c33 = accumulate ? load(c + 3 * ldc + 48) : Vector()
        var ap = a
        var bp = b
        for _ in 0..<k {
            let b0 = load(bp + 0)
            let b1 = load(bp + 16)
            let b2 = load(bp + 32)
            let b3 = load(bp + 48)
            let a0 = Vector(repeating: ap[0 * rowStep])
            c00 = c00.addingProduct(a0, b0)
            c01 = c01.addingProduct(a0, b1)
            c02 = c02.addingProduct(a0, b2)
            c03 = c03.addingProduct(a0, b3)
            let a1 = Vector(repeating: ap[1 * rowStep])
            c10 = c10.addingProduct(a1, b0)
            c11 = c11.addingProduct(a1, b1)
            c12 = c12.addingProduct(a1, b2)
            c13 = c13.addingProduct(a1, b3)
            let a2 = Vector(repeating: ap[2 * rowStep])
            c20 = c20.addingProduct(a2, b0)
            c21 = c21.addingProduct(a2, b1)
            c22 = c22.addingProduct(a2, b2)
            c23 = c23.addingProduct(a2, b3)
            let a3 = Vector(repeating: ap[3 * rowStep])
            c30 = c30.addingProduct(a3, b0)
            c31 = c31.addingProduct(a3, b1)
            c32 = c32.addingProduct(a3, b2)
            c33 = c33.addingProduct(a3, b3)
            ap += kStep
            bp += ldb
        }
        store(c00, c + 0 * ldc + 0)
        store(c01, c + 0 * ldc + 16)
        store(c02, c + 0 * ldc + 32)
        store(c03, c + 0 * ldc + 48)
        store(c10, c + 1 * ldc + 0)
        store(c11, c + 1 * ldc + 16)
        store(c12, c + 1 * ldc + 32)
        store(c13, c + 1 * ldc + 48)
        store(c20, c + 2 * ldc + 0)
        store(c21, c + 2 * ldc + 16)
        store(c22, c + 2 * ldc + 32)
        store(c23, c + 2 * ldc + 48)
        store(c30, c + 3 * ldc + 0)
        store(c31, c + 3 * ldc + 16)
        store(c32, c + 3 * ldc + 32)
        store(c33, c + 3 * ldc + 48)
    }

    @inline(__always)
    static func block8x32(
        k: Int, a: UnsafePointer<Float>, rowStep: Int, kStep: Int,
        b: UnsafePointer<Float>, ldb: Int, c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool
    ) {
        var c00 = accumulate ? load(c + 0 * ldc + 0) : Vector()
        var c01 = accumulate ? load(c + 0 * ldc + 16) : Vector()
        var c10 = accumulate ? load(c + 1 * ldc + 0) : Vector()
        var c11 = accumulate ? load(c + 1 * ldc + 16) : Vector()
        var c20 = accumulate ? load(c + 2 * ldc + 0) : Vector()
        var c21 = accumulate ? load(c + 2 * ldc + 16) : Vector()
        var c30 = accumulate ? load(c + 3 * ldc + 0) : Vector()
        var c31 = accumulate ? load(c + 3 * ldc + 16) : Vector()
        var c40 = accumulate ? load(c + 4 * ldc + 0) : Vector()
        var c41 = accumulate ? load(c + 4 * ldc + 16) : Vector()
        var c50 = accumulate ? load(c + 5 * ldc + 0) : Vector()
        var c51 = accumulate ? load(c + 5 * ldc + 16) : Vector()
        var c60 = accumulate ? load(c + 6 * ldc + 0) : Vector()
        var c61 = accumulate ? load(c + 6 * ldc + 16) : Vector()
        var c70 = accumulate ? load(c + 7 * ldc + 0) : Vector()
        var c71 = accumulate ? load(c + 7 * ldc + 16) : Vector()
        var ap = a
        var bp = b
        for _ in 0..<k {
            let b0 = load(bp + 0)
            let b1 = load(bp + 16)
            let a0 = Vector(repeating: ap[0 * rowStep])
            c00 = c00.addingProduct(a0, b0)
            c01 = c01.addingProduct(a0, b1)
            let a1 = Vector(repeating: ap[1 * rowStep])
            c10 = c10.addingProduct(a1, b0)
            c11 = c11.addingProduct(a1, b1)
            let a2 = Vector(repeating: ap[2 * rowStep])
            c20 = c20.addingProduct(a2, b0)
            c21 = c21.addingProduct(a2, b1)
            let a3 = Vector(repeating: ap[3 * rowStep])
            c30 = c30.addingProduct(a3, b0)
            c31 = c31.addingProduct(a3, b1)
            let a4 = Vector(repeating: ap[4 * rowStep])
            c40 = c40.addingProduct(a4, b0)
            c41 = c41.addingProduct(a4, b1)
            let a5 = Vector(repeating: ap[5 * rowStep])
            c50 = c50.addingProduct(a5, b0)
            c51 = c51.addingProduct(a5, b1)
            let a6 = Vector(repeating: ap[6 * rowStep])
            c60 = c60.addingProduct(a6, b0)
            c61 = c61.addingProduct(a6, b1)
            let a7 = Vector(repeating: ap[7 * rowStep])
            c70 = c70.addingProduct(a7, b0)
            c71 = c71.addingProduct(a7, b1)
            ap += kStep
            bp += ldb
        }
        store(c00, c + 0 * ldc + 0)
        store(c01, c + 0 * ldc + 16)
        store(c10, c + 1 * ldc + 0)
        store(c11, c + 1 * ldc + 16)
        store(c20, c + 2 * ldc + 0)
        store(c21, c + 2 * ldc + 16)
        store(c30, c + 3 * ldc + 0)
        store(c31, c + 3 * ldc + 16)
        store(c40, c + 4 * ldc + 0)
        store(c41, c + 4 * ldc + 16)
        store(c50, c + 5 * ldc + 0)
        store(c51, c + 5 * ldc + 16)
        store(c60, c + 6 * ldc + 0)
        store(c61, c + 6 * ldc + 16)
        store(c70, c + 7 * ldc + 0)
        store(c71, c + 7 * ldc + 16)
    }

    @inline(__always)
    static func block8x16(
        k: Int, a: UnsafePointer<Float>, rowStep: Int, kStep: Int,
        b: UnsafePointer<Float>, ldb: Int, c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool
    ) {
        var c00 = accumulate ? load(c + 0 * ldc + 0) : Vector()
        var c10 = accumulate ? load(c + 1 * ldc + 0) : Vector()
        var c20 = accumulate ? load(c + 2 * ldc + 0) : Vector()
        var c30 = accumulate ? load(c + 3 * ldc + 0) : Vector()
        var c40 = accumulate ? load(c + 4 * ldc + 0) : Vector()
        var c50 = accumulate ? load(c + 5 * ldc + 0) : Vector()
        var c60 = accumulate ? load(c + 6 * ldc + 0) : Vector()
        var c70 = accumulate ? load(c + 7 * ldc + 0) : Vector()
        var ap = a
        var bp = b
        for _ in 0..<k {
            let b0 = load(bp + 0)
            let a0 = Vector(repeating: ap[0 * rowStep])
            c00 = c00.addingProduct(a0, b0)
            let a1 = Vector(repeating: ap[1 * rowStep])
            c10 = c10.addingProduct(a1, b0)
            let a2 = Vector(repeating: ap[2 * rowStep])
            c20 = c20.addingProduct(a2, b0)
            let a3 = Vector(repeating: ap[3 * rowStep])
            c30 = c30.addingProduct(a3, b0)
            let a4 = Vector(repeating: ap[4 * rowStep])
            c40 = c40.addingProduct(a4, b0)
            let a5 = Vector(repeating: ap[5 * rowStep])
            c50 = c50.addingProduct(a5, b0)
            let a6 = Vector(repeating: ap[6 * rowStep])
            c60 = c60.addingProduct(a6, b0)
            let a7 = Vector(repeating: ap[7 * rowStep])
            c70 = c70.addingProduct(a7, b0)
            ap += kStep
            bp += ldb
        }
        store(c00, c + 0 * ldc + 0)
        store(c10, c + 1 * ldc + 0)
        store(c20, c + 2 * ldc + 0)
        store(c30, c + 3 * ldc + 0)
        store(c40, c + 4 * ldc + 0)
        store(c50, c + 5 * ldc + 0)
        store(c60, c + 6 * ldc + 0)
        store(c70, c + 7 * ldc + 0)
    }
}
