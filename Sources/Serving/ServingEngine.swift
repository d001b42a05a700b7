import Foundation
import Transformer

/// The serving engine: a `Scheduler` stepped by its own thread, with requests submitted from
/// any thread or task and answered as streams.
///
/// ```swift
/// let engine = try ServingEngine(model: model, configuration: ServingConfiguration(blockCount: 512))
/// for try await event in try engine.submit(GenerationRequest(promptTokens: ids, maxTokens: 64)) { … }
/// ```
///
/// Dropping a stream (its consumer cancelled, e.g. the HTTP client disconnected) cancels the
/// request: its blocks are freed before the next step. `submit` throws at once, never later,
/// for a request that can never be served (`ServingError.promptTooLong`, `.promptExceedsCache`,
/// `.invalidRequest`) or while the waiting queue is full (`.queueFull`).
public final class ServingEngine: Sendable {
    private let core: EngineLoop

    /// Starts the step loop. Throws `InvalidArgument` for a bad configuration, a cache that does
    /// not fit in memory, or `.draft` speculation without a draft model of the same vocabulary.
    public init(model: any PagedLanguageModel, draft: (any PagedLanguageModel)? = nil, configuration: ServingConfiguration) throws {
        core = try EngineLoop(model: model, draft: draft, configuration: configuration)
    }

    deinit { core.shutdown() }

    public var configuration: ServingConfiguration { core.configuration }
    public var vocabularySize: Int { core.vocabularySize }
    public var contextLength: Int { core.contextLength }

    /// Queues `request` and returns its events (see `GenerationEvent`).
    public func submit(_ request: GenerationRequest) throws -> AsyncThrowingStream<GenerationEvent, Error> {
        try core.submit(request)
    }

    /// Counters after the latest step (a finished request's stream ends after they count it).
    public var statistics: EngineStatistics { core.statistics }

    /// Graceful shutdown: from now on `submit` throws `.shutDown`; requests already taken may
    /// run for up to `gracePeriod`, then every unfinished sample ends with `.cancelled` (its
    /// stream ends normally) and the step loop stops. Returns once the loop has ended (after the
    /// step in progress, if any), so every stream has ended by then.
    public func shutdown(gracePeriod: Duration) async {
        core.stopAccepting()
        let deadline = ContinuousClock.now + gracePeriod
        while ContinuousClock.now < deadline, core.hasRequests {
            try? await Task.sleep(for: .milliseconds(10))
        }
        core.shutdown()
        while !core.hasEnded { try? await Task.sleep(for: .milliseconds(5)) }
    }

    /// Stops at once, cancelling whatever runs (as `shutdown(gracePeriod: .zero)`).
    func shutdown() { core.shutdown() }
}

/// The engine's state and its thread; the thread holds it until the loop ends, so the public
/// engine may go away first (its deinit stops the loop). Sendable because callers' threads only
/// touch the state guarded by `condition`; the scheduler (model, KV cache, samplers) and
/// `completed` belong to the loop thread alone.
final class EngineLoop: @unchecked Sendable {
    let configuration: ServingConfiguration
    let vocabularySize: Int
    let contextLength: Int
    /// Loop thread only (`init` aside).
    private let scheduler: Scheduler
    private let condition = NSCondition()
    // Guarded by `condition`:
    private var submissions: [(id: Int, request: GenerationRequest, continuation: AsyncThrowingStream<GenerationEvent, Error>.Continuation)] = []
    private var cancellations: Set<Int> = []
    private var snapshot: EngineStatistics
    private var nextID = 0
    private var stopping = false
    private var accepting = true
    private var ended = false
    /// Loop thread only: requests finished during the current step; their streams end after the
    /// statistics update.
    private var completed: [AsyncThrowingStream<GenerationEvent, Error>.Continuation] = []

