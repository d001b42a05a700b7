import FlashCore

/// A row-major weight matrix (`rows` × `columns`) kept in its file encoding (F32, F16, BF16 or a
/// ggml block quantisation) and used directly in products: nothing is expanded to Float32 beyond
/// a row tile at a time. Product convention is `y = W·x` per token, as in a linear layer whose
/// weight is stored [out, in].
public struct QuantizedMatrix: @unchecked Sendable {
    /// The encoding of the weights.
    public let type: GGMLType
    /// Output features (rows of W).
    public let rows: Int
    /// Input features (columns of W).
    public let columns: Int
    /// Bytes of one encoded row.
    public let rowBytes: Int
    /// The first encoded row (rows follow each other, `rowBytes` apart).
    public let data: UnsafeRawPointer
    /// Keeps the bytes mapped while the matrix is used.
    public let owner: AnyObject?
    /// Q4_0/Q4_1/Q8_0 rows in the register-friendly layout the products use.
    let packed: PackedRows?

    /// Wraps encoded bytes. `columns` must be a whole number of blocks.
    public init(type: GGMLType, rows: Int, columns: Int, data: UnsafeRawPointer, owner: AnyObject?) throws {
        try InvalidArgument.require(type.isSupported, "type", expected: "a supported ggml type", got: "\(type)")
        try InvalidArgument.require(rows >= 0 && columns >= 0, "shape", expected: "non-negative", got: "\(rows)×\(columns)")
        try InvalidArgument.require(columns % type.blockSize == 0, "columns",
                                    expected: "a multiple of the \(type) block size \(type.blockSize)", got: "\(columns)")
        self.type = type
        self.rows = rows
        self.columns = columns
        rowBytes = columns / type.blockSize * type.blockBytes
        self.data = data
        self.owner = owner
        packed = PackedRows.supports(type)
            ? PackedRows(type: type, rows: rows, columns: columns, source: data, sourceRowBytes: rowBytes)
            : nil
    }

    /// The 2-D tensor `name` of `file` (ggml dims [columns, rows]).
    public init(file: GGUFFile, name: String) throws {
        let info = try file.tensor(name)
        guard info.type.isSupported else { throw GGUFError.unsupportedTensorType(name: name, type: "\(info.type)") }
        try self.init(type: info.type, rows: info.rowCount, columns: info.rowLength, data: file.data(of: info), owner: file)
    }

    /// Decodes row `row` into `destination` (`columns` floats).
    public func dequantizeRow(_ row: Int, into destination: UnsafeMutablePointer<Float>) {
        if let packed { return packed.dequantizeRow(row, into: destination) }
        Quantization.dequantize(type, data + row * rowBytes, count: columns, into: destination)
    }

    /// The whole matrix as Float32, row-major (for tests and small tensors).
    public func dequantized() -> [Float] {
        var result = [Float](repeating: 0, count: rows * columns)
        result.withUnsafeMutableBufferPointer { buffer in
            for r in 0..<rows { dequantizeRow(r, into: buffer.baseAddress! + r * columns) }
        }
        return result
    }

    /// `y[r] = Σ_c W[r, c]·x[c]` for every row (decode: one token). Work is split over row
    /// ranges; each row's sum has a fixed order, so results do not depend on `threads`.
    /// Q4_0/Q4_1/Q8_0 weights multiply x quantised to 8 bits per block (`Q8Activations`).
    public func multiplyVector(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, threads: Int? = nil) {
        QuantizedMatrix.multiplyVectors([(self, x, y)], threads: threads)
    }

    /// Several independent matrix-vector products (e.g. the query, key and value projections of
    /// one token) in one parallel region, which saves a thread hand-off per product. Products
    /// that share an input quantise it once.
    public static func multiplyVectors(_ products: [(matrix: QuantizedMatrix, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>)],
                                       threads: Int? = nil) {
        multiplyTokens(products.map { ($0.matrix, $0.x, $0.matrix.columns, $0.y, $0.matrix.rows) }, tokens: 1, threads: threads)
    }

