import XCTest
import FlashCore
@testable import FlashAttention

/// The paged kernel against the Float64 reference (FlashAttention's accuracy rule: at most
/// twice the standard Float32 implementation's error) and against the contiguous flash kernel,
/// for random block tables, partly filled last blocks, GQA, chunks of rows and split keys.
final class PagedAttentionTests: XCTestCase {
    struct Sequence {
        var length: Int      // positions held
        var chunk: Int       // query rows: the last `chunk` positions
        var table: [Int32] = []
    }

    /// With `halfPools` the pools hold values exact in Float16, and the kernel runs on Float16
    /// pools as well as Float32 ones: widening is exact, so the two outputs must be identical.
    func check(sequences: [Sequence], heads: Int, keyHeads: Int, headDim: Int, blockSize: Int,
               alibi: Bool = false, halfPools: Bool = false, seed: UInt64) throws {
        var random = TestRandom(seed)
        var sequences = sequences
        let blocksNeeded = sequences.map { ($0.length + blockSize - 1) / blockSize }
        // Blocks shuffled over a pool with spare blocks, so tables are not in order.
        let blockCount = blocksNeeded.reduce(0, +) + 5
        var ids = Array(0..<Int32(blockCount))
        for i in stride(from: ids.count - 1, to: 0, by: -1) { ids.swapAt(i, Int(random.next() * Double(i + 1))) }
        var cursor = 0
        for s in sequences.indices {
            sequences[s].table = Array(ids[cursor..<(cursor + blocksNeeded[s])])
            cursor += blocksNeeded[s]
        }
        let kvRow = keyHeads * headDim
        var keyPool = random.values(blockCount * blockSize * kvRow)
        var valuePool = random.values(blockCount * blockSize * kvRow)
        if halfPools {
            keyPool = keyPool.map { Float(Float16($0)) }
            valuePool = valuePool.map { Float(Float16($0)) }
        }
        let slopes: [Float]? = alibi ? (0..<heads).map { Float(pow(2, -8 * Double($0 + 1) / Double(heads))) } : nil

        // Rows of all sequences' chunks, in one call.
        var queries: [[Float]] = []
        var keyCounts: [Int] = [], tables: [[Int32]] = []
        for s in sequences {
            for i in 0..<s.chunk {
                queries.append(random.values(heads * headDim))
                keyCounts.append(s.length - s.chunk + i + 1)
                tables.append(s.table)
            }
        }
        let rowWidth = heads * headDim
        let query = queries.flatMap { $0 }
        func run<T>(_ keys: [T], _ values: [T], _ type: ElementType, threads: Int) throws -> [Float] {
            try pagedForward(query: query, keyCounts: keyCounts, tables: tables, keys: keys, values: values, type: type,
                             blockCount: blockCount, blockSize: blockSize, heads: heads, keyHeads: keyHeads, headDim: headDim,
                             alibiSlopes: slopes, threads: threads)
        }
        let output = try run(keyPool, valuePool, .float32, threads: 2)
        if halfPools {
            let halves = try run(keyPool.map(Float16.init), valuePool.map(Float16.init), .float16, threads: 1)
            XCTAssertEqual(halves, output, "Float16 pools against Float32 pools holding the same values")
        }

        // Each sequence's keys gathered into a contiguous [1, length, keyHeads, headDim] tensor.
        var row = 0
        for (index, s) in sequences.enumerated() {
            var keys = [Float](), values = [Float]()
            for p in 0..<s.length {
                let offset = (Int(s.table[p / blockSize]) * blockSize + p % blockSize) * kvRow
                keys += keyPool[offset..<(offset + kvRow)]
                values += valuePool[offset..<(offset + kvRow)]
            }
            let q = Array(query[(row * rowWidth)..<((row + s.chunk) * rowWidth)])
            let paged = Array(output[(row * rowWidth)..<((row + s.chunk) * rowWidth)])
            row += s.chunk
            let qt = try Tensor(shape: [1, s.chunk, heads, headDim], values: q)
            let kt = try Tensor(shape: [1, s.length, keyHeads, headDim], values: keys)
            let vt = try Tensor(shape: [1, s.length, keyHeads, headDim], values: values)
            var descriptor = AttentionDescriptor(causal: true, alibiSlopes: slopes)
            descriptor.implementation = .standard
            let standard = try Attention.forward(query: qt, key: kt, value: vt, descriptor: descriptor).output.floats()
            descriptor.implementation = .flash
            let flash = try Attention.forward(query: qt, key: kt, value: vt, descriptor: descriptor).output.floats()
            var reference = ReferenceAttention(batch: 1, queryLength: s.chunk, keyLength: s.length, queryHeads: heads,
                                               keyHeads: keyHeads, headDim: headDim,
                                               scale: Double(Float(1 / Double(headDim).squareRoot())))
            reference.causal = true
            reference.alibiSlopes = slopes?.map(Double.init)
            let expected = reference.forward(query: q.map(Double.init), key: keys.map(Double.init), value: values.map(Double.init)).output
            let c = AttentionCase(batch: 1, queryLength: s.chunk, keyLength: s.length, queryHeads: heads, keyHeads: keyHeads,
                                  headDim: headDim, causal: true, alibi: alibi)
            assertFlashAccurate(paged, standard: standard, reference: expected, "paged O (sequence \(index))", c)
            // The contiguous kernel obeys the same rule, so the two agree to within it.
            let both = maxError(paged, flash.map(Double.init))
            XCTAssertLessThanOrEqual(both, 2 * maxError(standard, expected) + maxError(flash, expected) + 1e-5,
                                     "paged vs contiguous flash, sequence \(index)")
        }
    }