    init(model: any PagedLanguageModel, draft: (any PagedLanguageModel)?, configuration: ServingConfiguration) throws {
        self.configuration = configuration
        scheduler = try Scheduler(model: model, draft: draft, configuration: configuration)
        vocabularySize = model.vocabularySize
        contextLength = model.contextLength
        snapshot = scheduler.statistics
        let thread = Thread { self.loop() }
        thread.name = "flash.serving"
        thread.stackSize = 8 << 20
        thread.start()
    }

    func submit(_ request: GenerationRequest) throws -> AsyncThrowingStream<GenerationEvent, Error> {
        try Scheduler.validate(request, configuration: configuration, vocabularySize: vocabularySize, contextLength: contextLength)
        condition.lock()
        defer { condition.unlock() }
        guard !stopping && accepting else { throw ServingError.shutDown }
        // `snapshot.waitingRequests` counts the submissions not yet taken by the loop too.
        guard snapshot.waitingRequests < configuration.maxWaiting else {
            throw ServingError.queueFull(limit: configuration.maxWaiting)
        }
        let id = nextID
        nextID += 1
        let (stream, continuation) = AsyncThrowingStream<GenerationEvent, Error>.makeStream()
        continuation.onTermination = { [weak self] termination in
            if case .cancelled = termination { self?.cancel(id) }
        }
        submissions.append((id, request, continuation))
        snapshot.waitingRequests += 1
        condition.signal()
        return stream
    }

    var statistics: EngineStatistics {
        condition.lock()
        defer { condition.unlock() }
        return snapshot
    }

    /// Whether a request is queued, waiting or running.
    var hasRequests: Bool {
        condition.lock()
        defer { condition.unlock() }
        return !submissions.isEmpty || snapshot.waitingRequests + snapshot.runningRequests > 0
    }

    /// Whether the loop has stopped (after `shutdown`).
    var hasEnded: Bool {
        condition.lock()
        defer { condition.unlock() }
        return ended
    }

    func stopAccepting() {
        condition.lock()
        accepting = false
        condition.unlock()
    }

    func shutdown() {
        condition.lock()
        stopping = true
        condition.signal()
        condition.unlock()
    }

    private func cancel(_ id: Int) {
        condition.lock()
        cancellations.insert(id)
        condition.signal()
        condition.unlock()
    }

    private func loop() {
        var open: [Int: AsyncThrowingStream<GenerationEvent, Error>.Continuation] = [:]
        while true {
            condition.lock()
            while !stopping && submissions.isEmpty && cancellations.isEmpty && !scheduler.hasWork { condition.wait() }
            let newRequests = submissions, cancelled = cancellations, stop = stopping
            submissions = []
            cancellations = []
            condition.unlock()
            if stop {
                // Requests in flight end as cancelled (a `.finished` per unfinished sample).
                for id in open.keys { scheduler.cancel(id: id) }
                completed = []
                for (_, c) in open { c.finish() }
                for s in newRequests { s.continuation.finish(throwing: ServingError.shutDown) }
                condition.lock()
                ended = true
                condition.unlock()
                return
            }
            for s in newRequests {
                let continuation = s.continuation
                open[s.id] = continuation
                do {
                    try scheduler.add(id: s.id, request: s.request, deliver: { continuation.yield($0) },
                                      complete: { [unowned self] in self.completed.append(continuation) })
                } catch {
                    continuation.finish(throwing: error)
                    open[s.id] = nil
                }
            }
            for id in cancelled { scheduler.cancel(id: id) }
            do {
                try scheduler.step()
            } catch {
                // A model failure fails every request in flight; the engine keeps running.
                for (id, c) in open {
                    scheduler.cancel(id: id)
                    c.finish(throwing: error)
                }
            }
            open = open.filter { scheduler.requests[$0.key] != nil }
            condition.lock()
            snapshot = scheduler.statistics
            snapshot.waitingRequests = scheduler.waitingRequests + submissions.count
            condition.unlock()
            for c in completed { c.finish() }
            completed = []
        }
    }
}