    /// `y[t·yStride + r] = Σ_c W[r, c]·x[t·xStride + c]` for `tokens` rows of x and several
    /// products in one parallel region. Packed products quantise each distinct input once
    /// (`tokens` rows) and hand chunks of weight rows to the register-tiled kernel with all the
    /// tokens, so each weight row is read from memory once for the whole batch; every element
    /// gets the same arithmetic whatever `tokens`, the chunk or `threads` (batch-invariant).
    /// Other types decode each row to Float32 and take fixed-order dot products.
    static func multiplyTokens(_ products: [(matrix: QuantizedMatrix, x: UnsafePointer<Float>, xStride: Int,
                                             y: UnsafeMutablePointer<Float>, yStride: Int)],
                               tokens: Int, threads: Int? = nil) {
        guard tokens > 0, !products.isEmpty else { return }
        // Rows per work item: enough work per item to amortise the hand-out, enough items to
        // balance two threads on the smallest matrices (576 rows).
        let chunk = tokens == 1 ? 64 : tokens <= 8 ? 32 : 16
        let tokenChunk = 32  // activation rows per kernel call: 32 rows of x stay in L1
        var firstChunk: [Int] = [0]
        for p in products { firstChunk.append(firstChunk.last! + (p.matrix.rows + chunk - 1) / chunk) }
        var quantized: [Q8Activations?] = []
        for (i, p) in products.enumerated() {
            guard p.matrix.packed != nil else { quantized.append(nil); continue }
            if let j = products[..<i].firstIndex(where: {
                $0.x == p.x && $0.xStride == p.xStride && $0.matrix.columns == p.matrix.columns && $0.matrix.packed != nil
            }) {
                quantized.append(quantized[j])
                continue
            }
            let q = Q8Activations(validatedRows: tokens, columns: p.matrix.columns)
            if tokens >= 16 {
                Parallel.forEach(tokens, threads: threads) { t in q.quantize(row: t, from: p.x + t * p.xStride) }
            } else {
                for t in 0..<tokens { q.quantize(row: t, from: p.x + t * p.xStride) }
            }
            quantized.append(q)
        }
        let widest = products.map { $0.matrix.packed == nil ? $0.matrix.columns : 1 }.max() ?? 1
        // Chunks are handed out dynamically: on a shared machine one worker may be descheduled,
        // and a static split would make every product wait for it. A decode step runs ~150 of
        // these short regions back to back, so they go to polling workers, not Dispatch's
        // sleeping ones (a wake-up per region cost most of the second thread's gain).
        Parallel.forEachDynamicPolling(firstChunk.last!, threads: threads) { c in
            var p = 0
            while firstChunk[p + 1] <= c { p += 1 }
            let (matrix, x, xStride, y, yStride) = products[p]
            let start = (c - firstChunk[p]) * chunk
            let rows = start..<min(matrix.rows, start + chunk)
            if let packed = matrix.packed, let q = quantized[p] {
                for first in stride(from: 0, to: tokens, by: tokenChunk) {
                    packed.dot(rows: rows, q, first: first, count: min(tokenChunk, tokens - first), y + first * yStride + start, yStride: yStride)
                }
            } else {
                let buffer = UnsafeMutablePointer<Float>.allocate(capacity: widest)
                defer { buffer.deallocate() }
                for r in rows {
                    let row = matrix.decodedRow(r, buffer)
                    for t in 0..<tokens { y[t * yStride + r] = VectorMath.dot(row, x + t * xStride, count: matrix.columns) }
                }
            }
        }
    }

    /// Row `r` as Float32: in place for F32, else decoded into `buffer`.
    @inline(__always)
    func decodedRow(_ r: Int, _ buffer: UnsafeMutablePointer<Float>) -> UnsafePointer<Float> {
        if type == .f32 { return (data + r * rowBytes).assumingMemoryBound(to: Float.self) }
        Quantization.dequantize(type, data + r * rowBytes, count: columns, into: buffer)
        return UnsafePointer(buffer)
    }

    /// `y[t, r] = Σ_c W[r, c]·x[t, c]` for `tokens` rows of `x` (prefill). `x` rows are
    /// `xStride` apart, `y` rows `yStride` apart. Every element is computed exactly as
    /// `multiplyVector` computes it (x row quantised alone, the same row kernel), so a row's
    /// result depends neither on the other rows of the batch nor on the batch size nor on
    /// `threads`.
    public func multiply(_ x: UnsafePointer<Float>, tokens: Int, xStride: Int,
                         into y: UnsafeMutablePointer<Float>, yStride: Int, threads: Int? = nil) {
        if tokens == 1 {
            multiplyVector(x, into: y, threads: threads)
            return
        }
        if packed != nil {
            QuantizedMatrix.multiplyTokens([(self, x, xStride, y, yStride)], tokens: tokens, threads: threads)
            return
        }
        let tile = 16
        let tiles = (rows + tile - 1) / tile
        let k = columns
        Parallel.forEachDynamic(tiles, threads: threads) { t in
            let rowStart = t * tile
            let rowCount = min(tile, rows - rowStart)
            let w = UnsafeMutablePointer<Float>.allocate(capacity: tile * k)
            defer { w.deallocate() }
            let decoded = (0..<rowCount).map { decodedRow(rowStart + $0, w + $0 * k) }
            for token in 0..<tokens {
                for r in 0..<rowCount {
                    y[token * yStride + rowStart + r] = VectorMath.dot(decoded[r], x + token * xStride, count: k)
                }
            }
        }
    }
}
