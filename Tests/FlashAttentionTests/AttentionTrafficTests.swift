import XCTest
import FlashCore
import FlashAttention

/// The traffic counters against the IO counts the tiling implies, computed here from the tile
/// table: flash reads K and V once per (query tile, visible key tile), standard moves its N×N
/// matrices several times.
final class AttentionTrafficTests: XCTestCase {
    func testFlashForwardCountsTileLoads() throws {
        let (n, d) = (640, 64)
        let tiles = AttentionTiles.forHeadDimension(d)
        let inputs = try AttentionInputs(AttentionCase(queryLength: n, keyLength: n, queryHeads: 1, keyHeads: 1, headDim: d))
        let queryTiles = (n + tiles.queryRows - 1) / tiles.queryRows
        let keyTiles = (n + tiles.keyColumns - 1) / tiles.keyColumns
        for causal in [false, true] {
            let descriptor = AttentionDescriptor(causal: causal)
            let (result, traffic) = try Attention.forwardCountingTraffic(query: inputs.query, key: inputs.key, value: inputs.value,
                                                                         descriptor: descriptor)
            let plain = try Attention.forward(query: inputs.query, key: inputs.key, value: inputs.value, descriptor: descriptor)
            XCTAssertEqual(result.output.floats(), plain.output.floats())
            // Visible key tiles per query tile: all of them, or (causal) those starting at or before the tile's last row.
            var tileLoads = 0
            for qt in 0..<queryTiles {
                let lastRow = min(n, (qt + 1) * tiles.queryRows) - 1
                tileLoads += causal ? (0..<keyTiles).filter { $0 * tiles.keyColumns <= lastRow }.count : keyTiles
            }
            let row = d * 4
            XCTAssertEqual(traffic.bytesRead[.query], n * row)
            XCTAssertEqual(traffic.bytesRead[.key], n * row + tileLoads * tiles.keyColumns * row)
            XCTAssertEqual(traffic.bytesRead[.value], traffic.bytesRead[.key])
            XCTAssertEqual(traffic.bytesWritten[.output], n * row)
            XCTAssertEqual(traffic.bytesWritten[.logSumExp], n * 8)  // LSE and its residual, Float32
            XCTAssertNil(traffic.bytesRead[.scores])
        }
    }

    func testStandardMovesScoreMatrices() throws {
        let (n, d, h) = (100, 16, 2)
        let inputs = try AttentionInputs(AttentionCase(queryLength: n, keyLength: n, queryHeads: h, keyHeads: 1, headDim: d))
        let descriptor = AttentionDescriptor(implementation: .standard)
        let (forward, traffic) = try Attention.forwardCountingTraffic(query: inputs.query, key: inputs.key, value: inputs.value,
                                                                      descriptor: descriptor)
        XCTAssertEqual(traffic.bytesWritten[.scores], h * 2 * n * n * 4)
        XCTAssertEqual(traffic.bytesRead[.scores], h * 2 * n * n * 4)
        XCTAssertEqual(traffic.bytesRead[.key], n * d * 4)
        let (_, backward) = try Attention.backwardCountingTraffic(
            query: inputs.query, key: inputs.key, value: inputs.value, output: forward.output, logSumExp: forward.logSumExp,
            outputGradient: inputs.outputGradient, descriptor: descriptor)
        XCTAssertEqual(backward.bytesWritten[.scores], h * 4 * n * n * 4)
        XCTAssertEqual(backward.bytesRead[.scores], h * 5 * n * n * 4)
        XCTAssertEqual(backward.bytesWritten[.keyGradient], n * d * 4)
    }

    func testFlashBackwardWritesEachGradientOnce() throws {
        let (n, d) = (300, 32)
        let inputs = try AttentionInputs(AttentionCase(queryLength: n, keyLength: n, queryHeads: 2, keyHeads: 1, headDim: d,
                                                       elementType: .float16))
        let forward = try Attention.forward(query: inputs.query, key: inputs.key, value: inputs.value)
        let queryTiles = (n + AttentionTiles.forHeadDimension(d).queryRows - 1) / AttentionTiles.forHeadDimension(d).queryRows
        for threads in [1, 2] {
            let (_, traffic) = try Attention.backwardCountingTraffic(
                query: inputs.query, key: inputs.key, value: inputs.value, output: forward.output, logSumExp: forward.logSumExp,
                outputGradient: inputs.outputGradient, descriptor: AttentionDescriptor(threads: threads))
            XCTAssertEqual(traffic.bytesWritten[.queryGradient]! - traffic.bytesRead[.queryGradient]!, 2 * n * d * 4)
            XCTAssertEqual(traffic.bytesWritten[.keyGradient], n * d * 4)
            XCTAssertEqual(traffic.bytesWritten[.valueGradient], n * d * 4)
            // One thread: one item per key/value head reads each K/V (F16) tile once. Two threads
            // and a single head: a dK/dV pass reads them once, and the dQ pass once more per
            // (query head, query tile).
            let reads = threads == 1 ? 1 : 1 + 2 * queryTiles
            XCTAssertEqual(traffic.bytesRead[.key], reads * n * d * 2)
            XCTAssertEqual(traffic.bytesRead[.value], reads * n * d * 2)
        }
    }
}
