import CacheHints

/// The blocked algorithm on one thread, and how the threads share a multiply.
extension GEMM {
    /// How a multiply is shared between threads: C is cut into contiguous ranges of columns
    /// (or of rows) on micro-tile boundaries, which the workers take one at a time. Columns
    /// are preferred: a range then packs only its own part of B and reads the shared A in
    /// place, so cutting finer costs nothing but re-reading A from cache; there are about
    /// four ranges per worker, so a worker slowed by another process on its core does not
    /// hold up the rest. Cutting rows makes every range pack all of B, so rows (for a C too
    /// narrow to give every worker a column panel) get one range per worker.
    struct ThreadPlan {
        let workers: Int
        let splitsRows: Bool
        let length: Int
        let unit: Int
        let ranges: Int

        init(m: Int, n: Int, k: Int, threads: Int) {
            let flops = 2.0 * Double(m) * Double(n) * Double(k)
            let affordable = Int(min(Double(Int32.max), flops / Double(GEMMBlocking.minimumFlopsPerThread)))
            let rowTiles = (m + GEMMBlocking.mr - 1) / GEMMBlocking.mr
            let columnTiles = (n + GEMMBlocking.nr - 1) / GEMMBlocking.nr
            let wanted = max(1, min(threads, affordable))
            let rows = columnTiles < wanted && rowTiles > columnTiles
            splitsRows = rows
            length = rows ? m : n
            unit = rows ? GEMMBlocking.mr : GEMMBlocking.nr
            workers = min(wanted, rows ? rowTiles : columnTiles)
            if rows || workers == 1 {
                ranges = workers
            } else {
                // At least 128 columns per range, about 4 ranges per worker.
                let tilesPerRange = max(max(1, 128 / GEMMBlocking.nr), (columnTiles + 4 * workers - 1) / (4 * workers))
                let count = max(workers, (columnTiles + tilesPerRange - 1) / tilesPerRange)
                // A whole number of ranges per worker: 3 ranges on 2 workers leave one worker
                // idle for a third of the time (n = 384 ran at 0.73× numpy before this).
                let perWorker = max(1, Int((Double(count) / Double(workers)).rounded()))
                ranges = min(columnTiles, perWorker * workers)
            }
        }

        /// Rows (or columns) of C in range `index` of `ranges`.
        func range(_ index: Int) -> Range<Int> {
            let tiles = (length + unit - 1) / unit
            let start = min(length, tiles * index / ranges * unit)
            let end = min(length, tiles * (index + 1) / ranges * unit)
            return start..<end
        }
    }

    /// C = beta·C (beta = 0 writes zeros without reading C).
    static func scale(m: Int, n: Int, c: UnsafeMutablePointer<Float>, ldc: Int, by beta: Float) {
        for i in 0..<m {
            let row = c + i * ldc
            if beta == 0 {
                row.update(repeating: 0, count: n)
            } else {
                for j in 0..<n { row[j] = beta * row[j] }
            }
        }
    }

    /// The BLIS loop nest on one thread (see `GEMMBlocking` for the sizes and their reasons).
    static func multiplyBlocked(
        transposeA: Bool, transposeB: Bool,
        m: Int, n: Int, k: Int, alpha: Float,
        a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float,
        c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        let (mr, nr) = (GEMMBlocking.mr, GEMMBlocking.nr)
        let kc = GEMMBlocking.depthSlice(k: k)
        let nc = GEMMBlocking.balanced(n, block: GEMMBlocking.nc, unit: nr)
        let depthCapacity = min(kc, k)
        // A transposed A is packed in blocks of mc rows; otherwise only its last, partial
        // panel is copied.
        let rowBlock = transposeA ? GEMMBlocking.balanced(m, block: GEMMBlocking.mc, unit: mr) : m
        let aCapacity = transposeA ? (min(rowBlock, m) + mr - 1) / mr * mr * depthCapacity : mr * depthCapacity
        let bCapacity = (min(nc, n) + nr - 1) / nr * nr * depthCapacity
        PackingBufferPool.shared.withBuffer(capacity: bCapacity + aCapacity) { buffer in
            let packedB = buffer
            let packedA = buffer + bCapacity
            var jc = 0
            while jc < n {
                let columns = min(nc, n - jc)
                var pc = 0
                while pc < k {
                    let depth = min(kc, k - pc)
                    packB(transposed: transposeB, transposeB ? b + jc * ldb + pc : b + pc * ldb + jc, ldb: ldb,
                          depth: depth, columns: columns, into: packedB)
                    var ic = 0
                    while ic < m {
                        let rows = min(rowBlock, m - ic)
                        if transposeA { packTransposedA(a + pc * lda + ic, lda: lda, rows: rows, depth: depth, into: packedA) }
                        // The first k slice applies beta; later slices add to what is there.
                        macroKernel(rows: rows, columns: columns, depth: depth, a: transposeA ? nil : a + ic * lda + pc,
                                    lda: lda, packedA: packedA, packedB: packedB,
                                    c: c + ic * ldc + jc, ldc: ldc, alpha: alpha, beta: pc == 0 ? beta : 1)
                        ic += rows
                    }
                    pc += kc
                }
                jc += nc
            }
        }
    }

