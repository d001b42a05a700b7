import ModelFormats

/// Sampling settings of one request, as the OpenAI API names them.
public struct EngineSampling: Sendable, Equatable {
    /// 0 is greedy (argmax).
    public var temperature: Float
    /// Nucleus mass in (0, 1]; 1 keeps every token.
    public var topP: Float
    /// Keep only the k most likely tokens; nil keeps all.
    public var topK: Int?
    /// Seed of sample 0; sample i of an `n` > 1 request uses `seed &+ i`.
    public var seed: UInt64

    public init(temperature: Float = 1, topP: Float = 1, topK: Int? = nil, seed: UInt64 = 0) {
        self.temperature = temperature
        self.topP = topP
        self.topK = topK
        self.seed = seed
    }
}

/// One generation request in token ids: what an engine needs, with no HTTP or text in it.
public struct EngineRequest: Sendable, Equatable {
    public var promptTokens: [Int]
    /// Most tokens to generate per sample (≥ 0); the engine also stops at its context length.
    public var maxTokens: Int
    public var sampling: EngineSampling
    /// Sampling one of these ends the sample with reason `.stop`; the token is not emitted.
    public var stopTokens: Set<Int>
    /// Independent samples of the same prompt (≥ 1).
    public var samples: Int
    /// nil: no log-probabilities; k ≥ 0: each token's log-probability plus the k most likely.
    public var logprobs: Int?

    public init(promptTokens: [Int], maxTokens: Int, sampling: EngineSampling = EngineSampling(),
                stopTokens: Set<Int> = [], samples: Int = 1, logprobs: Int? = nil) {
        self.promptTokens = promptTokens
        self.maxTokens = maxTokens
        self.sampling = sampling
        self.stopTokens = stopTokens
        self.samples = samples
        self.logprobs = logprobs
    }
}

/// A token id with its log-probability under the model (log-softmax of the raw logits, before
/// temperature, top-k or top-p).
public struct TokenLogprob: Sendable, Equatable {
    public var token: Int
    public var logprob: Float
    public init(token: Int, logprob: Float) {
        self.token = token
        self.logprob = logprob
    }
}

/// Why a sample ended.
public enum EngineFinishReason: String, Sendable, Equatable {
    /// A stop token was sampled.
    case stop
    /// `maxTokens` or the context length was reached.
    case length
    /// The request was cancelled (client gone, server shutting down).
    case cancelled
}

/// What an engine reports while it serves a request, in order per sample.
public enum EngineEvent: Sendable, Equatable {
    /// The prompt of `sample` was processed; `cachedPromptTokens` of it came from a cache.
    case prefilled(sample: Int, promptTokens: Int, cachedPromptTokens: Int)
    /// One sampled token of `sample`; `logprob` and `top` when the request asked for them.
    case token(sample: Int, token: Int, logprob: TokenLogprob?, top: [TokenLogprob])
    /// `sample` ended after `completionTokens` sampled tokens (a sampled stop token counts).
    case finished(sample: Int, reason: EngineFinishReason, completionTokens: Int)
}

/// Counters and gauges an engine exposes for `/metrics`. Fields an engine does not have
/// (a single-sequence engine has no block pool or speculation) are nil and are not exported.
public struct EngineStatistics: Sendable, Equatable {
    public var runningRequests: Int
    public var waitingRequests: Int
    public var kvBlocksUsed: Int?
    public var kvBlocksFree: Int?
    /// Prompt tokens served from the prefix cache so far.
    public var prefixCacheHitTokens: Int?
    public var speculativeProposedTokens: Int?
    public var speculativeAcceptedTokens: Int?

    public init(runningRequests: Int, waitingRequests: Int, kvBlocksUsed: Int? = nil, kvBlocksFree: Int? = nil,
                prefixCacheHitTokens: Int? = nil, speculativeProposedTokens: Int? = nil,
                speculativeAcceptedTokens: Int? = nil) {
        self.runningRequests = runningRequests
        self.waitingRequests = waitingRequests
        self.kvBlocksUsed = kvBlocksUsed
        self.kvBlocksFree = kvBlocksFree
        self.prefixCacheHitTokens = prefixCacheHitTokens
        self.speculativeProposedTokens = speculativeProposedTokens
        self.speculativeAcceptedTokens = speculativeAcceptedTokens
    }
}

/// Why an engine refused a request at submission.
public enum EngineError: Error, Equatable, CustomStringConvertible {
    /// The waiting queue is full (HTTP 503).
    case queueFull(limit: Int)
    /// The request can never fit (HTTP 400): `what` exceeded `limit`, e.g. the context length.
    case tooLarge(what: String, value: Int, limit: Int, limitName: String)
    /// A malformed request that validation upstream should have caught (HTTP 400).
    case invalid(argument: String, expected: String, got: String)
    /// The engine is shutting down and takes no new requests (HTTP 503).
    case shuttingDown

    public var description: String {
        switch self {
        case .queueFull(let limit): "the server is busy: \(limit) requests are already waiting; retry later"
        case .tooLarge(let what, let value, let limit, let limitName): "\(what) is \(value), more than the \(limitName) of \(limit)"
        case .invalid(let argument, let expected, let got): "\(argument): expected \(expected), got \(got)"
        case .shuttingDown: "the server is shutting down"
        }
    }
}

/// The model being served, as `/v1/models` describes it.
public struct ServedModel: Sendable, Equatable {
    public var id: String
    public var contextLength: Int
    public var vocabularySize: Int
    public init(id: String, contextLength: Int, vocabularySize: Int) {
        self.id = id
        self.contextLength = contextLength
        self.vocabularySize = vocabularySize
    }
}

/// Text ↔ token ids for the served model.
public protocol ServingTokenizer: Sendable {
    /// Prompt text to ids, as `flash generate` encodes it; `special` parses special-token text
    /// (chat templates) into their ids.
    func encode(_ text: String, special: Bool) -> [Int]
    /// The bytes a token stands for in generated text (special tokens: none).
    func textBytes(of token: Int) -> [UInt8]
    /// The token's own spelling, for log-probability listings.
    func spelling(of token: Int) -> String
    /// Tokens that end a turn (end of sequence, end of turn).
    var endOfGenerationTokens: Set<Int> { get }
    /// The prompt text for a conversation, ending with the opening of the assistant's turn.
    func chatPrompt(_ messages: [ChatMessage]) throws -> String
}

/// What the HTTP server needs from a generation engine. The server works in text; the engine in
/// token ids. Cancelling the iteration of a stream returned by `submit` (the consumer task is
/// cancelled or stops iterating) cancels the request and frees what it holds.
public protocol InferenceEngine: AnyObject, Sendable {
    var model: ServedModel { get }
    var tokenizer: any ServingTokenizer { get }
    /// Queues `request`; throws `EngineError` at once when it cannot be taken.
    func submit(_ request: EngineRequest) throws -> AsyncThrowingStream<EngineEvent, Error>
    func statistics() -> EngineStatistics
    /// Stops taking requests, lets running ones finish for up to `gracePeriod`, then cancels the rest.
    func shutdown(gracePeriod: Duration) async
}
