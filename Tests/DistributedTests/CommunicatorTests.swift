import XCTest
import Distributed

/// The in-process communicator's collectives against their definitions.
final class CommunicatorTests: XCTestCase {
    func testCollectives() throws {
        let size = 3
        let results = try ThreadCommunicator.run(size: size) { c -> [String: [Float]] in
            let r = Float(c.rank)
            var reduced: [Float] = [r, 10 * r, 1]
            try c.allReduceSum(&reduced, count: 3)
            // reduce-scatter: rank r sends [r·1, r·2, …, r·6]; block b of the sum is 3·(2b+1, 2b+2).
            let send = (1...(2 * size)).map { r * Float($0) }
            var block = [Float](repeating: -1, count: 2)
            try c.reduceScatterSum(send, into: &block, countPerRank: 2)
            var gathered = [Float](repeating: -1, count: 2 * size)
            try c.allGather([r, r + 0.5], into: &gathered, countPerRank: 2)
            var broadcast: [Float] = c.rank == 1 ? [7, 8] : [0, 0]
            try broadcast.withUnsafeMutableBytes { try c.broadcast($0.baseAddress!, bytes: 8, root: 1) }
            // Ring shift: send to r+1, receive from r−1.
            var received: [Float] = [-1]
            try c.sendReceive([r], count: 1, to: (c.rank + 1) % size, into: &received, count: 1, from: (c.rank + size - 1) % size)
            try c.barrier()
            return ["reduced": reduced, "block": block, "gathered": gathered, "broadcast": broadcast, "received": received]
        }
        for (rank, result) in results.enumerated() {
            XCTAssertEqual(result["reduced"], [3, 30, 3])
            XCTAssertEqual(result["block"], [3 * Float(2 * rank + 1), 3 * Float(2 * rank + 2)])
            XCTAssertEqual(result["gathered"], [0, 0.5, 1, 1.5, 2, 2.5])
            XCTAssertEqual(result["broadcast"], [7, 8])
            XCTAssertEqual(result["received"], [Float((rank + size - 1) % size)])
        }
    }

    func testMismatchedConfigurationIsRefusedOnEveryRankNamingTheRank() throws {
        let errors = try ThreadCommunicator.run(size: 3) { c -> String? in
            do {
                try c.requireIdentical(stableHash(c.rank == 2 ? "layers 4" : "layers 2"), "the model configuration")
                return nil
            } catch let error as CommunicationError {
                return error.description
            }
        }
        for error in errors {
            XCTAssertEqual(error, "ranks disagree: the model configuration of rank 2 differs from rank 0's")
        }
        XCTAssertNoThrow(try ThreadCommunicator.run(size: 2) { try $0.requireIdentical(42, "x") })
    }

    func testMPIIsNotLoadedWithoutALauncher() throws {
        // A plain process (no OMPI_COMM_WORLD_SIZE) is single-process training: no MPI needed.
        if ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_SIZE"] == nil {
            XCTAssertNil(try MPICommunicator.worldIfLaunched())
        }
    }

    func testCollectiveQueueRunsInOrderAndReportsFailures() throws {
        let queue = CollectiveQueue()
        var order: [Int] = []
        let lock = NSLock()
        for i in 0..<50 { queue.enqueue { lock.lock(); order.append(i); lock.unlock() } }
        try queue.wait()
        XCTAssertEqual(order, Array(0..<50))
        queue.enqueue { throw CommunicationError.mismatch("test") }
        XCTAssertThrowsError(try queue.wait())
        try queue.wait()  // the failure is reported once
    }
}