    /// Runs the micro-kernel over every tile of A (`rows` × `depth`) × the packed B block. The
    /// mr rows of A in use stay in L1 while the loop sweeps the B panels from L2. An
    /// untransposed A (`a`) is read in place, its last panel, if partial, first copied into
    /// `packedA` with zero rows; with `a` nil, A is already packed in `packedA` (`packTransposedA`).
    @inline(__always)
    static func macroKernel(
        rows: Int, columns: Int, depth: Int,
        a: UnsafePointer<Float>?, lda: Int, packedA: UnsafeMutablePointer<Float>,
        packedB: UnsafePointer<Float>,
        c: UnsafeMutablePointer<Float>, ldc: Int, alpha: Float, beta: Float
    ) {
        let (mr, nr) = (GEMMBlocking.mr, GEMMBlocking.nr)
        var i = 0
        while i < rows {
            let height = min(mr, rows - i)
            var panel: UnsafePointer<Float>, rowStride: Int, stepStride: Int
            if let a, height == mr {
                (panel, rowStride, stepStride) = (a + i * lda, lda, 1)
            } else if let a {
                packEdgePanel(transposed: false, a + i * lda, lda: lda, rows: height, depth: depth, into: packedA)
                (panel, rowStride, stepStride) = (UnsafePointer(packedA), 1, mr)
            } else {
                (panel, rowStride, stepStride) = (UnsafePointer(packedA + i * depth), 1, mr)
            }
            // The next A panel's rows (when read in place), asked for one per tile of this panel
            // (all that are left with the last tile), so the prefetches spread over the sweep
            // instead of queueing at once.
            let nextRows = a != nil && i + mr < rows ? min(mr, rows - i - mr) : 0
            var prefetched = 0
            var j = 0
            while j < columns {
                let wanted = j + nr >= columns ? nextRows : min(nextRows, prefetched + 1)
                while prefetched < wanted {
                    prefetchRow(a! + (i + mr + prefetched) * lda, depth: depth)
                    prefetched += 1
                }
                let width = min(nr, columns - j)
                let b = packedB + j * depth
                let tile = c + i * ldc + j
                if height == mr && width == nr {
                    microKernel(depth: depth, a: panel, aRowStride: rowStride, aStepStride: stepStride, b: b,
                                    c: tile, ldc: ldc, alpha: alpha, beta: beta)
                } else {
                    edgeTile(depth: depth, a: panel, aRowStride: rowStride, aStepStride: stepStride, b: b, c: tile,
                             ldc: ldc, height: height, width: width, alpha: alpha, beta: beta)
                }
                j += nr
            }
            i += mr
        }
    }

    /// Asks for one row of the next A panel (`depth` floats) in L2 while the current panel's
    /// tiles are computed: A's rows are read in place from L3 or memory, and without the hint
    /// the first tile of each panel waited for them (2048³ on Zen 5, AVX-512, 1 thread: about
    /// 5% faster with it; see `GEMMBlocking`).
    @inline(__always)
    static func prefetchRow(_ row: UnsafePointer<Float>, depth: Int) {
        var p = 0
        while p < depth {
            flash_prefetch_l2(row + p)
            p += 16   // one 64-byte line
        }
        flash_prefetch_l2(row + depth - 1)
    }

    /// A partial tile at the bottom or right edge: the full kernel computes into a scratch
    /// tile (its padding rows and columns are zeros), then the valid part is combined with C
    /// by the same per-element formula as the kernel's, alpha·acc + beta·c.
    static func edgeTile(
        depth: Int, a: UnsafePointer<Float>, aRowStride: Int, aStepStride: Int, b: UnsafePointer<Float>,
        c: UnsafeMutablePointer<Float>, ldc: Int, height: Int, width: Int, alpha: Float, beta: Float
    ) {
        let nr = GEMMBlocking.nr
        let lanes = FloatVector.scalarCount
        withUnsafeTemporaryAllocation(of: FloatVector.self, capacity: GEMMBlocking.mr * nr / lanes) { scratch in
            let tile = UnsafeMutableRawPointer(scratch.baseAddress!).assumingMemoryBound(to: Float.self)
            microKernel(depth: depth, a: a, aRowStride: aRowStride, aStepStride: aStepStride, b: b,
                            c: tile, ldc: nr, alpha: 1, beta: 0)
            for r in 0..<height {
                let row = c + r * ldc
                let accumulated = tile + r * nr
                if beta == 0 {
                    for j in 0..<width { row[j] = alpha * accumulated[j] }
                } else {
                    for j in 0..<width { row[j] = alpha * accumulated[j] + beta * row[j] }
                }
            }
        }
    }
}
