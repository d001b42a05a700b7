import CacheHints
import FlashCore

/// Attention against a paged KV cache (PagedAttention, Kwon et al. 2023): keys and values live
/// in a pool of fixed-size blocks, `[block, blockSize, keyHeads, headDim]` per layer, and each
/// query row reads its sequence's positions through a block table. Nothing is copied into a
/// contiguous buffer.
///
/// Every query row is computed on its own: row r attends to positions `0 ..< keyCounts[r]` of
/// its sequence, which covers decode (one new token: its own position is the last) and chunked
/// prefill (a chunk's rows each see the cached positions plus the chunk's rows up to theirs,
/// because a causal row at position p has keyCounts = p + 1). A row's result depends only on
/// its query, its keys and values and its key count — never on the other rows of the call, the
/// block layout, or the thread count — which keeps a serving engine's output the same whatever
/// else it runs (see `FlashAttentionKernel.pagedDecode`).
public enum PagedAttention {
    /// Where the query rows, their sequences and the KV pool are.
    public struct Batch {
        /// Row r's query heads: `heads × headDim` floats at `query + r · queryRowStride`.
        public var query: UnsafePointer<Float>
        public var queryRowStride: Int
        /// Row r's output heads: `heads × headDim` floats at `output + r · outputRowStride`.
        public var output: UnsafeMutablePointer<Float>
        public var outputRowStride: Int
        /// Per row: the number of positions it attends to (the first ones of its sequence).
        public var keyCounts: [Int]
        /// Per row: its block table (block ids in position order).
        public var blockTables: [[Int32]]
        /// The pools of one layer, `[blockCount, blockSize, keyHeads, headDim]` each, of
        /// `elementType` (Float32, or Float16 for the half-precision cache).
        public var keys: UnsafeRawPointer
        public var values: UnsafeRawPointer
        public var elementType: ElementType
        public var blockCount: Int
        public var blockSize: Int
        public var heads: Int
        public var keyHeads: Int
        public var headDim: Int
        /// Score scale (default 1/√headDim).
        public var scale: Float
        /// Per query head, an ALiBi slope: the score of key position j for a row at position
        /// p gains slope·(j − p).
        public var alibiSlopes: [Float]?

        /// A batch over pools of `elementType` elements (`.float32` or `.float16`).
        public init(query: UnsafePointer<Float>, queryRowStride: Int, output: UnsafeMutablePointer<Float>, outputRowStride: Int,
                    keyCounts: [Int], blockTables: [[Int32]], keys: UnsafeRawPointer, values: UnsafeRawPointer,
                    elementType: ElementType, blockCount: Int, blockSize: Int, heads: Int, keyHeads: Int, headDim: Int,
                    scale: Float? = nil, alibiSlopes: [Float]? = nil) {
            self.query = query
            self.queryRowStride = queryRowStride
            self.output = output
            self.outputRowStride = outputRowStride
            self.keyCounts = keyCounts
            self.blockTables = blockTables
            self.keys = keys
            self.values = values
            self.elementType = elementType
            self.blockCount = blockCount
            self.blockSize = blockSize
            self.heads = heads
            self.keyHeads = keyHeads
            self.headDim = headDim
            self.scale = scale ?? 1 / Float(headDim).squareRoot()
            self.alibiSlopes = alibiSlopes
        }

        /// A batch over Float32 pools.
        public init(query: UnsafePointer<Float>, queryRowStride: Int, output: UnsafeMutablePointer<Float>, outputRowStride: Int,
                    keyCounts: [Int], blockTables: [[Int32]], keys: UnsafePointer<Float>, values: UnsafePointer<Float>,
                    blockCount: Int, blockSize: Int, heads: Int, keyHeads: Int, headDim: Int,
                    scale: Float? = nil, alibiSlopes: [Float]? = nil) {
            self.init(query: query, queryRowStride: queryRowStride, output: output, outputRowStride: outputRowStride,
                      keyCounts: keyCounts, blockTables: blockTables, keys: UnsafeRawPointer(keys), values: UnsafeRawPointer(values),
                      elementType: .float32, blockCount: blockCount, blockSize: blockSize, heads: heads, keyHeads: keyHeads,
                      headDim: headDim, scale: scale, alibiSlopes: alibiSlopes)
        }

        /// Elements `offset ..< offset + count` of a pool as Float32.
        @inline(__always)
        func loadRow(_ pool: UnsafeRawPointer, at offset: Int, count: Int, into destination: UnsafeMutablePointer<Float>) {
            if elementType == .float16 {
                HalfRows.widen(pool.assumingMemoryBound(to: Float16.self) + offset, into: destination, count: count)
            } else {
                HeadRows.copy(pool.assumingMemoryBound(to: Float.self) + offset, to: destination, count: count)
            }
        }

        /// Asks for the cache lines of `count` elements at element `offset` of `pool` (a hint:
        /// the next tile's rows, requested while this tile computes).
        @inline(__always)
        func prefetchRow(_ pool: UnsafeRawPointer, at offset: Int, count: Int) {
            let bytes = elementType.byteSize
            var address = pool + offset * bytes
            let end = address + count * bytes
            while address < end {
                flash_prefetch_l2(address)
                address += 64
            }
        }

        /// Throws `InvalidArgument` naming the first field that is inconsistent.
        public func validate() throws {
            try InvalidArgument.require(blockSize > 0 && headDim > 0 && heads > 0 && keyHeads > 0, "shape",
                                        expected: "positive blockSize, headDim, heads, keyHeads",
                                        got: "\(blockSize), \(headDim), \(heads), \(keyHeads)")
            try InvalidArgument.require(elementType != .bfloat16, "elementType", expected: "F32 or F16", got: elementType.rawValue)
            try InvalidArgument.require(heads % keyHeads == 0, "heads", expected: "a multiple of keyHeads (\(keyHeads))", got: "\(heads)")
            try InvalidArgument.require(blockTables.count == keyCounts.count, "blockTables.count",
                                        expected: "one per row (\(keyCounts.count))", got: "\(blockTables.count)")
            try InvalidArgument.require(queryRowStride >= heads * headDim && outputRowStride >= heads * headDim, "row strides",
                                        expected: "≥ heads·headDim (\(heads * headDim))", got: "\(queryRowStride), \(outputRowStride)")
            if let alibiSlopes {
                try InvalidArgument.require(alibiSlopes.count == heads, "alibiSlopes.count", expected: "\(heads)", got: "\(alibiSlopes.count)")
            }
            for (r, count) in keyCounts.enumerated() {
                let table = blockTables[r]
                try InvalidArgument.require(count >= 1 && count <= table.count * blockSize, "keyCounts[\(r)]",
                                            expected: "in 1...\(table.count * blockSize) (its block table's positions)", got: "\(count)")
                let used = (count + blockSize - 1) / blockSize
                for b in table[..<used] {
                    try InvalidArgument.require(b >= 0 && Int(b) < blockCount, "blockTables[\(r)]",
                                                expected: "block ids in 0..<\(blockCount)", got: "\(b)")
                }
            }
        }
    }

    /// Writes every row's attention output. Throws `InvalidArgument` for an inconsistent batch.
    public static func forward(_ batch: Batch, threads: Int? = nil) throws {
        try batch.validate()
        FlashAttentionKernel.pagedDecode(batch, threads: threads)
    }
}
