import XCTest
import FlashCore
import FlashAttention

/// `Attention.tileMap` against the tile grid worked out here from the mask's definition, and
/// against the kernel's traffic counters (which count one K tile load per computed tile).
final class AttentionTileMapTests: XCTestCase {
    func testCausalAndWindowGridsMatchTheMaskDefinition() throws {
        for (n, d, windowLeft) in [(1024, 64, nil), (1000, 64, nil), (640, 128, 100), (300, 200, 40)] as [(Int, Int, Int?)] {
            let x = try Tensor(zeros: [1, n, 1, d])
            let tiles = AttentionTiles.forHeadDimension(d)
            let map = try Attention.tileMap(query: x, key: x, value: x,
                                            descriptor: AttentionDescriptor(causal: true, windowLeft: windowLeft))
            XCTAssertEqual(map.count, (n + tiles.queryRows - 1) / tiles.queryRows)
            for (qt, row) in map.enumerated() {
                XCTAssertEqual(row.count, (n + tiles.keyColumns - 1) / tiles.keyColumns)
                let queries = (qt * tiles.queryRows)..<min(n, (qt + 1) * tiles.queryRows)
                for (kt, cover) in row.enumerated() {
                    let keys = (kt * tiles.keyColumns)..<min(n, (kt + 1) * tiles.keyColumns)
                    // Query i sees key j when i − left ≤ j ≤ i (square problem: the diagonals coincide).
                    func visible(_ i: Int, _ j: Int) -> Bool { j <= i && (windowLeft.map { j >= i - $0 } ?? true) }
                    let seen = queries.flatMap { i in keys.map { j in visible(i, j) } }
                    let expected: TileCoverage = !seen.contains(true) ? .skipped : (seen.allSatisfy { $0 } ? .full : .partial)
                    XCTAssertEqual(cover, expected, "n=\(n) d=\(d) window=\(String(describing: windowLeft)) tile (\(qt), \(kt))")
                }
            }
        }
    }

    func testComputedTilesAreTheKeyTilesTheKernelLoads() throws {
        let (n, d) = (700, 64)
        let tiles = AttentionTiles.forHeadDimension(d)
        let x = try Tensor(shape: [1, n, 1, d], values: (0..<(n * d)).map { Float($0 % 7) / 7 })
        let descriptor = AttentionDescriptor(causal: true)
        let map = try Attention.tileMap(query: x, key: x, value: x, descriptor: descriptor)
        let (_, traffic) = try Attention.forwardCountingTraffic(query: x, key: x, value: x, descriptor: descriptor)
        // Key bytes: one packing read of K, then one Bc-row tile per computed tile (the counters' convention).
        var tileRows = 0
        for row in map { for (kt, cover) in row.enumerated() where cover != .skipped { tileRows += min(tiles.keyColumns, n - kt * tiles.keyColumns) } }
        let computedTiles = map.joined().filter { $0 != .skipped }.count
        XCTAssertGreaterThan(computedTiles, 0)
        XCTAssertLessThan(computedTiles, map.joined().count)
        XCTAssertTrue([n * d * 4 + tileRows * d * 4, n * d * 4 + computedTiles * tiles.keyColumns * d * 4].contains(traffic.bytesRead[.key]),
                      "key bytes \(String(describing: traffic.bytesRead[.key])) vs \(computedTiles) computed tiles")
    }

    func testRejectsASequenceThatDoesNotExist() throws {
        let x = try Tensor(zeros: [2, 64, 1, 32])
        XCTAssertThrowsError(try Attention.tileMap(query: x, key: x, value: x, sequence: 2)) { error in
            XCTAssertEqual((error as? InvalidArgument)?.argument, "sequence")
        }
    }
}
