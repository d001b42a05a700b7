import Foundation
import FlashCore
import Transformer

/// Limits of the engine.
public struct ServingConfiguration: Sendable {
    /// Token positions per KV block.
    public var blockSize = 16
    /// Blocks in the pool (the KV cache holds blockCount × blockSize positions).
    public var blockCount = 1024
    /// Sequences stepped together at most (a request with n samples counts n).
    public var maxRunning = 16
    /// Rows a step computes at most: every running decode (one each), then prompt chunks
    /// (chunked prefill) up to this budget.
    public var maxBatchTokens = 256
    /// Requests waiting for a slot at most; beyond, `submit` throws `queueFull`.
    public var maxWaiting = 64
    /// Samples per request at most.
    public var maxSamples = 16
    /// Reuse cached prompt prefixes.
    public var prefixCaching = true
    /// Threads for the model's kernels (nil: all cores).
    public var threads: Int?
    /// Speculative decoding: how decoding sequences guess their next tokens.
    public var speculation: SpeculationMethod = .none
    /// Tokens proposed per sequence and step (k).
    public var speculativeTokens = 4
    /// The KV cache's element type, `.float32` or `.float16` (nil: the model's default,
    /// `PagedLanguageModel.defaultKVCacheType`).
    public var kvCacheType: ElementType?

    public init(blockSize: Int = 16, blockCount: Int = 1024, maxRunning: Int = 16, maxBatchTokens: Int = 256,
                maxWaiting: Int = 64, maxSamples: Int = 16, prefixCaching: Bool = true, threads: Int? = nil,
                speculation: SpeculationMethod = .none, speculativeTokens: Int = 4, kvCacheType: ElementType? = nil) {
        self.kvCacheType = kvCacheType
        self.speculation = speculation
        self.speculativeTokens = speculativeTokens
        self.blockSize = blockSize
        self.blockCount = blockCount
        self.maxRunning = maxRunning
        self.maxBatchTokens = maxBatchTokens
        self.maxWaiting = maxWaiting
        self.maxSamples = maxSamples
        self.prefixCaching = prefixCaching
        self.threads = threads
    }

    /// A pool of `tokens` positions (rounded up to whole blocks).
    public static func blocks(forTokens tokens: Int, blockSize: Int = 16) -> Int { (tokens + blockSize - 1) / blockSize }
}

/// Continuous batching (Orca's iteration-level scheduling) over a paged KV cache. Each `step`
/// runs one forward pass over every running sequence: decoding sequences contribute their one
/// new token, sequences still in their prompt a chunk of it (chunked prefill) within the
/// step's token budget, and every sequence whose computed tokens reach its end samples one
/// token. Finished sequences leave and waiting ones join between steps. When the pool runs
/// out of blocks the newest sequence is preempted: its blocks are freed and it waits to be
/// recomputed (its full blocks usually survive in the prefix cache, so that is cheap).
///
/// Not thread-safe: one thread (the engine's loop, or a caller) drives it.
public final class Scheduler {
    final class Request {
        let id: Int
        let request: GenerationRequest
        let deliver: (GenerationEvent) -> Void
        let complete: () -> Void
        var usage: Usage
        var samples: [SequenceState] = []
        var forked = false
        var admitted = false
        var open: Int  // samples not finished

        init(id: Int, request: GenerationRequest, deliver: @escaping (GenerationEvent) -> Void, complete: @escaping () -> Void) {
            self.id = id
            self.request = request
            self.deliver = deliver
            self.complete = complete
            usage = Usage(promptTokens: request.promptTokens.count, completionTokens: 0, cachedPromptTokens: 0)
            open = request.n
        }
    }

    final class SequenceState {
        let id: Int
        let request: Request
        let index: Int
        /// Prompt and generated tokens; the last may not be computed yet.
        var tokens: [Int]
        /// Leading tokens whose keys and values are in the cache.
        var computed = 0
        var generated = 0
        var finished = false
        /// Leading tokens whose keys and values are in the draft model's cache.
        var draftComputed = 0
        var sampler: Sampler
        /// Admission order: the largest is the newest, preempted first.
        var order: Int

