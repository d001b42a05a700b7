/// How a request's tokens are drawn (see `Sampler`): temperature 0 is greedy.
public struct SamplingParameters: Sendable, Equatable {
    public var temperature: Float
    public var topP: Float
    /// Keep only the k most likely tokens; nil keeps all.
    public var topK: Int?
    /// Sample i of a request draws from seed + i.
    public var seed: UInt64

    public init(temperature: Float = 1, topP: Float = 1, topK: Int? = nil, seed: UInt64 = 0) {
        self.temperature = temperature
        self.topP = topP
        self.topK = topK
        self.seed = seed
    }
}

/// One request to the engine: a tokenised prompt and how to continue it.
public struct GenerationRequest: Sendable {
    public var promptTokens: [Int]
    /// Most tokens to generate per sample (≥ 1).
    public var maxTokens: Int
    public var sampling: SamplingParameters
    /// A sampled token in this set ends its sample (reason `.stop`) and is not emitted.
    public var stopTokens: Set<Int>
    /// Samples of the prompt (they share the prompt's KV blocks).
    public var n: Int
    /// nil: no log-probabilities; k: the sampled token's log-probability and the k most likely.
    public var logprobs: Int?

    public init(promptTokens: [Int], maxTokens: Int, sampling: SamplingParameters = SamplingParameters(),
                stopTokens: Set<Int> = [], n: Int = 1, logprobs: Int? = nil) {
        self.promptTokens = promptTokens
        self.maxTokens = maxTokens
        self.sampling = sampling
        self.stopTokens = stopTokens
        self.n = n
        self.logprobs = logprobs
    }
}

/// A token and its log-probability under the model (log-softmax of the raw logits).
public struct TokenLogprob: Sendable, Equatable {
    public var token: Int
    public var logprob: Float
}

/// A sampled token of sample `index`.
public struct GeneratedToken: Sendable, Equatable {
    public var index: Int
    public var token: Int
    /// With `logprobs` requested: the token's log-probability and the most likely tokens.
    public var logprob: Float?
    public var topLogprobs: [TokenLogprob]
}

/// Why a sample ended.
public enum FinishReason: String, Sendable, Equatable {
    /// A stop token was sampled.
    case stop
    /// `maxTokens` generated, or the context (or the whole KV cache) is full.
    case length
    /// The request was cancelled (its stream dropped).
    case cancelled
}

/// Token counts of a request so far.
public struct Usage: Sendable, Equatable {
    public var promptTokens: Int
    /// Tokens sampled over all samples (a stop token counts).
    public var completionTokens: Int
    /// Prompt tokens whose keys and values came from the prefix cache.
    public var cachedPromptTokens: Int
}

/// What a request's stream carries: tokens as they are sampled, then one `finished` per
/// sample; the stream ends after the last.
public enum GenerationEvent: Sendable, Equatable {
    case token(GeneratedToken)
    case finished(index: Int, reason: FinishReason, usage: Usage)
}

/// Why the engine refused a request (typed for the HTTP layer: `queueFull` is 503, the others 400).
public enum ServingError: Error, Equatable, CustomStringConvertible {
    /// The waiting queue holds `limit` requests already.
    case queueFull(limit: Int)
    /// The prompt has more tokens than a sequence may hold.
    case promptTooLong(tokens: Int, contextLength: Int)
    /// The prompt (plus one generated token) needs more KV blocks than the whole cache has.
    case promptExceedsCache(tokens: Int, cacheTokens: Int)
    /// A field of the request is out of range.
    case invalidRequest(field: String, expected: String, got: String)
    /// The engine has shut down.
    case shutDown

    public var description: String {
        switch self {
        case .queueFull(let limit): "the server is busy: \(limit) requests are already waiting"
        case .promptTooLong(let tokens, let context): "the prompt has \(tokens) tokens; the context holds at most \(context)"
        case .promptExceedsCache(let tokens, let cache):
            "the prompt has \(tokens) tokens; the whole KV cache holds \(cache) (one position is kept for the first generated token)"
        case .invalidRequest(let field, let expected, let got): "\(field): expected \(expected), got \(got)"
        case .shutDown: "the engine has shut down"
        }
    }
}

/// Counters for metrics, a snapshot taken after a step.
public struct EngineStatistics: Sendable, Equatable {
    public var runningRequests = 0
    public var waitingRequests = 0
    public var runningSequences = 0
    public var blocksUsed = 0
    public var blocksFree = 0
    public var blockCount = 0
    public var blockSize = 0
    /// Prompt tokens looked up in the prefix cache, and those found.
    public var prefixQueriedTokens = 0
    public var prefixHitTokens = 0
    /// Prompt tokens submitted and tokens sampled.
    public var promptTokens = 0
    public var generatedTokens = 0
    /// Rows computed by the model (prefill, recompute, decode, verification).
    public var computedTokens = 0
    public var steps = 0
    public var preemptions = 0
    public var speculativeProposed = 0
    public var speculativeAccepted = 0

    public init() {}
}
