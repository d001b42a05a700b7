import Foundation
import FlashCore
import ModelFormats
import Transformer

/// An `InferenceEngine` over the single-sequence decoder: requests wait in a bounded FIFO queue
/// and run one at a time, each sample with a fresh KV cache, on one worker thread (the model's
/// matrix products spread over its own worker pool). It serves real model output through the
/// same interface the batching engine implements; it has no block pool, prefix cache or
/// speculation, so those statistics are nil and `cachedPromptTokens` is always 0.
public final class SequentialEngine: InferenceEngine, @unchecked Sendable {
    public let model: ServedModel
    public let tokenizer: any ServingTokenizer
    /// Requests that may wait behind the running one before `submit` answers `.queueFull`.
    public let maxWaiting: Int
    private let decoder: DecoderModel

    private let lock = NSLock()
    private let wake = DispatchSemaphore(value: 0)
    private var queue: [Job] = []
    private var running: Job?
    private var accepting = true
    private var workerDone = false
    private let finished = DispatchSemaphore(value: 0)

    /// Serves a LLaMA-family GGUF model (the path `flash generate --gguf` runs).
    public convenience init(gguf path: String, modelID: String? = nil, threads: Int? = nil, maxWaiting: Int = 64) throws {
        let file = try GGUFFile(path: path)
        let llama = try LlamaModel(file: file, threads: threads)
        let tokenizer = try GGUFTokenizer(file: file)
        self.init(decoder: GGUFDecoder(model: llama), tokenizer: GGUFServingTokenizer(tokenizer: tokenizer),
                  modelID: modelID ?? URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent,
                  maxWaiting: maxWaiting)
    }

    /// Serves an already loaded GGUF model (several engines may share one model, one at a time).
    public convenience init(model: LlamaModel, tokenizer: GGUFTokenizer, modelID: String, maxWaiting: Int = 64) {
        self.init(decoder: GGUFDecoder(model: model), tokenizer: GGUFServingTokenizer(tokenizer: tokenizer),
                  modelID: modelID, maxWaiting: maxWaiting)
    }

    /// Serves a checkpoint written by `flash train` (the path `flash generate --checkpoint` runs).
    public convenience init(checkpoint directory: String, modelID: String? = nil, threads: Int? = nil, maxWaiting: Int = 64) throws {
        let transformer = try Checkpoint.loadModel(from: directory)
        transformer.attentionImplementation = .flash
        transformer.threads = threads
        let tokenizer = try JSONDecoder().decode(AnyTokenizer.self, from: Checkpoint.loadTokenizerJSON(from: directory))
        self.init(decoder: CheckpointDecoder(model: transformer), tokenizer: CheckpointServingTokenizer(tokenizer: tokenizer),
                  modelID: modelID ?? URL(fileURLWithPath: directory).lastPathComponent, maxWaiting: maxWaiting)
    }

    init(decoder: DecoderModel, tokenizer: any ServingTokenizer, modelID: String, maxWaiting: Int) {
        self.decoder = decoder
        self.tokenizer = tokenizer
        self.maxWaiting = max(0, maxWaiting)
        self.model = ServedModel(id: modelID, contextLength: decoder.contextLength, vocabularySize: decoder.vocabularySize)
        let thread = Thread { [self] in workerLoop() }
        thread.name = "flash-serve-engine"
        thread.stackSize = 8 << 20
        thread.start()
    }

    public func submit(_ request: EngineRequest) throws -> AsyncThrowingStream<EngineEvent, Error> {
        let context = model.contextLength
        guard !request.promptTokens.isEmpty else {
            throw EngineError.invalid(argument: "prompt", expected: "at least one token", got: "none")
        }
        guard request.promptTokens.count < context else {
            throw EngineError.tooLarge(what: "the prompt's token count", value: request.promptTokens.count,
                                       limit: context - 1, limitName: "context length less one generated token")
        }
        guard request.maxTokens >= 0, request.samples >= 1 else {
            throw EngineError.invalid(argument: "maxTokens/samples", expected: "maxTokens ≥ 0 and samples ≥ 1",
                                      got: "\(request.maxTokens)/\(request.samples)")
        }
        if let bad = request.promptTokens.first(where: { $0 < 0 || $0 >= model.vocabularySize }) {
            throw EngineError.invalid(argument: "prompt", expected: "token ids in 0..<\(model.vocabularySize)", got: "\(bad)")
        }
        let (stream, continuation) = AsyncThrowingStream<EngineEvent, Error>.makeStream()
        let job = Job(request: request, continuation: continuation)
        try lock.withLock {
            guard accepting else { throw EngineError.shuttingDown }
            // In flight = the running request plus the waiting ones.
            let inFlight = queue.count + (running == nil ? 0 : 1)
            guard inFlight < 1 + maxWaiting else { throw EngineError.queueFull(limit: maxWaiting) }
            queue.append(job)
        }
        continuation.onTermination = { [weak self, job] termination in
            guard case .cancelled = termination else { return }
            job.cancel()
            self?.removeWaiting(job)
        }
        wake.signal()
        return stream
    }

    public func statistics() -> EngineStatistics {
        lock.withLock { EngineStatistics(runningRequests: running == nil ? 0 : 1, waitingRequests: queue.count) }
    }