    func testDecodeRowsWithPartlyFilledLastBlocksAndGQA() throws {
        try check(sequences: [Sequence(length: 1, chunk: 1), Sequence(length: 17, chunk: 1), Sequence(length: 40, chunk: 1),
                              Sequence(length: 64, chunk: 1)],
                  heads: 6, keyHeads: 2, headDim: 16, blockSize: 16, seed: 11)
    }

    func testPrefillChunksAgainstCachedBlocks() throws {
        try check(sequences: [Sequence(length: 13, chunk: 13), Sequence(length: 30, chunk: 7), Sequence(length: 9, chunk: 2)],
                  heads: 4, keyHeads: 1, headDim: 64, blockSize: 4, seed: 12)
    }

    func testLongSequencesSplitKeysAndMerge() throws {
        // 300 and 520 positions in blocks of 16: 2 and 3 splits of 256 keys.
        try check(sequences: [Sequence(length: 300, chunk: 3), Sequence(length: 520, chunk: 1)],
                  heads: 9, keyHeads: 3, headDim: 64, blockSize: 16, seed: 13)
    }

    /// Head dimensions the value accumulation splits into 64-float blocks, 16-float vectors and
    /// single floats (72 = 64 + 8, 48 = 3 × 16, 20 = 16 + 4).
    func testHeadDimensionsOffTheVectorWidth() throws {
        for (headDim, seed) in [(72, 15), (48, 16), (20, 17)] as [(Int, UInt64)] {
            try check(sequences: [Sequence(length: 37, chunk: 4), Sequence(length: 270, chunk: 1)],
                      heads: 4, keyHeads: 2, headDim: headDim, blockSize: 16, seed: seed)
        }
    }

    /// Float16 pools (the half-precision KV cache): the same values as Float32 pools give the
    /// same output bit for bit, and the Float64 reference's accuracy rule holds.
    func testHalfPrecisionPools() throws {
        try check(sequences: [Sequence(length: 300, chunk: 3), Sequence(length: 45, chunk: 1), Sequence(length: 17, chunk: 17)],
                  heads: 9, keyHeads: 3, headDim: 64, blockSize: 16, halfPools: true, seed: 18)
        try check(sequences: [Sequence(length: 37, chunk: 4), Sequence(length: 270, chunk: 1)],
                  heads: 4, keyHeads: 2, headDim: 72, blockSize: 8, alibi: true, halfPools: true, seed: 19)
    }

    func testALiBi() throws {
        try check(sequences: [Sequence(length: 21, chunk: 5), Sequence(length: 300, chunk: 1)],
                  heads: 4, keyHeads: 4, headDim: 32, blockSize: 8, alibi: true, seed: 14)
    }