        init(id: Int, request: Request, index: Int, tokens: [Int], sampler: Sampler, order: Int) {
            self.id = id
            self.request = request
            self.index = index
            self.tokens = tokens
            self.sampler = sampler
            self.order = order
        }
    }

    public let model: any PagedLanguageModel
    public let configuration: ServingConfiguration
    public let cache: PagedKVCache
    public let blocks: BlockManager
    /// The draft model of `.draft` speculation, with its own cache and blocks (no prefix caching).
    let draft: (any PagedLanguageModel)?
    let draftCache: PagedKVCache?
    let draftBlocks: BlockManager?
    var waiting: [SequenceState] = []
    var running: [SequenceState] = []
    var requests: [Int: Request] = [:]
    private var nextSequence = 0
    private var nextOrder = 0
    public internal(set) var statistics = EngineStatistics()

    /// `draft` (same vocabulary) is needed for `.draft` speculation and used only for it.
    public init(model: any PagedLanguageModel, draft: (any PagedLanguageModel)? = nil, configuration: ServingConfiguration) throws {
        for (name, value) in [("blockSize", configuration.blockSize), ("blockCount", configuration.blockCount),
                              ("maxRunning", configuration.maxRunning), ("maxBatchTokens", configuration.maxBatchTokens),
                              ("maxSamples", configuration.maxSamples)] {
            try InvalidArgument.require(value >= 1, name, expected: "≥ 1", got: "\(value)")
        }
        try InvalidArgument.require(configuration.maxWaiting >= 0, "maxWaiting", expected: "≥ 0", got: "\(configuration.maxWaiting)")
        try InvalidArgument.require(configuration.speculativeTokens >= 0 && configuration.speculativeTokens <= 16, "speculativeTokens",
                                    expected: "in 0...16", got: "\(configuration.speculativeTokens)")
        if configuration.speculation == .draft {
            guard let draft else { throw InvalidArgument("draft", expected: "a draft model for .draft speculation", got: "none") }
            try InvalidArgument.require(draft.vocabularySize == model.vocabularySize, "draft", expected: "the target's vocabulary (\(model.vocabularySize) tokens)",
                                        got: "\(draft.vocabularySize) tokens")
            self.draft = draft
            draftCache = try draft.makePagedCache(blockCount: configuration.blockCount, blockSize: configuration.blockSize,
                                                  elementType: configuration.kvCacheType ?? draft.defaultKVCacheType)
            draftBlocks = BlockManager(blockCount: configuration.blockCount, blockSize: configuration.blockSize, prefixCaching: false)
        } else {
            self.draft = nil
            draftCache = nil
            draftBlocks = nil
        }
        self.model = model
        self.configuration = configuration
        cache = try model.makePagedCache(blockCount: configuration.blockCount, blockSize: configuration.blockSize,
                                         elementType: configuration.kvCacheType ?? model.defaultKVCacheType)
        blocks = BlockManager(blockCount: configuration.blockCount, blockSize: configuration.blockSize,
                              prefixCaching: configuration.prefixCaching)
        statistics.blockCount = configuration.blockCount
        statistics.blockSize = configuration.blockSize
        refreshStatistics()
    }

