import FlashCore

extension QuantizedMatrix {
    /// `y[t] = W·x[t]` for `tokens` rows of `x`, each row computed exactly as
    /// `multiplyVector` computes it (the same kernel, the same order of sums), so a row's
    /// result never depends on which other rows share the call: the batch-invariant product a
    /// serving engine needs (a sequence's output must not change with the batch it runs in).
    /// The weights are still read once per call: each chunk of 64 weight rows is used for
    /// every token while it is in cache. Several products (e.g. query, key and value, which
    /// read the same x) run in one parallel region.
    public static func multiplyRows(
        _ products: [(matrix: QuantizedMatrix, y: UnsafeMutablePointer<Float>, yStride: Int)],
        x: UnsafePointer<Float>, xStride: Int, tokens: Int, threads: Int? = nil
    ) {
        guard tokens > 0, !products.isEmpty else { return }
        let chunk = 64
        var firstChunk: [Int] = [0]
        for p in products { firstChunk.append(firstChunk.last! + (p.matrix.rows + chunk - 1) / chunk) }
        // One scratch (block sums of x) per token and distinct matrix type and width.
        let scratches = products.map { p in
            (0..<tokens).map { QuantizedDot.Scratch(columns: p.matrix.columns, type: p.matrix.type, x: x + $0 * xStride) }
        }
        defer { for list in scratches { for s in list { s.release() } } }
        let widest = products.map { $0.matrix.needsRowBuffer ? $0.matrix.columns : 1 }.max() ?? 1
        Parallel.forEachDynamicPolling(firstChunk.last!, threads: threads) { c in
            var p = 0
            while firstChunk[p + 1] <= c { p += 1 }
            let (matrix, y, yStride) = products[p]
            let start = (c - firstChunk[p]) * chunk
            let rows = start..<min(matrix.rows, start + chunk)
            let list = scratches[p]
            if let packed = matrix.packed {
                // Four tokens at a time share the weight decoding (`dot4`: each result is `dot`'s).
                let xs = UnsafeMutablePointer<UnsafePointer<Float>>.allocate(capacity: tokens)
                let sums = UnsafeMutablePointer<UnsafePointer<Float>>.allocate(capacity: tokens)
                defer { xs.deallocate(); sums.deallocate() }
                for t in 0..<tokens {
                    xs[t] = list[t].x
                    sums[t] = UnsafePointer(list[t].blockSums!)
                }
                let quads = tokens / 4 * 4
                for r in rows {
                    var t = 0
                    while t < quads {
                        let four = packed.dot4(r, xs + t, sums + t)
                        for i in 0..<4 { y[(t + i) * yStride + r] = four[i] }
                        t += 4
                    }
                    while t < tokens {
                        y[t * yStride + r] = packed.dot(r, xs[t], sums[t])
                        t += 1
                    }
                }
            } else {
                let buffer = UnsafeMutablePointer<Float>.allocate(capacity: widest)
                defer { buffer.deallocate() }
                for r in rows {
                    // `rowDot`'s arithmetic with the row decoded once for all tokens.
                    let row: UnsafePointer<Float>
                    if matrix.type == .f32 {
                        row = (matrix.data + r * matrix.rowBytes).assumingMemoryBound(to: Float.self)
                    } else {
                        Quantization.dequantize(matrix.type, matrix.data + r * matrix.rowBytes, count: matrix.columns, into: buffer)
                        row = UnsafePointer(buffer)
                    }
                    for t in 0..<tokens { y[t * yStride + r] = VectorMath.dot(row, list[t].x, count: matrix.columns) }
                }
            }
        }
    }
}
