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
        let chunk = 64
        var firstChunk: [Int] = [0]
        for p in products { firstChunk.append(firstChunk.last! + (p.matrix.rows + chunk - 1) / chunk) }
        var quantized: [Q8Activations?] = []
        for (i, p) in products.enumerated() {
            guard p.matrix.packed != nil else { quantized.append(nil); continue }
            if let j = products[..<i].firstIndex(where: { $0.x == p.x && $0.matrix.columns == p.matrix.columns && $0.matrix.packed != nil }) {
                quantized.append(quantized[j])
                continue
            }
            let q = Q8Activations(validatedRows: 1, columns: p.matrix.columns)
            q.quantize(row: 0, from: p.x)
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
            let matrix = products[p].matrix, y = products[p].y
            let start = (c - firstChunk[p]) * chunk
            let rows = start..<min(matrix.rows, start + chunk)
            if let packed = matrix.packed, let x = quantized[p] {
                // The packed rows' reference is taken once per chunk: no reference counting
                // in the row loop.
                for r in rows { packed.dot(r, x, first: 0, count: 1, y + r, yStride: 1) }
            } else {
                let buffer = UnsafeMutablePointer<Float>.allocate(capacity: widest)
                defer { buffer.deallocate() }
                for r in rows { y[r] = matrix.floatRowDot(r, products[p].x, buffer) }
            }
        }
    }

    /// Row `r` · x in Float32 for the types without an integer kernel: the row decoded to
    /// Float32 (F32 read in place), then one fixed-order dot product.
    @inline(__always)
    func floatRowDot(_ r: Int, _ x: UnsafePointer<Float>, _ buffer: UnsafeMutablePointer<Float>) -> Float {
        VectorMath.dot(decodedRow(r, buffer), x, count: columns)
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
    /// `threads`. Tiles of 16 weight rows meet chunks of 32 tokens, so both stay in L1.
    public func multiply(_ x: UnsafePointer<Float>, tokens: Int, xStride: Int,
                         into y: UnsafeMutablePointer<Float>, yStride: Int, threads: Int? = nil) {
        if tokens == 1 {
            multiplyVector(x, into: y, threads: threads)
            return
        }
        let tile = 16, tokenChunk = 32
        let tiles = (rows + tile - 1) / tile
        if let packed {
            let quantized = Q8Activations(validatedRows: tokens, columns: columns)
            Parallel.forEach(tokens, threads: threads) { t in quantized.quantize(row: t, from: x + t * xStride) }
            Parallel.forEachDynamic(tiles, threads: threads) { t in
                let rowRange = (t * tile)..<min(rows, t * tile + tile)
                for first in stride(from: 0, to: tokens, by: tokenChunk) {
                    let count = min(tokenChunk, tokens - first)
                    for r in rowRange { packed.dot(r, quantized, first: first, count: count, y + first * yStride + r, yStride: yStride) }
                }
            }
            return
        }
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