    /// Throws the `ServingError` that makes `request` impossible to serve, if any.
    public static func validate(_ request: GenerationRequest, configuration: ServingConfiguration,
                                vocabularySize: Int, contextLength: Int) throws {
        let prompt = request.promptTokens
        guard !prompt.isEmpty else { throw ServingError.invalidRequest(field: "prompt", expected: "at least one token", got: "none") }
        if let bad = prompt.first(where: { $0 < 0 || $0 >= vocabularySize }) {
            throw ServingError.invalidRequest(field: "prompt", expected: "token ids in 0..<\(vocabularySize)", got: "\(bad)")
        }
        guard request.maxTokens >= 1 else {
            throw ServingError.invalidRequest(field: "max_tokens", expected: "≥ 1", got: "\(request.maxTokens)")
        }
        guard request.n >= 1 && request.n <= configuration.maxSamples else {
            throw ServingError.invalidRequest(field: "n", expected: "in 1...\(configuration.maxSamples)", got: "\(request.n)")
        }
        if let k = request.logprobs, k < 0 || k > 20 {
            throw ServingError.invalidRequest(field: "logprobs", expected: "in 0...20", got: "\(k)")
        }
        let s = request.sampling
        guard s.temperature.isFinite && s.temperature >= 0 else {
            throw ServingError.invalidRequest(field: "temperature", expected: "a finite value ≥ 0", got: "\(s.temperature)")
        }
        guard s.topP > 0 && s.topP <= 1 else { throw ServingError.invalidRequest(field: "top_p", expected: "in (0, 1]", got: "\(s.topP)") }
        if let k = s.topK, k < 1 { throw ServingError.invalidRequest(field: "top_k", expected: "≥ 1", got: "\(k)") }
        guard prompt.count < contextLength else { throw ServingError.promptTooLong(tokens: prompt.count, contextLength: contextLength - 1) }
        let cacheTokens = configuration.blockCount * configuration.blockSize
        guard prompt.count < cacheTokens else { throw ServingError.promptExceedsCache(tokens: prompt.count, cacheTokens: cacheTokens - 1) }
    }

    /// Queues request `id`; `deliver` receives its events, `complete` is called after the last.
    public func add(id: Int, request: GenerationRequest, deliver: @escaping (GenerationEvent) -> Void,
                    complete: @escaping () -> Void) throws {
        try Self.validate(request, configuration: configuration, vocabularySize: model.vocabularySize, contextLength: model.contextLength)
        let r = Request(id: id, request: request, deliver: deliver, complete: complete)
        let s = request.sampling
        let sampler = try Sampler(temperature: s.temperature, topK: s.topK, topP: s.topP, seed: s.seed)
        let sequence = SequenceState(id: nextSequence, request: r, index: 0, tokens: request.promptTokens, sampler: sampler, order: nextOrder)
        nextSequence += 1
        nextOrder += 1
        r.samples = [sequence]
        requests[id] = r
        waiting.append(sequence)
        statistics.promptTokens += request.promptTokens.count
        refreshStatistics()
    }

    /// Ends request `id`: its sequences leave and their blocks are freed now; each unfinished
    /// sample gets `finished(.cancelled)`.
    public func cancel(id: Int) {
        guard let r = requests[id] else { return }
        for s in r.samples where blocks.contains(s.id) || running.contains(where: { $0 === s }) || waiting.contains(where: { $0 === s }) {
            finish(s, .cancelled)
        }
        refreshStatistics()
    }

    /// Whether a step has anything to do.
    public var hasWork: Bool { !running.isEmpty || !waiting.isEmpty }

    /// Requests not yet admitted.
    public var waitingRequests: Int { Set(waiting.filter { !$0.request.admitted }.map { $0.request.id }).count }

