import Foundation

/// A communication thread that runs blocking collectives in the order they were enqueued,
/// so the compute thread can go on (e.g. with the backward of the layers below) while a
/// bucket of gradients is being reduced. Open MPI makes little progress on non-blocking
/// collectives outside MPI calls, so a thread issuing blocking ones is what overlaps.
/// Every rank must enqueue the same collectives in the same order.
public final class CollectiveQueue: @unchecked Sendable {
    /// What the thread and the owner share (the thread holds it, not the queue, so dropping
    /// the queue stops the thread).
    final class State: @unchecked Sendable {
        let condition = NSCondition()
        var work: [() throws -> Void] = []
        var running = false
        var failure: Error?
        var stopped = false
        var waited = 0.0
        var busy = 0.0
        /// Bodies enqueued and finished so far (tickets are 1, 2, …).
        var enqueued = 0
        var finished = 0

        func loop() {
            condition.lock()
            while true {
                while work.isEmpty && !stopped { condition.wait() }
                if work.isEmpty { break }
                let body = work.removeFirst()
                running = true
                let skip = failure != nil  // after a failure, drop the rest: the job is ending
                condition.unlock()
                var error: Error?
                let start = DispatchTime.now().uptimeNanoseconds
                if !skip {
                    do { try body() } catch let e { error = e }
                }
                let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                condition.lock()
                busy += seconds
                if let error, failure == nil { failure = error }
                running = false
                finished += 1
                condition.broadcast()
            }
            condition.unlock()
        }
    }

    private let state = State()

    public init() {
        let state = self.state
        let thread = Thread { state.loop() }
        thread.name = "flash-collectives"
        thread.start()
    }

    deinit {
        state.condition.lock()
        state.stopped = true
        state.condition.broadcast()
        state.condition.unlock()
    }

    /// Queues `body` to run after everything queued before it; returns its ticket for `wait(for:)`.
    @discardableResult
    public func enqueue(_ body: @escaping () throws -> Void) -> Int {
        state.condition.lock()
        state.work.append(body)
        state.enqueued += 1
        let ticket = state.enqueued
        state.condition.broadcast()
        state.condition.unlock()
        return ticket
    }

    /// Blocks until the body with `ticket` (and so everything queued before it) has run, while
    /// later bodies may still be running; rethrows the first failure since the last wait.
    public func wait(for ticket: Int) throws {
        let start = DispatchTime.now().uptimeNanoseconds
        state.condition.lock()
        while state.finished < ticket && state.failure == nil { state.condition.wait() }
        let failure = state.failure
        state.failure = nil
        state.waited += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        state.condition.unlock()
        if let failure { throw failure }
    }

    /// Blocks until the queue is empty and idle; rethrows the first failure since the last wait.
    public func wait() throws {
        let start = DispatchTime.now().uptimeNanoseconds
        state.condition.lock()
        while !state.work.isEmpty || state.running { state.condition.wait() }
        let failure = state.failure
        state.failure = nil
        state.waited += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        state.condition.unlock()
        if let failure { throw failure }
    }

    /// The seconds spent blocked in `wait()` since the last call; resets the count.
    public func takeWaitTime() -> Double {
        state.condition.lock()
        defer { state.waited = 0; state.condition.unlock() }
        return state.waited
    }

    /// The seconds the communication thread spent running collectives since the last call;
    /// resets the count. With `takeWaitTime`, the overlap: busy − waited was hidden behind compute.
    public func takeBusyTime() -> Double {
        state.condition.lock()
        defer { state.busy = 0; state.condition.unlock() }
        return state.busy
    }
}
