/// Multiplies a single row (m = 1, GEMV: a decode step's projections) by a B stored k×n. The
/// blocked path would copy all of B into packed panels and use one row of each 8-row tile, so
/// here B is read once, in place: the row of C is a sum of scaled rows of B, each element's
/// products added in k order in `kc` slices exactly as the blocked path adds them (a row alone
/// is bit-for-bit that row of any batch). A transposed B (n×k) is not read here: summing an
/// element in k order needs a column of B contiguous, i.e. packed, which is what the blocked
/// path does (dot products over B's rows would sum in another order and break that invariance).
/// With 2–7 rows the blocked path is still faster when B is in cache (the accumulators no
/// longer fit in L1), so only m = 1 comes here.
extension GEMM {
    /// Columns of C kept in one accumulator block for `m` rows: m × columns ≤ 8192 floats
    /// (32 KiB, L1), as wide as possible so that each row of B is streamed contiguously.
    static func rowColumnBlock(rows m: Int) -> Int { 8192 / m / 16 * 16 }

    /// C = alpha·op(A)·B + beta·C for m rows (used for m = 1), B stored k×n. Threads split the
    /// columns; each element's arithmetic (the order of its k products) does not depend on the split.
    static func multiplyRow(
        transposeA: Bool,
        m: Int, n: Int, k: Int, alpha: Float,
        a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float,
        c: UnsafeMutablePointer<Float>, ldc: Int,
        threads: Int
    ) {
        let flops = 2.0 * Double(m) * Double(n) * Double(k)
        let affordable = Int(min(Double(Int32.max), flops / Double(GEMMBlocking.minimumFlopsPerThread)))
        let unit = 64
        let units = (n + unit - 1) / unit
        let workers = max(1, min(threads, affordable, units))
        Parallel.forEach(workers, threads: workers) { worker in
            let start = min(n, units * worker / workers * unit)
            let end = min(n, units * (worker + 1) / workers * unit)
            if start >= end { return }
            rowSums(transposeA: transposeA, m: m, columns: start..<end, k: k, alpha: alpha, a: a, lda: lda,
                    b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
        }
    }

    /// B stored k×n: acc[i, :] += op(A)[i, p] · B[p, :] for p in order, then C = α·acc + β·C.
    /// Four rows of B are folded into each pass over the accumulators (4 FMAs per load and
    /// store of an accumulator vector); each element still adds its products in order of p.
    static func rowSums(
        transposeA: Bool, m: Int, columns: Range<Int>, k: Int, alpha: Float,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        typealias V = FloatVector
        let lanes = V.scalarCount
        let block = rowColumnBlock(rows: m)
        let depthSlice = GEMMBlocking.depthSlice(k: k)
        PackingBufferPool.shared.withBuffer(capacity: m * block) { accumulators in
            var jc = columns.lowerBound
            while jc < columns.upperBound {
                let width = min(block, columns.upperBound - jc)
                accumulators.update(repeating: 0, count: m * block)
                for i in 0..<m {
                    let acc = accumulators + i * block
                    func value(_ p: Int) -> Float { transposeA ? a[p * lda + i] : a[i * lda + p] }
                    // Depth in slices of `kc`, each summed from zero and then added to C, as the
                    // blocked path does: an element's arithmetic is the same for any m, which a
                    // serving engine's batch invariance relies on (one row alone = a row of a batch).
                    var sliceStart = 0
                    while sliceStart < k {
                        let sliceEnd = min(k, sliceStart + depthSlice)
                        if sliceStart > 0 { acc.update(repeating: 0, count: width) }
                        var p = sliceStart
                        while p + 4 <= sliceEnd {
                            let (a0, a1, a2, a3) = (value(p), value(p + 1), value(p + 2), value(p + 3))
                            let b0 = b + p * ldb + jc, b1 = b0 + ldb, b2 = b1 + ldb, b3 = b2 + ldb
                            var j = 0
                            while j + lanes <= width {
                                var v = UnsafeRawPointer(acc + j).load(as: V.self)
                                v = v.addingProduct(V(repeating: a0), UnsafeRawPointer(b0 + j).loadUnaligned(as: V.self))
                                v = v.addingProduct(V(repeating: a1), UnsafeRawPointer(b1 + j).loadUnaligned(as: V.self))
                                v = v.addingProduct(V(repeating: a2), UnsafeRawPointer(b2 + j).loadUnaligned(as: V.self))
                                v = v.addingProduct(V(repeating: a3), UnsafeRawPointer(b3 + j).loadUnaligned(as: V.self))
                                UnsafeMutableRawPointer(acc + j).storeBytes(of: v, as: V.self)
                                j += lanes
                            }
                            while j < width {
                                acc[j] = acc[j].addingProduct(a0, b0[j]).addingProduct(a1, b1[j])
                                    .addingProduct(a2, b2[j]).addingProduct(a3, b3[j])
                                j += 1
                            }
                            p += 4
                        }
                        while p < sliceEnd {
                            VectorMath.addScaled(b + p * ldb + jc, value(p), to: acc, count: width)
                            p += 1
                        }
                        combine(acc, into: c + i * ldc + jc, count: width, alpha: alpha, beta: sliceStart == 0 ? beta : 1)
                        sliceStart = sliceEnd
                    }
                }
                jc += block
            }
        }
    }

    /// `c[j] = alpha·acc[j] + beta·c[j]` (beta = 0: C is not read).
    @inline(__always)
    static func combine(_ acc: UnsafePointer<Float>, into c: UnsafeMutablePointer<Float>, count: Int,
                        alpha: Float, beta: Float) {
        for j in 0..<count { c[j] = beta == 0 ? alpha * acc[j] : alpha * acc[j] + beta * c[j] }
    }
}