    /// A row's output is bit-for-bit the same alone or among other rows (batch invariance).
    func testRowResultDoesNotDependOnTheOtherRows() throws {
        var random = TestRandom(15)
        let (heads, keyHeads, d, bs, blocks) = (4, 2, 32, 8, 12)
        let keys = random.values(blocks * bs * keyHeads * d), values = random.values(blocks * bs * keyHeads * d)
        let query = random.values(3 * heads * d)
        let tables: [[Int32]] = [[3, 7, 1], [0, 2, 4, 5, 6], [11, 10]]
        let counts = [20, 33, 9]
        func run(_ rows: [Int]) throws -> [Float] {
            try pagedForward(query: rows.flatMap { query[($0 * heads * d)..<(($0 + 1) * heads * d)] },
                             keyCounts: rows.map { counts[$0] }, tables: rows.map { tables[$0] }, keys: keys, values: values,
                             type: .float32, blockCount: blocks, blockSize: bs, heads: heads, keyHeads: keyHeads, headDim: d)
        }
        let all = try run([0, 1, 2])
        for r in 0..<3 {
            XCTAssertEqual(try run([r]), Array(all[(r * heads * d)..<((r + 1) * heads * d)]))
        }
        XCTAssertEqual(try run([2, 0]), Array(all[(2 * heads * d)...]) + Array(all[..<(heads * d)]))
    }

    /// A sequence's chunk of rows (one block table, consecutive key counts) shares its gathered
    /// K/V tiles within a work item; each row still gets exactly what it gets alone or in any
    /// other chunking. 70 rows cross the 64-row item limit, their key counts the 256-key split.
    /// Items hold all key/value heads when there are enough of them for the threads, else one
    /// head each: 1 thread and 64 threads take the two ways through the same batch.
    func testChunkRowsEqualEachRowAloneAndAnyOtherChunking() throws {
        var random = TestRandom(20)
        let (heads, keyHeads, d, bs, blocks) = (6, 2, 64, 16, 21)
        let keys = random.values(blocks * bs * keyHeads * d).map { Float16($0) }
        let values = random.values(blocks * bs * keyHeads * d).map { Float16($0) }
        let table: [Int32] = (0..<20).map { Int32(($0 * 8) % 21) }  // distinct, out of order
        let counts = Array(250..<320)
        let query = random.values(counts.count * heads * d)
        func run(_ rows: Range<Int>, threads: Int = 2) throws -> [Float] {
            try pagedForward(query: Array(query[(rows.lowerBound * heads * d)..<(rows.upperBound * heads * d)]),
                             keyCounts: rows.map { counts[$0] }, tables: rows.map { _ in table }, keys: keys, values: values,
                             type: .float16, blockCount: blocks, blockSize: bs, heads: heads, keyHeads: keyHeads, headDim: d,
                             threads: threads)
        }
        let whole = try run(0..<counts.count)
        XCTAssertEqual(try run(0..<counts.count, threads: 1), whole, "all heads per item")
        XCTAssertEqual(try run(0..<counts.count, threads: 64), whole, "one head per item")
        XCTAssertEqual(try run(0..<30) + run(30..<counts.count), whole)
        for r in [0, 5, 63, 64, 69] {
            XCTAssertEqual(try run(r..<(r + 1)), Array(whole[(r * heads * d)..<((r + 1) * heads * d)]), "row \(r)")
        }
    }

    /// A tile's scores (the butterfly of horizontal sums, the D = 32/64/128 instantiations with
    /// q in registers, and the fallbacks for other D) equal `VectorMath.dot(q, K_j)·scale +
    /// slope·offset` key by key, bit for bit: the per-row arithmetic every invariance test and
    /// the engine's equality with the reference path rest on.
    func testTileScoresEqualOneDotPerKey() {
        var random = TestRandom(21)
        for d in [16, 20, 32, 48, 64, 80, 128] {
            let rowStride = 3 * d + 8   // keys of a multi-head tile row, not packed
            let q = random.values(d).map { $0 * 3 }, keys = random.values(16 * rowStride).map { $0 * 3 }
            for count in [1, 7, 16] {
                for slope in [nil, Float(0.125)] {
                    let scores = FlashAttentionKernel.tileScores(q, keys: keys, rowStride: rowStride, count: count, headDim: d,
                                                                 scale: 0.17, slope: slope, firstOffset: -40)
                    for j in 0..<16 {
                        var expected = -Float.infinity
                        if j < count {
                            expected = keys.withUnsafeBufferPointer { VectorMath.dot(q, $0.baseAddress! + j * rowStride, count: d) } * 0.17
                            if let slope { expected += slope * Float(j - 40) }
                        }
                        XCTAssertEqual(scores[j].bitPattern, expected.bitPattern, "D \(d), \(count) keys, lane \(j), slope \(slope.map { "\($0)" } ?? "none")")
                    }
                }
            }
        }
    }

