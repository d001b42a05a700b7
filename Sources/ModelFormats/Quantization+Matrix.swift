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
    public func multiplyVector(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, threads: Int? = nil) {
        QuantizedMatrix.multiplyVectors([(self, x, y)], threads: threads)
    }

    /// Several independent matrix-vector products (e.g. the query, key and value projections of
    /// one token) in one parallel region, which saves a thread hand-off per product.
    public static func multiplyVectors(_ products: [(matrix: QuantizedMatrix, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>)],
                                       threads: Int? = nil) {
        let chunk = 64
        var firstChunk: [Int] = [0]
        for p in products { firstChunk.append(firstChunk.last! + (p.matrix.rows + chunk - 1) / chunk) }
        let scratches = products.map { QuantizedDot.Scratch(columns: $0.matrix.columns, type: $0.matrix.type, x: $0.x) }
        defer { for s in scratches { s.release() } }
        let widest = products.map { $0.matrix.needsRowBuffer ? $0.matrix.columns : 1 }.max() ?? 1
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
            if let packed = matrix.packed {
                // The packed rows' reference is taken once per chunk: no reference counting
                // in the row loop.
                let x = scratches[p].x, sums = UnsafePointer(scratches[p].blockSums!)
                for r in rows { y[r] = packed.dot(r, x, sums) }
            } else {
                let buffer = UnsafeMutablePointer<Float>.allocate(capacity: widest)
                defer { buffer.deallocate() }
                for r in rows { y[r] = matrix.rowDot(r, scratches[p], buffer) }
            }
        }
    }

    var needsRowBuffer: Bool {
        switch type {
        case .f32, .q4_0, .q4_1, .q8_0: false  // direct kernels
        default: true
        }
    }

    @inline(__always)
    func rowDot(_ r: Int, _ scratch: QuantizedDot.Scratch, _ buffer: UnsafeMutablePointer<Float>) -> Float {
        if let packed { return packed.dot(r, scratch.x, scratch.blockSums!) }
        let row = data + r * rowBytes
        switch type {
        case .f32: return VectorMath.dot(row.assumingMemoryBound(to: Float.self), scratch.x, count: columns)
        default:
            Quantization.dequantize(type, row, count: columns, into: buffer)
            return VectorMath.dot(buffer, scratch.x, count: columns)
        }
    }

    /// `y[t, r] = Σ_c W[r, c]·x[t, c]` for `tokens` rows of `x` (prefill). `x` rows are
    /// `xStride` apart, `y` rows `yStride` apart. Tiles of 16 weight rows are decoded once to
    /// Float32 and reused for every token, then a 4-token × 4-row register kernel does the sums.
    public func multiply(_ x: UnsafePointer<Float>, tokens: Int, xStride: Int,
                         into y: UnsafeMutablePointer<Float>, yStride: Int, threads: Int? = nil) {
        if tokens == 1 {
            multiplyVector(x, into: y, threads: threads)
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
            for r in 0..<rowCount { dequantizeRow(rowStart + r, into: w + r * k) }
            var token = 0
            while token < tokens {
                let tokenCount = min(4, tokens - token)
                var r = 0
                while r < rowCount {
                    let rc = min(4, rowCount - r)
                    if tokenCount == 4 && rc == 4 {
                        QuantizedDot.kernel4x4(w + r * k, k: k, x + token * xStride, xStride: xStride,
                                               y + token * yStride + rowStart + r, yStride: yStride)
                    } else {
                        for i in 0..<tokenCount {
                            for j in 0..<rc {
                                y[(token + i) * yStride + rowStart + r + j] =
                                    VectorMath.dot(w + (r + j) * k, x + (token + i) * xStride, count: k)
                            }
                        }
                    }
                    r += 4
                }
                token += 4
            }
        }
    }
}
