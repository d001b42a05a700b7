import FlashCore

/// Register-blocked multiply of small packed Float32 tiles: C (+)= op(A)·B, in the native
/// vector of the compiled ISA (`FloatVector`).
///
/// The flash kernels' inner products (Sᵀ = K·Qᵀ, O += P·V, dV += Pᵀ·dO, dK += dSᵀ·Q,
/// dQ += dS·K) all have this form with tiles that live in L1/L2. One kernel, `block`, written
/// once over the register tile's shape (R rows × V vectors, integer generic parameters), keeps
/// an R×(V·lanes) piece of C in R·V registers and per step of k loads one row of B (V vectors)
/// and broadcasts R elements of A, so the loop is bound by FMA throughput, not loads. Which
/// shapes run is `AttentionTiles.registerTile(for:)`'s table (accumulators + operands fit the
/// register file: 4×4 of 16 floats on AVX-512, 4×3 of 8 on AVX2); the compiler specialises
/// the kernel per shape and per target vector, and keeps the accumulator arrays in registers.
///
/// A is addressed through two strides so that both op(A) = A (row-major, `transposedA` false)
/// and op(A) = Aᵀ (A stored k×m) cost the same: a broadcast reads one scalar either way.
/// The summation order of every C element depends only on k (one FMA per step, in order),
/// never on the tile shape or on threads.
enum TileMultiply {
    typealias Vector = FloatVector
    static let lanes = Vector.scalarCount

    /// C[m×n] = op(A)·B (+ C when `accumulate`). Requires m a multiple of 8 and n a multiple
    /// of 16; A is m×k (lda its row stride) or, when `transposedA`, stored k×m; B is k×n.
    static func multiply(
        m: Int, n: Int, k: Int,
        a: UnsafePointer<Float>, lda: Int, transposedA: Bool,
        b: UnsafePointer<Float>, ldb: Int,
        c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool
    ) {
        let rowStep = transposedA ? 1 : lda
        let kStep = transposedA ? lda : 1
        let main = AttentionTiles.compiledRegisterTile
        var column = 0
        // Full-width strips with the main tile, then one narrower strip for what is left.
        while column < n {
            let vectors = min(main.vectors, (n - column) / lanes)
            let tile = vectors == main.vectors ? main : AttentionTiles.remainderTile(vectors: vectors, isa: .compiled)
            var row = 0
            while row < m {
                let ap = a + row * rowStep, bp = b + column, cp = c + row * ldc + column
                switch (tile.rows, tile.vectors) {
                case (4, 4): block(Shape<4, 4>.self, k: k, a: ap, rowStep: rowStep, kStep: kStep, b: bp, ldb: ldb, c: cp, ldc: ldc, accumulate: accumulate)
                case (4, 3): block(Shape<4, 3>.self, k: k, a: ap, rowStep: rowStep, kStep: kStep, b: bp, ldb: ldb, c: cp, ldc: ldc, accumulate: accumulate)
                case (4, 2): block(Shape<4, 2>.self, k: k, a: ap, rowStep: rowStep, kStep: kStep, b: bp, ldb: ldb, c: cp, ldc: ldc, accumulate: accumulate)
                case (8, 3): block(Shape<8, 3>.self, k: k, a: ap, rowStep: rowStep, kStep: kStep, b: bp, ldb: ldb, c: cp, ldc: ldc, accumulate: accumulate)
                case (8, 2): block(Shape<8, 2>.self, k: k, a: ap, rowStep: rowStep, kStep: kStep, b: bp, ldb: ldb, c: cp, ldc: ldc, accumulate: accumulate)
                case (8, 1): block(Shape<8, 1>.self, k: k, a: ap, rowStep: rowStep, kStep: kStep, b: bp, ldb: ldb, c: cp, ldc: ldc, accumulate: accumulate)
                default: preconditionFailure("no TileMultiply kernel for the \(tile.rows)×\(tile.vectors) register tile")
                }
                row += tile.rows
            }
            column += tile.vectors * lanes
        }
    }

    /// A register tile's shape as a type: R rows of A × V vectors of B.
    enum Shape<let R: Int, let V: Int> {}

    @inline(__always)
    static func load(_ p: UnsafePointer<Float>) -> Vector {
        UnsafeRawPointer(p).loadUnaligned(as: Vector.self)
    }

    @inline(__always)
    static func store(_ v: Vector, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: Vector.self)
    }

    /// C[R × V·lanes] (+)= A[R × k]·B[k × V·lanes]. The loops over R and V have constant
    /// trip counts once specialised: the optimiser unrolls them and promotes the inline
    /// arrays to registers (checked with objdump: no stack traffic in the k loop).
    @inline(__always)
    static func block<let R: Int, let V: Int>(
        _ shape: Shape<R, V>.Type, k: Int, a: UnsafePointer<Float>, rowStep: Int, kStep: Int,
        b: UnsafePointer<Float>, ldb: Int, c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool
    ) {
        var accumulators = InlineArray<R, InlineArray<V, Vector>>(repeating: InlineArray(repeating: Vector()))
        if accumulate {
            for r in 0..<R {
                for v in 0..<V { accumulators[r][v] = load(UnsafePointer(c + r * ldc + v * lanes)) }
            }
        }
        var ap = a
        var bp = b
        for _ in 0..<k {
            var row = InlineArray<V, Vector>(repeating: Vector())
            for v in 0..<V { row[v] = load(bp + v * lanes) }
            for r in 0..<R {
                let broadcast = Vector(repeating: ap[r * rowStep])
                for v in 0..<V { accumulators[r][v] = accumulators[r][v].addingProduct(broadcast, row[v]) }
            }
            ap += kStep
            bp += ldb
        }
        for r in 0..<R {
            for v in 0..<V { store(accumulators[r][v], c + r * ldc + v * lanes) }
        }
    }
}
