import Dispatch
import Foundation

/// Parallel loops over a pool of persistent workers (`SpinPool`), or Dispatch's thread pool.
///
/// Every kernel in the project splits its work into items whose results do not depend on which
/// thread runs them or in what order, so results are bit-identical for any thread count.
public enum Parallel {
    /// Threads used when a call does not say. Defaults to `FLASH_THREADS` if set, else all cores.
    nonisolated(unsafe) public static var defaultThreads: Int = {
        if let text = ProcessInfo.processInfo.environment["FLASH_THREADS"], let n = Int(text), n > 0 { return n }
        return ProcessInfo.processInfo.activeProcessorCount
    }()

    /// Runs `body(i)` for every `i` in `0..<count`, on up to `threads` threads (default
    /// `defaultThreads`). Items are dealt out in contiguous chunks, one per thread.
    @inlinable
    public static func forEach(_ count: Int, threads: Int? = nil, _ body: (Int) -> Void) {
        let workers = min(max(1, threads ?? defaultThreads), count)
        if workers <= 1 {
            for i in 0..<count { body(i) }
            return
        }
        region(workers, participants: workers) { worker in
            let start = count * worker / workers
            let end = count * (worker + 1) / workers
            for i in start..<end { body(i) }
        }
    }

    /// Runs `body(i)` for every `i` in `0..<count` with dynamic scheduling: threads take the
    /// next item from a shared counter, which balances items of uneven cost (causal tiles).
    @inlinable
    public static func forEachDynamic(_ count: Int, threads: Int? = nil, _ body: (Int) -> Void) {
        let workers = min(max(1, threads ?? defaultThreads), count)
        if workers <= 1 {
            for i in 0..<count { body(i) }
            return
        }
        region(count, participants: workers, body)
    }

    /// One fork-join region: `body(i)` for `i` in `0..<count`, items taken from a shared counter
    /// by the caller and up to `participants − 1` helpers. The helpers are the persistent
    /// polling workers of `SpinPool`: a training step at width 128 runs a few hundred regions
    /// of tens of microseconds each, and Dispatch's sleeping workers cost a futex wake-up per
    /// region. When the pool is taken (a region started inside another, or by another thread
    /// at the same time) the region runs on Dispatch instead.
    @usableFromInline
    static func region(_ count: Int, participants: Int, _ body: (Int) -> Void) {
        if #available(macOS 15.0, *) {
            if SpinPool.pool(workers: participants - 1).forEachDynamic(count, participants: participants, body) { return }
        }
        let next = AtomicCounter()
        withoutActuallyEscaping(body) { body in
            DispatchQueue.concurrentPerform(iterations: participants) { _ in
                while true {
                    let i = next.increment()
                    if i >= count { break }
                    body(i)
                }
            }
        }
    }
}

/// A counter shared between threads (a lock is plenty for handing out coarse work items).
public final class AtomicCounter: @unchecked Sendable {
    private var value = 0
    private let lock = NSLock()
    /// A counter at zero.
    public init() {}
    /// Returns the current value and adds one.
    public func increment() -> Int {
        lock.lock(); defer { lock.unlock() }
        let v = value
        value += 1
        return v
    }
}
