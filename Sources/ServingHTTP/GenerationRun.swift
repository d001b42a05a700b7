import Foundation

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
public struct Usage: Codable, Sendable, Equatable {
    public struct PromptDetails: Codable, Sendable, Equatable { public var cached_tokens: Int }
    public var prompt_tokens: Int
    public var completion_tokens: Int
    public var total_tokens: Int
    public var prompt_tokens_details: PromptDetails
}

/// Drives one request through an engine: turns its token events into text deltas per choice
/// (stop strings matched on decoded text, UTF-8 kept whole), counts usage, records latency.
struct GenerationRun: Sendable {
    let engine: any InferenceEngine
    let request: EngineRequest
    let stops: [String]
    let metrics: ServerMetrics?
    private let events: AsyncThrowingStream<EngineEvent, Error>
    private let started: ContinuousClock.Instant

    /// Submits the request; throws `EngineError` at once if the engine refuses it, before any
    /// response is sent.
    init(engine: any InferenceEngine, request: EngineRequest, stops: [String], metrics: ServerMetrics?) throws {
        self.engine = engine
        self.request = request
        self.stops = stops
        self.metrics = metrics
        started = ContinuousClock.now
        events = try engine.submit(request)
    }

    /// Calls `send` for every delta. Returns when every choice has finished; leaving early (a
    /// stop string in every choice, or cancellation) cancels the engine's stream.
    func consume(send: (ChoiceDelta) async throws -> Void) async throws -> Usage {
        let tokenizer = engine.tokenizer
        var assemblers = Array(repeating: TextAssembler(stops: stops), count: request.samples)
        var counts = Array(repeating: 0, count: request.samples)
        var done = Array(repeating: false, count: request.samples)
        var cached = 0
        var lastToken: ContinuousClock.Instant?

        loop: for try await event in events {
            switch event {
            case .prefilled(_, _, let cachedTokens):
                cached = max(cached, cachedTokens)
            case .token(let sample, let token, let logprob, let top):
                guard !done[sample] else { continue }
                let now = ContinuousClock.now
                if let lastToken { metrics?.recordTokenLatency(now - lastToken) } else { metrics?.recordTimeToFirstToken(now - started) }
                lastToken = now
                counts[sample] += 1
                let text = assemblers[sample].append(tokenizer.textBytes(of: token))
                var entries: [LogprobEntry] = []
                if let logprob {
                    let spelling = tokenizer.spelling(of: token)
                    entries.append(LogprobEntry(token: spelling, bytes: Array(spelling.utf8), logprob: logprob.logprob,
                                                top: top.map { alt in
                                                    let s = tokenizer.spelling(of: alt.token)
                                                    return (s, Array(s.utf8), alt.logprob)
                                                }))
                }
                if assemblers[sample].stopped {
                    done[sample] = true
                    try await send(ChoiceDelta(index: sample, text: text, logprobs: entries, finishReason: "stop"))
                    if !done.contains(false) { break loop }
                } else if !text.isEmpty || !entries.isEmpty {
                    try await send(ChoiceDelta(index: sample, text: text, logprobs: entries, finishReason: nil))
                }
            case .finished(let sample, let reason, let completionTokens):
                guard !done[sample] else { continue }
                done[sample] = true
                counts[sample] = max(counts[sample], completionTokens)
                try await send(ChoiceDelta(index: sample, text: assemblers[sample].flush(), logprobs: [],
                                           finishReason: reason.rawValue))
            }
        }
        try Task.checkCancellation()
        let completion = counts.reduce(0, +)
        metrics?.recordTokens(prompt: request.promptTokens.count, completion: completion)
        return Usage(prompt_tokens: request.promptTokens.count, completion_tokens: completion,
                     total_tokens: request.promptTokens.count + completion,
                     prompt_tokens_details: .init(cached_tokens: cached))
    }
}
