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

    /// A region started inside another (the inner one falls back to Dispatch while the pool
    /// runs the outer), many short regions in a row (places taken late by a worker must not
    /// run a region twice or miss one), and a worker pool larger than the region.
    func testNestedAndBackToBackRegions() {
        let outer = 6, inner = 37
        let visits = UnsafeMutablePointer<Int>.allocate(capacity: outer * inner)
        defer { visits.deallocate() }
        visits.initialize(repeating: 0, count: outer * inner)
        Parallel.forEach(outer, threads: 2) { o in
            Parallel.forEachDynamic(inner, threads: 2) { i in visits[o * inner + i] += 1 }
        }
        XCTAssertEqual(Array(UnsafeBufferPointer(start: visits, count: outer * inner)), [Int](repeating: 1, count: outer * inner))
        let slots = UnsafeMutablePointer<Int>.allocate(capacity: 3)
        defer { slots.deallocate() }
        slots.initialize(repeating: 0, count: 3)
        for round in 0..<20_000 {
            let threads = round % 3 == 0 ? 4 : 2
            Parallel.forEach(3, threads: threads) { i in slots[i] += 1 }
        }
        XCTAssertEqual(Array(UnsafeBufferPointer(start: slots, count: 3)), [20_000, 20_000, 20_000])
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
