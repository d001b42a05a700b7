import XCTest
@testable import Serving

/// Exact block bookkeeping, in the spirit of vLLM's tests/v1/core/test_prefix_caching.py:
/// which block ids are allocated, shared and freed, in which order they are evicted.
final class BlockManagerTests: XCTestCase {
    /// 14 tokens: three full blocks of 4 and a partial block of 2.
    let promptA = Array(0..<14)

    func testPrefillAllocatesInQueueOrderAndRegistersFullBlocks() throws {
        let m = BlockManager(blockCount: 10, blockSize: 4)
        XCTAssertEqual(try m.startSequence(1, prompt: promptA), 0)
        XCTAssertEqual(try m.appendSlots(1, count: 14)?.count, 0)
        XCTAssertEqual(m.blockTable(1), [0, 1, 2, 3])
        XCTAssertEqual(m.freeQueue, [4, 5, 6, 7, 8, 9])
        try m.commit(1, tokens: promptA)
        // Hash chain: each full block's hash covers its tokens and its parent's hash.
        let h0 = BlockManager.hash(parent: nil, tokens: [0, 1, 2, 3])
        let h1 = BlockManager.hash(parent: h0, tokens: [4, 5, 6, 7])
        let h2 = BlockManager.hash(parent: h1, tokens: [8, 9, 10, 11])
        XCTAssertEqual(Array(m.blockHashes[0..<4]), [h0, h1, h2, nil])
        XCTAssertEqual(m.chainedHashes(promptA), [h0, h1, h2])
        XCTAssertEqual(m.referenceCounts[0..<5], [1, 1, 1, 1, 0])
        // The same tokens under another parent are another block.
        XCTAssertNotEqual(BlockManager.hash(parent: h0, tokens: [0, 1, 2, 3]), h0)
        XCTAssertNotEqual(BlockManager.hash(parent: nil, tokens: [4, 5, 6, 7]), h1)
    }

    func testPrefixHitSharesBlocksAndFreeOrderIsEvictionOrder() throws {
        let m = BlockManager(blockCount: 10, blockSize: 4)
        try m.startSequence(1, prompt: promptA)
        _ = try m.appendSlots(1, count: 14)
        try m.commit(1, tokens: promptA)

        // Shares the three full blocks, then diverges.
        let promptB = Array(promptA[0..<12]) + [100, 101, 102]
        XCTAssertEqual(m.cachedPrefix(promptB), [0, 1, 2])
        XCTAssertEqual(m.blocksNeeded(prompt: promptB), 1)
        XCTAssertEqual(try m.startSequence(2, prompt: promptB), 12)
        XCTAssertEqual(m.referenceCounts[0..<4], [2, 2, 2, 1])
        XCTAssertEqual(try m.appendSlots(2, count: 3)?.count, 0)
        XCTAssertEqual(m.blockTable(2), [0, 1, 2, 4])
        try m.commit(2, tokens: [100, 101, 102])
        XCTAssertEqual(m.hitTokens, 12)
        XCTAssertEqual(m.queriedTokens, 14 + 15)

        // A full hit on 12 tokens still leaves the last block to compute.
        XCTAssertEqual(m.cachedPrefix(Array(promptA[0..<12])), [0, 1])
        XCTAssertEqual(m.cachedPrefix(Array(promptA[0..<13])), [0, 1, 2])

        // Freeing: the uncached partial block goes to the head; shared blocks stay held.
        m.free(1)
        XCTAssertEqual(m.referenceCounts[0..<5], [1, 1, 1, 0, 1])
        XCTAssertEqual(m.freeQueue, [3, 5, 6, 7, 8, 9])
        // Cached blocks go to the tail in reverse order: prefix tails are evicted first.
        m.free(2)
        XCTAssertEqual(m.freeQueue, [4, 3, 5, 6, 7, 8, 9, 2, 1, 0])
        XCTAssertEqual(m.referenceCounts, Array(repeating: 0, count: 10))
        XCTAssertEqual(m.cachedBlockCount, 3)

        // Freed cached blocks are still hits; a hit takes them out of the free queue.
        XCTAssertEqual(try m.startSequence(3, prompt: promptA), 12)
        XCTAssertEqual(m.freeQueue, [4, 3, 5, 6, 7, 8, 9])
        XCTAssertEqual(m.referenceCounts[0..<3], [1, 1, 1])
        m.free(3)
        XCTAssertEqual(m.freeQueue, [4, 3, 5, 6, 7, 8, 9, 2, 1, 0])
    }

