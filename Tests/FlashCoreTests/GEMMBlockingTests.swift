import FlashCore
import XCTest

/// The register-tile table and the cache block sizes: each target's tile fills its register
/// file without spilling, so a new target cannot silently get a tile that does not fit.
final class GEMMBlockingTests: XCTestCase {
    /// The tile each `VectorISA` gets from its width and register count, and that the
    /// accumulators plus one step's B vectors and an A broadcast fit the register file.
    func testTileTableForEveryISA() {
        let expected: [VectorISA: (rows: Int, columns: Int)] = [
            .avx512: (8, 32),  // 16 zmm accumulators of 32
            .avx2: (6, 16),    // 12 ymm accumulators of 16 (BLIS/OpenBLAS Haswell)
            .neon: (8, 12),    // 24 q accumulators of 32
            .generic: (4, 12), // 12 xmm accumulators of 16
        ]
        for isa in VectorISA.allCases {
            let tile = RegisterTile.choose(floatLanes: isa.floatLanes, vectorRegisters: isa.vectorRegisters)
            XCTAssertEqual(tile.rows, expected[isa]!.rows, "\(isa) rows")
            XCTAssertEqual(tile.columns, expected[isa]!.columns, "\(isa) columns")
            XCTAssertEqual(tile.floatLanes, isa.floatLanes)
            XCTAssertLessThanOrEqual(tile.registersUsed, isa.vectorRegisters, "\(isa): \(tile) spills")
            XCTAssertEqual(tile.registersUsed, tile.rows * tile.vectorsPerRow + tile.vectorsPerRow + 1)
            // The kernel names at most 8 rows × 3 vectors of accumulators.
            XCTAssertLessThanOrEqual(tile.rows, 8)
            XCTAssertLessThanOrEqual(tile.vectorsPerRow, 3)
        }
    }

    /// The build's tile is the table's entry for the compiled ISA (the kernel reads the
    /// register count as a literal so that the tile folds to constants).
    func testCompiledTileIsTheTablesChoiceForTheCompiledISA() {
        let isa = VectorISA.compiled
        XCTAssertEqual(RegisterTile.compiled,
                       RegisterTile.choose(floatLanes: isa.floatLanes, vectorRegisters: isa.vectorRegisters))
        XCTAssertEqual(GEMMBlocking.tile, RegisterTile.compiled)
        XCTAssertEqual(RegisterTile.compiled.floatLanes, FloatVector.scalarCount)
    }

    /// kc, nc and mc from cache sizes: the documented rule on known caches, and this machine's
    /// sizes within the clamps (kc never depends on the thread count: it is a constant).
    func testCacheBlocksFollowTheCaches() {
        XCTAssertEqual(GEMMBlocking.depthBlock(l1DataBytes: 32 * 1024, rows: 8), 256)
        XCTAssertEqual(GEMMBlocking.depthBlock(l1DataBytes: 48 * 1024, rows: 8), 384)
        XCTAssertEqual(GEMMBlocking.depthBlock(l1DataBytes: 32 * 1024, rows: 6), 320)
        XCTAssertEqual(GEMMBlocking.depthBlock(l1DataBytes: 128 * 1024, rows: 8), 512)  // Apple M-series L1d
        XCTAssertEqual(GEMMBlocking.depthBlock(l1DataBytes: 4 * 1024, rows: 8), 128)
        XCTAssertEqual(GEMMBlocking.columnBlock(l2Bytes: 1024 * 1024, depth: 256, columns: 32), 512)
        XCTAssertEqual(GEMMBlocking.columnBlock(l2Bytes: 1024 * 1024, depth: 384, columns: 32), 320)
        XCTAssertEqual(GEMMBlocking.columnBlock(l2Bytes: 256 * 1024, depth: 512, columns: 16), 64)
        XCTAssertEqual(GEMMBlocking.columnBlock(l2Bytes: 64 * 1024 * 1024, depth: 128, columns: 12), 4092)
        XCTAssertEqual(GEMMBlocking.rowBlock(l2Bytes: 1024 * 1024, depth: 256, rows: 8), 256)
        XCTAssertEqual(GEMMBlocking.rowBlock(l2Bytes: 1024 * 1024, depth: 320, rows: 6), 204)
        XCTAssertEqual(GEMMBlocking.rowBlock(l2Bytes: 256 * 1024, depth: 512, rows: 8), 32)
        XCTAssertEqual(GEMMBlocking.rowBlock(l2Bytes: 64 * 1024 * 1024, depth: 128, rows: 8), 4096)
        let host = CacheSizes.host
        XCTAssert((4 * 1024...4 * 1024 * 1024).contains(host.l1Data), "L1d \(host.l1Data)")
        XCTAssert((64 * 1024...256 * 1024 * 1024).contains(host.l2), "L2 \(host.l2)")
        XCTAssertEqual(GEMMBlocking.kc, GEMMBlocking.depthBlock(l1DataBytes: host.l1Data, rows: RegisterTile.compiled.rows))
        XCTAssertEqual(GEMMBlocking.nc % RegisterTile.compiled.columns, 0)
        XCTAssertEqual(GEMMBlocking.mc % RegisterTile.compiled.rows, 0)
    }

    /// Balanced blocks: as few pieces as the block size allows, all the same size (a multiple of
    /// the unit) but the last.
    func testBalancedBlocksCutALengthIntoEqualPieces() {
        XCTAssertEqual(GEMMBlocking.balanced(512, block: 384, unit: 16), 256)     // 256 + 256, not 384 + 128
        XCTAssertEqual(GEMMBlocking.balanced(2048, block: 384, unit: 16), 352)    // 5 × 352 + 288
        XCTAssertEqual(GEMMBlocking.balanced(384, block: 384, unit: 16), 384)
        XCTAssertEqual(GEMMBlocking.balanced(100, block: 384, unit: 16), 384)     // one piece: the block itself
        XCTAssertEqual(GEMMBlocking.balanced(512, block: 320, unit: 32), 256)
        XCTAssertEqual(GEMMBlocking.balanced(2048, block: 320, unit: 32), 320)    // 7 pieces of ≤ 293 round up to 320
        for (length, block, unit) in [(1000, 384, 16), (4097, 320, 32), (3000, 192, 24)] {
            let size = GEMMBlocking.balanced(length, block: block, unit: unit)
            let pieces = (length + size - 1) / size
            XCTAssertEqual(pieces, (length + block - 1) / block, "as few pieces as the block allows")
            XCTAssertLessThanOrEqual(size, block)
            XCTAssertEqual(size % unit, 0)
        }
    }
}
