import Dispatch
import FlashCore
import XCTest

/// Parallel loops visit every index exactly once, whatever the thread count.
final class ParallelTests: XCTestCase {
    func testEveryIndexRunsExactlyOnce() {
        for count in [0, 1, 2, 7, 100, 1001] {
            for threads in [1, 2, 3, 8] {
                for mode in ["static", "dynamic", "polling"] {
                    let visits = UnsafeMutablePointer<Int>.allocate(capacity: max(count, 1))
                    defer { visits.deallocate() }
                    visits.initialize(repeating: 0, count: max(count, 1))
                    // Each index writes only its own slot, so no two threads share memory.
                    let body: (Int) -> Void = { i in visits[i] += 1 }
                    switch mode {
                    case "static": Parallel.forEach(count, threads: threads, body)
                    case "dynamic": Parallel.forEachDynamic(count, threads: threads, body)
                    default: Parallel.forEachDynamicPolling(count, threads: threads, body)
                    }
                    XCTAssertEqual(Array(UnsafeBufferPointer(start: visits, count: count)),
                                   [Int](repeating: 1, count: count), "count \(count), threads \(threads), \(mode)")
                }
            }
        }
    }

    /// Regions started from several threads at once: one gets the polling pool, the others
    /// fall back to Dispatch; every region still visits each of its indices once.
    func testPollingRegionsFromConcurrentCallers() {
        let callers = 4, count = 500, rounds = 50
        let visits = UnsafeMutablePointer<Int>.allocate(capacity: callers * count)
        defer { visits.deallocate() }
        visits.initialize(repeating: 0, count: callers * count)
        DispatchQueue.concurrentPerform(iterations: callers) { caller in
            for _ in 0..<rounds {
                Parallel.forEachDynamicPolling(count, threads: 2) { i in visits[caller * count + i] += 1 }
            }
        }
        XCTAssertEqual(Array(UnsafeBufferPointer(start: visits, count: callers * count)),
                       [Int](repeating: rounds, count: callers * count))
    }

    func testAtomicCounterHandsOutEachValueOnce() {
        let counter = AtomicCounter()
        let seen = UnsafeMutablePointer<Int>.allocate(capacity: 4000)
        defer { seen.deallocate() }
        seen.initialize(repeating: 0, count: 4000)
        Parallel.forEach(4, threads: 4) { _ in
            for _ in 0..<1000 { seen[counter.increment()] += 1 }
        }
        XCTAssertEqual(Array(UnsafeBufferPointer(start: seen, count: 4000)), [Int](repeating: 1, count: 4000))
        XCTAssertEqual(counter.increment(), 4000)
    }
}