    func testEvictionIsLeastRecentlyUsedAndBreaksTheChain() throws {
        let m = BlockManager(blockCount: 10, blockSize: 4)
        try m.startSequence(1, prompt: promptA)
        _ = try m.appendSlots(1, count: 14)
        try m.commit(1, tokens: promptA)
        m.free(1)
        XCTAssertEqual(m.freeQueue, [3, 4, 5, 6, 7, 8, 9, 2, 1, 0])
        // 32 unrelated tokens take 8 blocks: the 7 uncached ones, then cached block 2 (evicted).
        let other = Array(1000..<1032)
        try m.startSequence(2, prompt: other)
        XCTAssertEqual(try m.appendSlots(2, count: 32)?.count, 0)
        XCTAssertEqual(m.blockTable(2), [3, 4, 5, 6, 7, 8, 9, 2])
        XCTAssertEqual(m.freeQueue, [1, 0])
        XCTAssertNil(m.blockHashes[2])
        XCTAssertEqual(m.cachedBlockCount, 2)
        XCTAssertEqual(m.cachedPrefix(promptA), [0, 1])
        // Not enough free blocks: nothing changes.
        try m.startSequence(3, prompt: Array(2000..<2012))
        XCTAssertNil(try m.appendSlots(3, count: 12))
        XCTAssertEqual(m.blockTable(3), [])
        XCTAssertEqual(m.freeQueue, [1, 0])
        // Two fit, evicting block 1 then block 0.
        XCTAssertEqual(try m.appendSlots(3, count: 8)?.count, 0)
        XCTAssertEqual(m.blockTable(3), [1, 0])
        XCTAssertEqual(m.cachedBlockCount, 0)
        XCTAssertEqual(m.cachedPrefix(promptA), [])
        XCTAssertEqual(m.freeBlockCount, 0)
    }

    func testForkSharesBlocksAndCopiesAPartlyFilledLastBlockOnWrite() throws {
        let m = BlockManager(blockCount: 8, blockSize: 4)
        let prompt = [7, 8, 9, 10, 11, 12]
        try m.startSequence(1, prompt: prompt)
        _ = try m.appendSlots(1, count: 6)
        try m.commit(1, tokens: prompt)
        XCTAssertEqual(m.blockTable(1), [0, 1])
        try m.fork(1, child: 2)
        try m.fork(1, child: 3)
        XCTAssertEqual(m.blockTable(2), [0, 1])
        XCTAssertEqual(m.referenceCounts[0..<2], [3, 3])
        XCTAssertEqual(m.tokenCount(3), 6)

        // Child 2 writes position 6 into shared block 1: copied to block 2 first.
        let copies = try XCTUnwrap(m.appendSlots(2, count: 1))
        XCTAssertEqual(copies.map { [$0.source, $0.destination] }, [[1, 2]])
        XCTAssertEqual(m.blockTable(2), [0, 2])
        XCTAssertEqual(m.referenceCounts[0..<3], [3, 2, 1])
        try m.commit(2, tokens: [50])
        // Child 3 copies too; then the parent is the only holder of block 1 and writes in place.
        XCTAssertEqual(try m.appendSlots(3, count: 2)?.map { [$0.source, $0.destination] }, [[1, 3]])
        try m.commit(3, tokens: [60, 61])
        XCTAssertEqual(m.referenceCounts[0..<4], [3, 1, 1, 1])
        XCTAssertEqual(try m.appendSlots(1, count: 1)?.count, 0)
        XCTAssertEqual(m.blockTable(1), [0, 1])
        // Child 3 filled its copy: registered under the chain of its own tokens.
        let h0 = BlockManager.hash(parent: nil, tokens: [7, 8, 9, 10])
        XCTAssertEqual(m.blockHashes[3], BlockManager.hash(parent: h0, tokens: [11, 12, 60, 61]))
        XCTAssertNil(m.blockHashes[2])
        // A full shared block is never copied: appending past it takes a fresh block.
        XCTAssertEqual(try m.appendSlots(3, count: 1)?.count, 0)
        XCTAssertEqual(m.blockTable(3), [0, 3, 4])
        m.free(1); m.free(2); m.free(3)
        XCTAssertEqual(m.freeQueue, [4, 2, 1, 5, 6, 7, 3, 0])
        XCTAssertEqual(m.referenceCounts, Array(repeating: 0, count: 8))
    }

    func testTheSamePrefixComputedTwiceAtOnceIsCachedOnce() throws {
        let m = BlockManager(blockCount: 6, blockSize: 4)
        let prompt = Array(0..<9)
        for id in [1, 2] {
            try m.startSequence(id, prompt: prompt)
            _ = try m.appendSlots(id, count: 9)
        }
        try m.commit(1, tokens: prompt)
        try m.commit(2, tokens: prompt)
        XCTAssertEqual(m.blockTable(1), [0, 1, 2])
        XCTAssertEqual(m.blockTable(2), [3, 4, 5])
        XCTAssertNotNil(m.blockHashes[0])
        XCTAssertNil(m.blockHashes[3])
        XCTAssertEqual(m.cachedBlockCount, 2)
        m.free(2)
        XCTAssertEqual(m.freeQueue, [3, 4, 5])
        XCTAssertThrowsError(try m.commit(2, tokens: [1])) { XCTAssertEqual($0 as? BlockManager.Failure, .unknownSequence(2)) }
        XCTAssertThrowsError(try m.commit(1, tokens: [1, 2, 3, 4])) {
            XCTAssertEqual($0 as? BlockManager.Failure, .tooManyTokens(sequence: 1, tokens: 13, slots: 12))
        }
    }

    func testWithoutPrefixCachingNothingIsReused() throws {
        let m = BlockManager(blockCount: 4, blockSize: 4, prefixCaching: false)
        try m.startSequence(1, prompt: Array(0..<8))
        _ = try m.appendSlots(1, count: 8)
        try m.commit(1, tokens: Array(0..<8))
        m.free(1)
        XCTAssertEqual(m.cachedPrefix(Array(0..<8)), [])
        XCTAssertEqual(m.freeQueue, [0, 1, 2, 3])
    }
}