    /// One forward pass over every running sequence (see the type's notes).
    public func step() throws {
        admit()
        var budget = configuration.maxBatchTokens
        // Per scheduled sequence: its own tokens to compute, then speculative guesses.
        var scheduled: [(sequence: SequenceState, count: Int, guesses: [Int])] = []
        var preempted = Set<ObjectIdentifier>()
        // Decodes first (one token each, plus guesses), then prompt chunks; oldest first within each.
        let ordered = running.sorted { $0.order < $1.order }
        let decodes = ordered.filter { $0.tokens.count - $0.computed == 1 }
        let prefills = ordered.filter { $0.tokens.count - $0.computed > 1 }
        let guesses = try proposals(for: decodes)
        for s in decodes + prefills {
            guard !preempted.contains(ObjectIdentifier(s)), budget > 0 else { continue }
            let count = min(s.tokens.count - s.computed, budget)
            let extra = count == s.tokens.count - s.computed ? Array((guesses[ObjectIdentifier(s)] ?? []).prefix(budget - count)) : []
            if try reserve(s, count: count + extra.count, scheduled: scheduled.map { ($0.sequence, $0.count) }, preempted: &preempted) {
                scheduled.append((s, count, extra))
                budget -= count + extra.count
            }
        }
        guard !scheduled.isEmpty else {
            refreshStatistics()
            return
        }
        let batch = PagedBatch(sequences: scheduled.map { s, count, extra in
            let end = s.computed + count == s.tokens.count
            return PagedBatch.Sequence(tokens: Array(s.tokens[s.computed..<(s.computed + count)]) + extra, start: s.computed,
                                       blockTable: blocks.blockTable(s.id).map(Int32.init), logitRows: end ? 1 + extra.count : 0)
        })
        let logits = try model.forward(batch, cache: cache)
        statistics.steps += 1
        statistics.computedTokens += batch.rows
        let v = model.vocabularySize
        var logitRow = 0
        for (s, count, extra) in scheduled {
            let chunk = Array(s.tokens[s.computed..<(s.computed + count)])
            try blocks.commit(s.id, tokens: chunk)
            s.computed += count
            guard s.computed == s.tokens.count else { continue }
            func row(_ i: Int) -> [Float] { Array(logits[((logitRow + i) * v)..<((logitRow + i + 1) * v)]) }
            defer { logitRow += 1 + extra.count }
            let r = s.request
            if s.index == 0 && !r.forked {
                r.forked = true
                try fork(s, row: row(0))
            }
            if extra.isEmpty {
                sample(s, logits: row(0))
                continue
            }
            // Verification: sample from each row in turn; a guess is kept while it equals the
            // token drawn (see `proposals(for:)` for why this is the exact rejection rule).
            statistics.speculativeProposed += extra.count
            for i in 0...extra.count {
                sample(s, logits: row(i))
                guard !s.finished, i < extra.count, s.tokens.last == extra[i] else { break }
                try blocks.commit(s.id, tokens: [extra[i]])
                s.computed += 1
                statistics.speculativeAccepted += 1
            }
            if !s.finished, let draftBlocks, s.draftComputed > s.computed {
                s.draftComputed = s.computed
                try draftBlocks.truncate(s.id, to: s.computed)
            }
        }
        refreshStatistics()
    }

    // MARK: internals

    /// Moves waiting sequences into the running set while there is room: a slot and the
    /// blocks for their whole computed prefix.
    private func admit() {
        while running.count < configuration.maxRunning, let s = waiting.first {
            guard blocks.blocksNeeded(prompt: s.tokens) <= blocks.freeBlockCount else { break }
            waiting.removeFirst()
            let cached = (try? blocks.startSequence(s.id, prompt: s.tokens)) ?? 0
            s.computed = cached
            if !s.request.admitted {
                s.request.admitted = true
                s.request.usage.cachedPromptTokens = cached
            }
            running.append(s)
        }
    }

    /// Makes room for `count` more positions of `s`, preempting the newest other sequence not
    /// scheduled in this step while blocks are short. Returns false if `s` itself had to go.
    private func reserve(_ s: SequenceState, count: Int, scheduled: [(sequence: SequenceState, count: Int)],
                         preempted: inout Set<ObjectIdentifier>) throws -> Bool {
        while true {
            if let copies = try blocks.appendSlots(s.id, count: count) {
                for c in copies { cache.copyBlock(from: c.source, to: c.destination) }
                return true
            }
            let candidates = running.filter { other in
                other !== s && !preempted.contains(ObjectIdentifier(other)) && !scheduled.contains { $0.sequence === other }
            }
            if let victim = candidates.max(by: { $0.order < $1.order }), victim.order > s.order {
                preempt(victim)
                preempted.insert(ObjectIdentifier(victim))
            } else if running.count == 1 {
                // Alone and still out of blocks: the sequence has outgrown the whole cache.
                finish(s, .length)
                return false
            } else {
                preempt(s)
                preempted.insert(ObjectIdentifier(s))
                return false
            }
        }
    }

