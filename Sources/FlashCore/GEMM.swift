/// General matrix multiply, row-major: C = α·op(A)·op(B) + β·C.
///
/// op(A) is m×k, op(B) is k×n, C is m×n. `lda`, `ldb`, `ldc` are the row strides (leading
/// dimensions) of the matrices as stored: A is stored m×k (or k×m when transposed), B is stored
/// k×n (or n×k when transposed). β = 0 overwrites C without reading it, so NaN or garbage in C
/// is ignored; α = 0 or k = 0 gives C = β·C without reading A or B (as in BLAS). Results are
/// bit-identical for any thread count: each element of C is computed by one thread, with a
/// summation order that depends only on the shape. C must not overlap A or B.
///
/// Implementation: `GEMM+Driver.swift` (loop nest and thread split), `GEMM+Blocking.swift`
/// (block sizes), `GEMM+MicroKernel.swift` (the register-tile kernel, its
/// tile chosen per ISA by `RegisterTile`), `GEMM+Packing.swift`,
/// `GEMM+Row.swift` (m = 1 with B stored k×n).
public enum GEMM {
    /// Checks the arguments and multiplies. Throws `InvalidArgument` naming the first bad one.
    public static func multiply(
        transposeA: Bool = false, transposeB: Bool = false,
        m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0,
        c: UnsafeMutablePointer<Float>, ldc: Int,
        threads: Int? = nil
    ) throws {
        try InvalidArgument.require(m >= 0, "m", expected: "≥ 0", got: "\(m)")
        try InvalidArgument.require(n >= 0, "n", expected: "≥ 0", got: "\(n)")
        try InvalidArgument.require(k >= 0, "k", expected: "≥ 0", got: "\(k)")
        let aColumns = transposeA ? m : k
        let bColumns = transposeB ? k : n
        try InvalidArgument.require(lda >= max(1, aColumns), "lda", expected: "≥ \(max(1, aColumns)) (columns of A as stored)", got: "\(lda)")
        try InvalidArgument.require(ldb >= max(1, bColumns), "ldb", expected: "≥ \(max(1, bColumns)) (columns of B as stored)", got: "\(ldb)")
        try InvalidArgument.require(ldc >= max(1, n), "ldc", expected: "≥ \(max(1, n)) (columns of C)", got: "\(ldc)")
        if let threads { try InvalidArgument.require(threads >= 1, "threads", expected: "≥ 1", got: "\(threads)") }
        multiplyUnchecked(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
                          a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc, threads: threads)
    }

    /// Multiplies 2-D Float32 tensor views (unit stride in the last axis): C = α·op(A)·op(B) + β·C.
    public static func multiply(
        _ a: Tensor, transposeA: Bool = false, _ b: Tensor, transposeB: Bool = false,
        into c: Tensor, alpha: Float = 1, beta: Float = 0, threads: Int? = nil
    ) throws {
        for (name, t) in [("a", a), ("b", b), ("c", c)] {
            try InvalidArgument.require(t.rank == 2, "\(name).rank", expected: "2", got: "\(t.rank)")
            try InvalidArgument.require(t.elementType == .float32, "\(name).elementType", expected: "F32", got: t.elementType.rawValue)
            try InvalidArgument.require(t.strides[1] == 1 || t.shape[1] <= 1, "\(name).strides[1]",
                                        expected: "1 (rows stored contiguously)", got: "\(t.strides[1])")
        }
        let m = transposeA ? a.shape[1] : a.shape[0]
        let k = transposeA ? a.shape[0] : a.shape[1]
        let kB = transposeB ? b.shape[1] : b.shape[0]
        let n = transposeB ? b.shape[0] : b.shape[1]
        try InvalidArgument.require(kB == k, "b.shape", expected: "inner dimension \(k) to match a", got: "\(b.shape)")
        try InvalidArgument.require(c.shape == [m, n], "c.shape", expected: "[\(m), \(n)]", got: "\(c.shape)")
        try multiply(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
                     a: a.floatPointer, lda: max(a.strides[0], a.shape[1], 1),
                     b: b.floatPointer, ldb: max(b.strides[0], b.shape[1], 1), beta: beta,
                     c: c.floatPointer, ldc: max(c.strides[0], c.shape[1], 1), threads: threads)
    }

    /// The multiply without argument checks, for kernels that validated their shapes already.
    public static func multiplyUnchecked(
        transposeA: Bool, transposeB: Bool,
        m: Int, n: Int, k: Int, alpha: Float,
        a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float,
        c: UnsafeMutablePointer<Float>, ldc: Int,
        threads: Int?
    ) {
        if m == 0 || n == 0 { return }
        if k == 0 || alpha == 0 {
            scale(m: m, n: n, c: c, ldc: ldc, by: beta)
            return
        }
        if m == 1 && !transposeB {
            multiplyRow(transposeA: transposeA, m: m, n: n, k: k, alpha: alpha,
                        a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc,
                        threads: threads ?? Parallel.defaultThreads)
            return
        }
        let plan = ThreadPlan(m: m, n: n, k: k, threads: threads ?? Parallel.defaultThreads)
        Parallel.forEachDynamic(plan.ranges, threads: plan.workers) { index in
            // Each range is a contiguous, tile-aligned block of C's columns or rows, computed
            // by the whole blocked algorithm on one thread: no shared state, no barriers.
            let range = plan.range(index)
            if plan.splitsRows {
                multiplyBlocked(transposeA: transposeA, transposeB: transposeB,
                                m: range.count, n: n, k: k, alpha: alpha,
                                a: transposeA ? a + range.lowerBound : a + range.lowerBound * lda, lda: lda,
                                b: b, ldb: ldb, beta: beta,
                                c: c + range.lowerBound * ldc, ldc: ldc)
            } else {
                multiplyBlocked(transposeA: transposeA, transposeB: transposeB,
                                m: m, n: range.count, k: k, alpha: alpha,
                                a: a, lda: lda,
                                b: transposeB ? b + range.lowerBound * ldb : b + range.lowerBound, ldb: ldb,
                                beta: beta, c: c + range.lowerBound, ldc: ldc)
            }
        }
    }
}
