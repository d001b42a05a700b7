import FlashCore

/// A fully connected layer, y = x·W + b, with batch × time folded into the rows of one GEMM.
///
/// Weights are stored **[in, out]** row-major, so y = x·W is a GEMM without transposes
/// (PyTorch's `nn.Linear` stores [out, in]; the fixture script transposes).
public enum Linear {
    /// output[M, N] = input[M, K] · weight[K, N] + bias[N]
    public static func forward(
        input: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        output: UnsafeMutablePointer<Float>, rows: Int, inFeatures: Int, outFeatures: Int, threads: Int? = nil
    ) {
        GEMM.multiplyUnchecked(transposeA: false, transposeB: false, m: rows, n: outFeatures, k: inFeatures, alpha: 1,
                               a: input, lda: inFeatures, b: weight, ldb: outFeatures, beta: 0,
                               c: output, ldc: outFeatures, threads: threads)
        if let bias {
            Parallel.forEach(rows, threads: threads) { r in
                VectorMath.add(bias, to: output + r * outFeatures, count: outFeatures)
            }
        }
    }

    /// inputGradient[M, K]  = (or += when `accumulateInput`) outputGradient[M, N] · weightᵀ
    /// weightGradient[K, N] += inputᵀ · outputGradient
    /// biasGradient[N]      += Σ_rows outputGradient
    ///
    /// The input gradient multiplies by the weight as stored (transposed B: the GEMM transposes
    /// it while packing, in registers); the weight gradient reads the input transposed (the GEMM
    /// packs a transposed A into its panels, so no transposed copy of the input is made).
    public static func backward(
        input: UnsafePointer<Float>, weight: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
        inputGradient: UnsafeMutablePointer<Float>?, accumulateInput: Bool = false,
        weightGradient: UnsafeMutablePointer<Float>, biasGradient: UnsafeMutablePointer<Float>?,
        rows: Int, inFeatures: Int, outFeatures: Int, threads: Int? = nil
    ) {
        if let inputGradient {
            GEMM.multiplyUnchecked(transposeA: false, transposeB: true, m: rows, n: inFeatures, k: outFeatures, alpha: 1,
                                   a: outputGradient, lda: outFeatures, b: weight, ldb: outFeatures,
                                   beta: accumulateInput ? 1 : 0, c: inputGradient, ldc: inFeatures, threads: threads)
        }
        GEMM.multiplyUnchecked(transposeA: true, transposeB: false, m: inFeatures, n: outFeatures, k: rows, alpha: 1,
                               a: input, lda: inFeatures, b: outputGradient, ldb: outFeatures, beta: 1,
                               c: weightGradient, ldc: outFeatures, threads: threads)
        if let biasGradient {
            ColumnSums.accumulate(outputGradient, rows: rows, columns: outFeatures, into: biasGradient, threads: threads)
        }
    }
}

/// Row-major transpose into a separate buffer: destination[c, r] = source[r, c].
public enum Transpose {
    /// Side of the square tiles: 32 rows of 32 floats stay in L1 while being read and written.
    static let tile = 32

    /// Writes the transpose of the `rows` × `columns` matrix `source` into `destination`
    /// (`columns` × `rows`), in cache-sized tiles split over `threads` (default: all cores).
    /// Within a tile, 8 × 8 blocks are transposed in registers (`transpose8x8`); the ragged
    /// rows and columns of the matrix's edge are copied one element at a time.
    public static func copy(_ source: UnsafePointer<Float>, rows: Int, columns: Int,
                            into destination: UnsafeMutablePointer<Float>, threads: Int? = nil) {
        // Parallel over tiles of source rows: each worker writes its own columns of the destination.
        Parallel.forEach((rows + tile - 1) / tile, threads: threads) { t in
            let r0 = t * tile, r1 = min(rows, r0 + tile)
            let blockRows = r0 + (r1 - r0) / 8 * 8
            var c0 = 0
            while c0 < columns {
                let c1 = min(columns, c0 + tile)
                let blockColumns = c0 + (c1 - c0) / 8 * 8
                for r in stride(from: r0, to: blockRows, by: 8) {
                    for c in stride(from: c0, to: blockColumns, by: 8) {
                        transpose8x8(source + r * columns + c, stride: columns, into: destination + c * rows + r, stride: rows)
                    }
                }
                for c in c0..<c1 {
                    let d = destination + c * rows
                    // The columns past the 8-column blocks for every row; the rows past the 8-row
                    // blocks for the columns the blocks covered.
                    for r in (c < blockColumns ? blockRows : r0)..<r1 { d[r] = source[r * columns + c] }
                }
                c0 += tile
            }
        }
    }

    /// destination[c][r] = source[r][c] for an 8 × 8 block (row strides in floats). Three
    /// rounds of a perfect unshuffle (the even lanes of each pair of rows, then the odd lanes)
    /// rotate the 6-bit element index (row, column) by three bits, which swaps row and column:
    /// 8 loads, 24 two-source shuffles and 8 stores, in 16 vector registers on any ISA.
    @inline(__always)
    static func transpose8x8(_ source: UnsafePointer<Float>, stride sourceStride: Int,
                             into destination: UnsafeMutablePointer<Float>, stride destinationStride: Int) {
        typealias V = SIMD8<Float>
        @inline(__always)
        func unshuffle(_ v: (V, V, V, V, V, V, V, V)) -> (V, V, V, V, V, V, V, V) {
            (V(lowHalf: v.0.evenHalf, highHalf: v.1.evenHalf), V(lowHalf: v.2.evenHalf, highHalf: v.3.evenHalf),
             V(lowHalf: v.4.evenHalf, highHalf: v.5.evenHalf), V(lowHalf: v.6.evenHalf, highHalf: v.7.evenHalf),
             V(lowHalf: v.0.oddHalf, highHalf: v.1.oddHalf), V(lowHalf: v.2.oddHalf, highHalf: v.3.oddHalf),
             V(lowHalf: v.4.oddHalf, highHalf: v.5.oddHalf), V(lowHalf: v.6.oddHalf, highHalf: v.7.oddHalf))
        }
        @inline(__always)
        func row(_ r: Int) -> V { UnsafeRawPointer(source + r * sourceStride).loadUnaligned(as: V.self) }
        @inline(__always)
        func store(_ c: Int, _ column: V) {
            UnsafeMutableRawPointer(destination + c * destinationStride).storeBytes(of: column, as: V.self)
        }
        let v = unshuffle(unshuffle(unshuffle((row(0), row(1), row(2), row(3), row(4), row(5), row(6), row(7)))))
        store(0, v.0); store(1, v.1); store(2, v.2); store(3, v.3); store(4, v.4); store(5, v.5); store(6, v.6); store(7, v.7)
    }
}

/// Column sums of a row-major matrix, parallel over blocks of columns so that every sum is
/// taken by one thread in row order (bit-identical for any thread count).
public enum ColumnSums {
    /// Columns per work item: one cache line of each row.
    static let block = 16

    /// `sums[c] += Σ_r matrix[r, c]`
    public static func accumulate(_ matrix: UnsafePointer<Float>, rows: Int, columns: Int,
                                  into sums: UnsafeMutablePointer<Float>, threads: Int? = nil) {
        let blocks = (columns + block - 1) / block
        Parallel.forEach(blocks, threads: threads) { blockIndex in
            let start = blockIndex * block, end = min(columns, start + block)
            for r in 0..<rows {
                let row = matrix + r * columns
                for c in start..<end { sums[c] += row[c] }
            }
        }
    }
}
