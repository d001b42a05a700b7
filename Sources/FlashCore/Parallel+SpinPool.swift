import Foundation
import Synchronization

/// A small pool of persistent worker threads for many short parallel regions in a row (one
/// decode token runs ~150 matrix-vector products of well under a millisecond each).
///
/// `DispatchQueue.concurrentPerform` puts its workers to sleep between regions, and waking one
/// (a futex) costs tens of microseconds: at 2 threads that ate most of the gain. These workers
/// instead poll for the next region for a short while (yielding the core on every poll, so a
/// Dispatch region or another process in between still gets it), and sleep only after
/// `idlePolls` empty polls.
@available(macOS 15.0, *)
public final class SpinPool: @unchecked Sendable {
    /// Empty polls (each a `sched_yield`) before an idle worker sleeps: roughly a millisecond.
    static let idlePolls = 2_000

    private let workers: Int
    /// Bumped once per region; a worker that sees a new value tries to join that region.
    private let generation = Atomic<Int>(0)
    private var region = 0
    private let nextItem = Atomic<Int>(0)
    /// Places left in the current region: a worker joins by taking one (a decrement that finds
    /// it positive). When the caller has run out of items it revokes the places not taken, so
    /// it never waits for a worker that has not started (on a loaded machine, one that is not
    /// even scheduled): the items that worker would have run, the caller has already run.
    private let places = Atomic<Int>(0)
    /// Places taken and not yet finished, plus those not yet taken or revoked.
    private let pending = Atomic<Int>(0)
    private let sleepers = Atomic<Int>(0)
    private let wake = NSCondition()
    /// Serialises callers: a region started while another runs falls back to Dispatch.
    private let busy = NSLock()
    // Written by the caller before `generation` is bumped (release), read by workers after
    // they observe it (acquire).
    private var body: ((Int) -> Void)?
    private var count = 0

    /// A pool with `workers` helper threads (the calling thread is one more participant).
    init(workers: Int) {
        self.workers = workers
        for index in 0..<workers {
            // The worker keeps its pool alive: a pool replaced by a larger one is still polled
            // by its old workers until they fall asleep (for good), so it must never be freed.
            let thread = Thread { self.run(index: index) }
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    nonisolated(unsafe) private static var shared: SpinPool?
    private static let sharedLock = NSLock()

    /// The process-wide pool, grown to at least `workers` helper threads. Threads are never
    /// stopped: a pool that grows leaves its old (sleeping) workers behind, which only happens
    /// when a caller asks for more threads than before.
    static func pool(workers: Int) -> SpinPool {
        sharedLock.lock(); defer { sharedLock.unlock() }
        if let pool = shared, pool.workers >= workers { return pool }
        let pool = SpinPool(workers: workers)
        shared = pool
        return pool
    }

    /// Runs `body(i)` for every `i` in `0..<count` on the caller plus up to `participants − 1`
    /// pool workers, taking items from a shared counter. Returns false (running nothing) when
    /// the pool is busy with another caller's region (a nested call from inside a region, or
    /// another thread's).
    func forEachDynamic(_ count: Int, participants: Int, _ body: (Int) -> Void) -> Bool {
        guard busy.try() else { return false }
        defer { busy.unlock() }
        withoutActuallyEscaping(body) { body in
            self.body = body
            self.count = count
            let activeWorkers = min(participants - 1, workers)
            region += 1
            nextItem.store(0, ordering: .relaxed)
            pending.store(activeWorkers, ordering: .relaxed)
            // Releasing: a worker that takes a place (acquiring) sees `body` and `count`.
            places.store(activeWorkers, ordering: .releasing)
            generation.store(region, ordering: .sequentiallyConsistent)
            if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
                wake.lock(); wake.broadcast(); wake.unlock()
            }
            drain(body)
            let untaken = places.exchange(0, ordering: .acquiringAndReleasing)
            if untaken > 0 { pending.subtract(untaken, ordering: .relaxed) }
            while pending.load(ordering: .acquiring) > 0 { sched_yield() }
            self.body = nil
        }
        return true
    }

    /// A worker's share of the current region. A function of its own so that the worker's
    /// reference to `body` is released before it reports done (the caller's
    /// `withoutActuallyEscaping` checks that none is left).
    @inline(never)
    private func runRegion() {
        if let body { drain(body) }
    }

    private func drain(_ body: (Int) -> Void) {
        while true {
            let i = nextItem.add(1, ordering: .relaxed).oldValue
            if i >= count { return }
            body(i)
        }
    }

    private func run(index: Int) {
        var seen = 0
        while true {
            var polls = 0
            while generation.load(ordering: .acquiring) == seen {
                polls += 1
                if polls < SpinPool.idlePolls {
                    sched_yield()
                    continue
                }
                wake.lock()
                sleepers.add(1, ordering: .sequentiallyConsistent)
                while generation.load(ordering: .sequentiallyConsistent) == seen { wake.wait() }
                sleepers.subtract(1, ordering: .sequentiallyConsistent)
                wake.unlock()
            }
            seen = generation.load(ordering: .acquiring)
            // A place taken late may belong to a newer region than `seen`: the worker then
            // runs that region, which is as good.
            guard places.subtract(1, ordering: .acquiringAndReleasing).oldValue > 0 else { continue }
            runRegion()
            pending.subtract(1, ordering: .releasing)
        }
    }
}

extension Parallel {
    /// `forEachDynamic` (which now runs on the polling pool too); kept for the decode paths
    /// that name it.
    @inlinable
    public static func forEachDynamicPolling(_ count: Int, threads: Int? = nil, _ body: (Int) -> Void) {
        forEachDynamic(count, threads: threads, body)
    }
}