    /// Frees `s`'s blocks and sends it back to wait (in order of age) to be recomputed.
    private func preempt(_ s: SequenceState) {
        blocks.free(s.id)
        draftBlocks?.free(s.id)
        s.computed = 0
        s.draftComputed = 0
        running.removeAll { $0 === s }
        let position = waiting.firstIndex { $0.order > s.order } ?? waiting.endIndex
        waiting.insert(s, at: position)
        statistics.preemptions += 1
    }

    /// Samples 1..<n of a request: they share sample 0's blocks and draw from the same logits.
    private func fork(_ parent: SequenceState, row: [Float]) throws {
        let r = parent.request
        guard r.request.n > 1 else { return }
        let p = r.request.sampling
        for i in 1..<r.request.n {
            let sampler = try Sampler(temperature: p.temperature, topK: p.topK, topP: p.topP, seed: p.seed &+ UInt64(i))
            let child = SequenceState(id: nextSequence, request: r, index: i, tokens: parent.tokens, sampler: sampler, order: nextOrder)
            nextSequence += 1
            nextOrder += 1
            try blocks.fork(parent.id, child: child.id)
            child.computed = parent.computed
            r.samples.append(child)
            running.append(child)
            sample(child, logits: row)
        }
    }

    /// Draws `s`'s next token from `logits` and delivers it (or finishes the sample).
    private func sample(_ s: SequenceState, logits: [Float]) {
        let token = s.sampler.sample(logits)
        s.generated += 1
        s.request.usage.completionTokens += 1
        statistics.generatedTokens += 1
        let r = s.request.request
        if r.stopTokens.contains(token) {
            finish(s, .stop)
            return
        }
        var event = GeneratedToken(index: s.index, token: token, logprob: nil, topLogprobs: [])
        if let k = r.logprobs { (event.logprob, event.topLogprobs) = Self.logprobs(logits, token: token, top: k) }
        s.request.deliver(.token(event))
        s.tokens.append(token)
        if s.generated >= r.maxTokens || s.tokens.count >= model.contextLength {
            finish(s, .length)
        }
    }

    /// Ends sample `s`: frees its blocks, reports it, and completes the request after its last.
    private func finish(_ s: SequenceState, _ reason: FinishReason) {
        blocks.free(s.id)
        draftBlocks?.free(s.id)
        s.finished = true
        running.removeAll { $0 === s }
        waiting.removeAll { $0 === s }
        let r = s.request
        // Samples not forked yet (the prompt never finished) end with sample 0.
        let unforked = s.index == 0 && !r.forked ? Array(1..<max(r.request.n, 1)) : []
        r.open -= 1 + unforked.count
        r.deliver(.finished(index: s.index, reason: reason, usage: r.usage))
        for i in unforked { r.deliver(.finished(index: i, reason: reason, usage: r.usage)) }
        if r.open <= 0 {
            requests[r.id] = nil
            r.complete()
        }
    }

    /// log p(token) and the `top` most likely tokens under softmax(logits), in Float64.
    static func logprobs(_ logits: [Float], token: Int, top: Int) -> (Float, [TokenLogprob]) {
        let maximum = Double(logits.max() ?? 0)
        var total = 0.0
        for l in logits { total += Foundation.exp(Double(l) - maximum) }
        let logZ = maximum + Foundation.log(total)
        var best: [Int] = []
        for i in logits.indices {
            if best.count == top, let last = best.last, !(logits[i] > logits[last]) { continue }
            var position = best.count
            while position > 0 && logits[i] > logits[best[position - 1]] { position -= 1 }
            best.insert(i, at: position)
            if best.count > top { best.removeLast() }
        }
        return (Float(Double(logits[token]) - logZ), best.map { TokenLogprob(token: $0, logprob: Float(Double(logits[$0]) - logZ)) })
    }

    private func refreshStatistics() {
        statistics.runningRequests = Set(running.map { $0.request.id }).count
        statistics.runningSequences = running.count
        statistics.waitingRequests = waitingRequests
        statistics.blocksFree = blocks.freeBlockCount
        statistics.blocksUsed = blocks.usedBlockCount
        statistics.prefixQueriedTokens = blocks.queriedTokens
        statistics.prefixHitTokens = blocks.hitTokens
    }
}