    /// The same keys and values stored in pools of different block sizes (4, 8, 16, 48; shuffled
    /// tables) give bit-identical rows: the kernel steps in positions, not blocks, so a server's
    /// `--block-size` cannot change its output. Lengths cross the 256-key split.
    func testRowResultDoesNotDependOnTheBlockSize() throws {
        var random = TestRandom(16)
        let (heads, keyHeads, d) = (6, 2, 32)
        let kvRow = keyHeads * d
        let counts = [1, 23, 300]
        let keys = counts.map { random.values($0 * kvRow) }, values = counts.map { random.values($0 * kvRow) }
        let query = random.values(counts.count * heads * d)
        func run(blockSize bs: Int) throws -> [Float] {
            // Lay each sequence's positions out in a pool, its blocks in reverse order.
            let blocksPer = counts.map { ($0 + bs - 1) / bs }
            let blockCount = blocksPer.reduce(0, +)
            var keyPool = [Float](repeating: 0, count: blockCount * bs * kvRow), valuePool = keyPool
            var tables: [[Int32]] = []
            var nextBlock = blockCount
            for (r, count) in counts.enumerated() {
                let table = (0..<blocksPer[r]).map { _ -> Int32 in nextBlock -= 1; return Int32(nextBlock) }
                tables.append(table)
                for p in 0..<count {
                    let offset = (Int(table[p / bs]) * bs + p % bs) * kvRow
                    for i in 0..<kvRow {
                        keyPool[offset + i] = keys[r][p * kvRow + i]
                        valuePool[offset + i] = values[r][p * kvRow + i]
                    }
                }
            }
            return try pagedForward(query: query, keyCounts: counts, tables: tables, keys: keyPool, values: valuePool,
                                    type: .float32, blockCount: blockCount, blockSize: bs, heads: heads, keyHeads: keyHeads, headDim: d)
        }
        let reference = try run(blockSize: 16)
        XCTAssertFalse(reference.contains { !$0.isFinite })
        for bs in [4, 8, 48] { XCTAssertEqual(try run(blockSize: bs), reference, "block size \(bs)") }
    }

    func testInvalidBatchesThrow() throws {
        // Validation reads no memory; one scratch buffer stands in for every pointer.
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: 2 * 4 * 8)
        defer { scratch.deallocate() }
        func batch(_ counts: [Int], _ tables: [[Int32]]) -> PagedAttention.Batch {
            PagedAttention.Batch(query: scratch, queryRowStride: 8, output: scratch, outputRowStride: 8, keyCounts: counts,
                                 blockTables: tables, keys: scratch, values: scratch, blockCount: 2, blockSize: 4,
                                 heads: 1, keyHeads: 1, headDim: 8)
        }
        XCTAssertThrowsError(try batch([5], [[0]]).validate())
        XCTAssertThrowsError(try batch([3], [[2]]).validate())
        XCTAssertThrowsError(try batch([0], [[0]]).validate())
        XCTAssertNoThrow(try batch([5], [[1, 0]]).validate())
    }
}

/// `PagedAttention.forward` over pools of `T` (Float or Float16, `type` says which) for query
/// rows of `heads × headDim` floats; returns the output rows.
func pagedForward<T>(query: [Float], keyCounts: [Int], tables: [[Int32]], keys: [T], values: [T], type: ElementType,
                     blockCount: Int, blockSize: Int, heads: Int, keyHeads: Int, headDim: Int,
                     alibiSlopes: [Float]? = nil, threads: Int = 2) throws -> [Float] {
    let rowWidth = heads * headDim
    var output = [Float](repeating: .nan, count: query.count)
    try query.withUnsafeBufferPointer { q in
        try output.withUnsafeMutableBufferPointer { o in
            try keys.withUnsafeBufferPointer { k in
                try values.withUnsafeBufferPointer { v in
                    try PagedAttention.forward(PagedAttention.Batch(
                        query: q.baseAddress!, queryRowStride: rowWidth, output: o.baseAddress!, outputRowStride: rowWidth,
                        keyCounts: keyCounts, blockTables: tables, keys: UnsafeRawPointer(k.baseAddress!),
                        values: UnsafeRawPointer(v.baseAddress!), elementType: type, blockCount: blockCount,
                        blockSize: blockSize, heads: heads, keyHeads: keyHeads, headDim: headDim, alibiSlopes: alibiSlopes),
                        threads: threads)
                }
            }
        }
    }
    return output
}
