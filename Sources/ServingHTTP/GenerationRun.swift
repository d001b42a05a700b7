import Foundation
import Serving

/// One token's log-probability entry, endpoint-neutral.
struct LogprobEntry: Sendable {
    var token: String
    var bytes: [UInt8]
    var logprob: Float
    var top: [(token: String, bytes: [UInt8], logprob: Float)]
}

/// What a generation sends to its client in one step: new text of one choice, its log
/// probabilities, and the finish reason when the choice ends.
struct ChoiceDelta: Sendable {
    var index: Int
    var text: String
    var logprobs: [LogprobEntry]
    var finishReason: String?
}

/// Token counts of a finished request, as `usage` reports them.
public struct ResponseUsage: Codable, Sendable, Equatable {
    public struct PromptDetails: Codable, Sendable, Equatable { public var cached_tokens: Int }
    public var prompt_tokens: Int
    public var completion_tokens: Int
    public var total_tokens: Int
    public var prompt_tokens_details: PromptDetails
}

/// Drives one request through the engine: turns its token events into text deltas per choice
/// (stop strings matched on decoded text, UTF-8 kept whole), counts usage, records latency.
struct GenerationRun: Sendable {
    let model: ServedModel
    let request: GenerationRequest
    let stops: [String]
    let metrics: ServerMetrics?
    /// nil for `max_tokens` 0: nothing to generate, the request is answered without the engine.
    private let events: AsyncThrowingStream<GenerationEvent, Error>?
    private let started: ContinuousClock.Instant

    /// Submits the request; throws `ServingError` at once if the engine refuses it, before any
    /// response is sent. A request for 0 tokens is validated as one for 1 and not submitted.
    init(model: ServedModel, request: GenerationRequest, stops: [String], metrics: ServerMetrics?) throws {
        self.model = model
        self.request = request
        self.stops = stops
        self.metrics = metrics
        started = ContinuousClock.now
        if request.maxTokens == 0 {
            var one = request
            one.maxTokens = 1
            try Scheduler.validate(one, configuration: model.engine.configuration, vocabularySize: model.vocabularySize,
                                   contextLength: model.contextLength)
            events = nil
        } else {
            events = try model.engine.submit(request)
        }
    }

    /// Calls `send` for every delta. Returns when every choice has finished; leaving early (a
    /// stop string in every choice, or cancellation) drops the engine's stream, which cancels
    /// the request and frees its KV blocks.
    func consume(send: (ChoiceDelta) async throws -> Void) async throws -> ResponseUsage {
        let tokenizer = model.tokenizer
        var assemblers = Array(repeating: TextAssembler(stops: stops), count: request.n)
        var counts = Array(repeating: 0, count: request.n)
        var done = Array(repeating: false, count: request.n)
        var engineUsage: Usage?
        var lastToken: ContinuousClock.Instant?

        if let events {
            loop: for try await event in events {
                switch event {
                case .token(let t):
                    let sample = t.index
                    guard !done[sample] else { continue }
                    let now = ContinuousClock.now
                    if let lastToken { metrics?.recordTokenLatency(now - lastToken) } else { metrics?.recordTimeToFirstToken(now - started) }
                    lastToken = now
                    counts[sample] += 1
                    let text = assemblers[sample].append(tokenizer.textBytes(of: t.token))
                    var entries: [LogprobEntry] = []
                    if let logprob = t.logprob {
                        // `bytes`: the token's own bytes (part of a character for a split one), else its spelling's.
                        func describe(_ id: Int) -> (String, [UInt8]) {
                            let spelling = tokenizer.spelling(of: id), raw = tokenizer.textBytes(of: id)
                            return (spelling, raw.isEmpty ? Array(spelling.utf8) : raw)
                        }
                        let (spelling, bytes) = describe(t.token)
                        entries.append(LogprobEntry(token: spelling, bytes: bytes, logprob: logprob,
                                                    top: t.topLogprobs.map { alt in
                                                        let (s, b) = describe(alt.token)
                                                        return (s, b, alt.logprob)
                                                    }))
                    }
                    if assemblers[sample].stopped {
                        done[sample] = true
                        try await send(ChoiceDelta(index: sample, text: text, logprobs: entries, finishReason: "stop"))
                        if !done.contains(false) { break loop }
                    } else if !text.isEmpty || !entries.isEmpty {
                        try await send(ChoiceDelta(index: sample, text: text, logprobs: entries, finishReason: nil))
                    }
                case .finished(let sample, let reason, let usage):
                    engineUsage = usage
                    guard !done[sample] else { continue }
                    done[sample] = true
                    try await send(ChoiceDelta(index: sample, text: assemblers[sample].flush(), logprobs: [],
                                               finishReason: reason.rawValue))
                }
            }
        } else {
            for sample in 0..<request.n {
                try await send(ChoiceDelta(index: sample, text: "", logprobs: [], finishReason: FinishReason.length.rawValue))
            }
        }
        try Task.checkCancellation()
        // The engine counts every sampled token (a stop token too) over all samples; a request
        // ended early by stop strings reports the tokens it received.
        let completion = max(counts.reduce(0, +), engineUsage?.completionTokens ?? 0)
        let prompt = request.promptTokens.count
        metrics?.recordTokens(prompt: prompt, completion: completion)
        return ResponseUsage(prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion,
                             prompt_tokens_details: .init(cached_tokens: engineUsage?.cachedPromptTokens ?? 0))
    }
}