    public func shutdown(gracePeriod: Duration) async {
        let pending: [Job] = lock.withLock {
            accepting = false
            let waiting = queue
            queue.removeAll()
            return waiting
        }
        for job in pending { job.finish(cancelled: true) }
        let deadline = ContinuousClock.now + gracePeriod
        while ContinuousClock.now < deadline, lock.withLock({ running != nil }) {
            try? await Task.sleep(for: .milliseconds(20))
        }
        lock.withLock { running }?.cancel()
        lock.withLock { workerDone = true }
        wake.signal()
    }

    private func removeWaiting(_ job: Job) {
        let removed = lock.withLock { () -> Bool in
            guard let index = queue.firstIndex(where: { $0 === job }) else { return false }
            queue.remove(at: index)
            return true
        }
        if removed { job.finish(cancelled: true) }
    }

    private func workerLoop() {
        while true {
            wake.wait()
            let next: Job? = lock.withLock {
                if workerDone { return nil }
                guard !queue.isEmpty else { return nil }
                running = queue.removeFirst()
                return running
            }
            if lock.withLock({ workerDone }) { return }
            guard let job = next else { continue }
            run(job)
            lock.withLock { running = nil }
        }
    }

    /// Runs every sample of `job` to its end, checking for cancellation before each model pass.
    private func run(_ job: Job) {
        let request = job.request
        let prompt = request.promptTokens
        let maxTokens = min(request.maxTokens, model.contextLength - prompt.count)
        do {
            for sample in 0..<request.samples {
                if job.isCancelled { break }
                let s = request.sampling
                var sampler = try Sampler(temperature: s.temperature, topK: s.topK, topP: s.topP, seed: s.seed &+ UInt64(sample))
                var generated = 0
                var reason = EngineFinishReason.length
                if maxTokens > 0 {
                    let sequence = try decoder.startSequence(capacity: prompt.count + maxTokens)
                    var logits = try sequence.forward(prompt)
                    job.yield(.prefilled(sample: sample, promptTokens: prompt.count, cachedPromptTokens: 0))
                    while generated < maxTokens {
                        if job.isCancelled { reason = .cancelled; break }
                        let token = sampler.sample(logits)
                        generated += 1
                        if request.stopTokens.contains(token) { reason = .stop; break }
                        let (chosen, top) = request.logprobs.map { Logprobs.of(token, topCount: $0, in: logits) } ?? (nil, [])
                        job.yield(.token(sample: sample, token: token, logprob: chosen, top: top))
                        if generated == maxTokens { break }
                        logits = try sequence.forward([token])
                    }
                } else {
                    job.yield(.prefilled(sample: sample, promptTokens: prompt.count, cachedPromptTokens: 0))
                }
                job.yield(.finished(sample: sample, reason: reason, completionTokens: generated))
                if reason == .cancelled { break }
            }
            job.finish(cancelled: false)
        } catch {
            job.fail(error)
        }
    }
}

/// One accepted request: its event stream and a cancellation flag the worker polls.
private final class Job: @unchecked Sendable {
    let request: EngineRequest
    private let continuation: AsyncThrowingStream<EngineEvent, Error>.Continuation
    private let lock = NSLock()
    private var cancelled = false

    init(request: EngineRequest, continuation: AsyncThrowingStream<EngineEvent, Error>.Continuation) {
        self.request = request
        self.continuation = continuation
    }

    var isCancelled: Bool { lock.withLock { cancelled } }
    func cancel() { lock.withLock { cancelled = true } }
    func yield(_ event: EngineEvent) { continuation.yield(event) }
    func fail(_ error: Error) { continuation.finish(throwing: error) }

    /// Ends the stream; a request cancelled before it ran reports each sample as cancelled.
    func finish(cancelled wasCancelled: Bool) {
        if wasCancelled {
            for sample in 0..<request.samples {
                continuation.yield(.finished(sample: sample, reason: .cancelled, completionTokens: 0))
            }
        }
        continuation.finish()
    }
}

/// Log-probabilities of a row of logits: log-softmax in Double (max subtracted first).
enum Logprobs {
    static func of(_ token: Int, topCount: Int, in logits: [Float]) -> (TokenLogprob, [TokenLogprob]) {
        var maximum = -Float.infinity
        for l in logits where l > maximum { maximum = l }
        var sum = 0.0
        for l in logits where l > -.infinity { sum += Foundation.exp(Double(l - maximum)) }
        let logNormaliser = Double(maximum) + Foundation.log(sum)
        func logprob(_ index: Int) -> Float { Float(Double(logits[index]) - logNormaliser) }
        var top: [Int] = []
        if topCount > 0 {
            // One pass keeping the k largest, largest first (ties: lower index first).
            for index in logits.indices {
                if top.count == topCount && !(logits[index] > logits[top[topCount - 1]]) { continue }
                var position = top.count
                while position > 0 && logits[index] > logits[top[position - 1]] { position -= 1 }
                top.insert(index, at: position)
                if top.count > topCount { top.removeLast() }
            }
        }
        return (TokenLogprob(token: token, logprob: logprob(token)), top.map { TokenLogprob(token: $0, logprob: logprob($0)) })
    }
}
