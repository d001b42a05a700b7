import FlashCore
import XCTest

/// Parallel loops visit every index exactly once, whatever the thread count.
final class ParallelTests: XCTestCase {
    func testEveryIndexRunsExactlyOnce() {
        for count in [0, 1, 2, 7, 100, 1001] {
            for threads in [1, 2, 3, 8] {
                for dynamic in [false, true] {
                    let visits = UnsafeMutablePointer<Int>.allocate(capacity: max(count, 1))
                    defer { visits.deallocate() }
                    visits.initialize(repeating: 0, count: max(count, 1))
                    // Each index writes only its own slot, so no two threads share memory.
                    let body: (Int) -> Void = { i in visits[i] += 1 }
                    if dynamic {
                        Parallel.forEachDynamic(count, threads: threads, body)
                    } else {
                        Parallel.forEach(count, threads: threads, body)
                    }
                    XCTAssertEqual(Array(UnsafeBufferPointer(start: visits, count: count)),
                                   [Int](repeating: 1, count: count), "count \(count), threads \(threads), dynamic \(dynamic)")
                }
            }
        }
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
