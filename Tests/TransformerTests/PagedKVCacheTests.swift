import XCTest
import FlashCore
@testable import Transformer

/// The paged KV cache's storage: rows stored where `offset` says, rounded to Float16 in a
/// half-precision cache (to nearest, as Swift's `Float16(_:)`), blocks copied whole, sizes.
final class PagedKVCacheTests: XCTestCase {
    func testRowsAreStoredAtTheirOffsetRoundedToTheCacheType() throws {
        // Deterministic values in (−1, 1) that are not all exact in Float16.
        func values(_ n: Int, _ seed: Int) -> [Float] { (0..<n).map { Float(sin(Double($0 * 7 + seed) * 1.37)) } }
        for type in [ElementType.float32, .float16] {
            let cache = try PagedKVCache(layers: 2, blockCount: 4, blockSize: 8, keyHeads: 3, headDim: 20, elementType: type)
            XCTAssertEqual(cache.rowSize, 60)
            XCTAssertEqual(cache.bytes, 2 * 2 * 4 * 8 * 60 * type.byteSize)
            XCTAssertEqual(cache.bytesPerPosition, 2 * 2 * 60 * type.byteSize)
            let table: [Int32] = [3, 1]
            // Values past Float16's range too: they become ±Inf, as a Float16 conversion does.
            var key = values(60, 1).map { $0 * 3 }, value = values(60, 2)
            key[7] = 70_000
            value[9] = -1e-9
            let offset = cache.offset(position: 10, table: table)
            XCTAssertEqual(offset, (1 * 8 + 2) * 60)
            cache.store(layer: 1, offset: offset, key: key, value: value)
            func read(_ pool: UnsafeMutableRawPointer, _ i: Int) -> Float {
                type == .float16 ? Float(pool.assumingMemoryBound(to: Float16.self)[i]) : pool.assumingMemoryBound(to: Float.self)[i]
            }
            let expectedKey = type == .float16 ? key.map { Float(Float16($0)) } : key
            let expectedValue = type == .float16 ? value.map { Float(Float16($0)) } : value
            XCTAssertEqual((0..<60).map { read(cache.keys[1], offset + $0) }, expectedKey, "\(type)")
            XCTAssertEqual((0..<60).map { read(cache.values[1], offset + $0) }, expectedValue, "\(type)")
            XCTAssertEqual(read(cache.keys[0], offset), 0, "other layers untouched")
            if type == .float16 { XCTAssertEqual(read(cache.keys[1], offset + 7), .infinity) }

            // Copy-on-write: block 1 over block 2, every layer, keys and values.
            cache.copyBlock(from: 1, to: 2)
            let copied = cache.offset(position: 2, table: [2])
            XCTAssertEqual((0..<60).map { read(cache.keys[1], copied + $0) }, expectedKey, "\(type)")
            XCTAssertEqual((0..<60).map { read(cache.values[1], copied + $0) }, expectedValue, "\(type)")
        }
    }

    func testBFloat16AndEmptyShapesAreRefused() {
        XCTAssertThrowsError(try PagedKVCache(layers: 1, blockCount: 1, blockSize: 1, keyHeads: 1, headDim: 1, elementType: .bfloat16)) {
            XCTAssertTrue("\($0)".contains("elementType"), "\($0)")
        }
        XCTAssertThrowsError(try PagedKVCache(layers: 1, blockCount: 0, blockSize: 1, keyHeads: 1, headDim: 1)) {
            XCTAssertTrue("\($0)".contains("blockCount"), "\($0)")
        }
    }
}
