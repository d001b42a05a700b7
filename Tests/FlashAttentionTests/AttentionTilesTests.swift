import XCTest
import FlashCore
import FlashAttention

/// The tile table (`AttentionTiles`): every ISA's register tile fits its register file and the
/// cache tiles follow the L2 size. (The tile multiply of every strip shape the compiled ISA uses
/// is checked against the Float64 reference by the accuracy tests' head dimensions 16–256.)
final class AttentionTilesTests: XCTestCase {
    func testRegisterTilePerISAFitsTheRegisterFile() {
        let expected: [VectorISA: (rows: Int, vectors: Int)] = [.avx512: (4, 4), .avx2: (4, 3), .neon: (4, 4), .generic: (4, 3)]
        for isa in VectorISA.allCases {
            let tile = AttentionTiles.registerTile(for: isa)
            XCTAssertEqual(tile.rows, expected[isa]?.rows, "\(isa)")
            XCTAssertEqual(tile.vectors, expected[isa]?.vectors, "\(isa)")
            // Accumulators + one row of B + one broadcast must fit, or the k loop spills.
            XCTAssertLessThanOrEqual(tile.rows * tile.vectors + tile.vectors + 1, isa.vectorRegisters, "\(isa)")
            XCTAssertGreaterThanOrEqual(tile.rows * tile.vectors, 8, "\(isa): too few accumulators to cover the FMA latency")
            for vectors in 1..<tile.vectors {
                let strip = AttentionTiles.remainderTile(vectors: vectors, isa: isa)
                XCTAssertLessThanOrEqual(strip.registersNeeded, isa.vectorRegisters, "\(isa) strip of \(vectors)")
                XCTAssertEqual(8 % strip.rows, 0, "\(isa): key rows are padded to 8")
            }
        }
        XCTAssertEqual(AttentionTiles.remainderTile(vectors: 2, isa: .avx2).rows, 4)
        XCTAssertEqual(AttentionTiles.remainderTile(vectors: 2, isa: .avx512).rows, 8)
    }

    private func assertTiles(_ d: Int, l2: Int, _ br: Int, _ bc: Int, line: UInt = #line) {
        let tiles = AttentionTiles.forHeadDimension(d, l2Bytes: l2)
        XCTAssertEqual(tiles.queryRows, br, "D \(d), L2 \(l2)", line: line)
        XCTAssertEqual(tiles.keyColumns, bc, "D \(d), L2 \(l2)", line: line)
    }

    func testCacheTilesFollowTheL2Size() {
        let zen4 = 1024 * 1024
        assertTiles(64, l2: zen4, 128, 128)
        assertTiles(128, l2: zen4, 64, 64)
        assertTiles(256, l2: zen4, 32, 32)
        assertTiles(64, l2: 512 * 1024, 64, 64)
        assertTiles(64, l2: 2 * zen4, 128, 128)
        assertTiles(128, l2: 64 * 1024, 32, 32)
        for d in [1, 16, 64, 80, 128, 256] {
            let tiles = AttentionTiles.forHeadDimension(d)
            XCTAssertEqual(tiles.queryRows % 16, 0)
            XCTAssertEqual(tiles.keyColumns % 8, 0)
        }
        // Br no taller than the longest query run (rounded up to 16), Bc the table's.
        for (longest, br) in [(0, 16), (1, 16), (40, 48), (64, 64), (128, 128), (5000, 128)] {
            let tiles = AttentionTiles.forHeadDimension(32, longestQuery: longest, l2Bytes: zen4)
            XCTAssertEqual(tiles.queryRows, br, "longest query \(longest)")
            XCTAssertEqual(tiles.keyColumns, 128, "longest query \(longest)")
        }
        XCTAssertEqual(AttentionTiles.parseCacheSize("1024K"), 1024 * 1024)
        XCTAssertEqual(AttentionTiles.parseCacheSize("2M"), 2 * 1024 * 1024)
        XCTAssertEqual(AttentionTiles.parseCacheSize("512"), 512)
        #if os(Linux)
        if FileManager.default.fileExists(atPath: "/sys/devices/system/cpu/cpu0/cache/index2/size") {
            XCTAssertNotNil(AttentionTiles.hostL2Bytes, "the L2 size is in sysfs but was not read")
        }
        #endif
    }
}
