import Foundation
import Serving

/// `prompt`: a string, a one-element array of strings, or an array of token ids.
public enum PromptInput: Decodable, Equatable, Sendable {
    case text(String)
    case tokens([Int])

    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let text = try? container.decode(String.self) { self = .text(text); return }
        if let tokens = try? container.decode([Int].self) { self = .tokens(tokens); return }
        if let texts = try? container.decode([String].self) {
            guard texts.count == 1 else {
                throw APIError.invalid("'prompt' as an array of strings must hold exactly one prompt (got \(texts.count)); send one request per prompt", param: "prompt")
            }
            self = .text(texts[0]); return
        }
        throw DecodingError.typeMismatch(String.self, .init(codingPath: decoder.codingPath, debugDescription: "a string or an array of token ids"))
    }
}

/// A field that is one string or an array of strings (`stop`, embeddings' `input`).
public struct StringOrStrings: Decodable, Equatable, Sendable {
    public var strings: [String]
    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let one = try? container.decode(String.self) { strings = [one]; return }
        strings = try container.decode([String].self)
    }
}

/// `POST /v1/completions` body (fields this server reads; others are ignored).
public struct CompletionRequest: Decodable, Sendable {
    public var model: String?
    public var prompt: PromptInput
    public var max_tokens: Int?
    public var temperature: Double?
    public var top_p: Double?
    public var top_k: Int?
    public var seed: Int?
    public var stop: StringOrStrings?
    public var n: Int?
    public var logprobs: Int?
    public var stream: Bool?
}

/// A chat message's `content`: a string or an array of `{"type": "text", "text": …}` parts.
public struct MessageContent: Decodable, Equatable, Sendable {
    public var text: String
    struct Part: Decodable { var type: String; var text: String? }
    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let text = try? container.decode(String.self) { self.text = text; return }
        let parts = try container.decode([Part].self)
        if let other = parts.first(where: { $0.type != "text" }) {
            throw APIError.invalid("content parts of type '\(other.type)' are not supported (text only)", param: "messages")
        }
        text = parts.compactMap(\.text).joined()
    }
}

public struct ChatMessageInput: Decodable, Sendable {
    public var role: String
    public var content: MessageContent?
}

/// `POST /v1/chat/completions` body.
public struct ChatCompletionRequest: Decodable, Sendable {
    public var model: String?
    public var messages: [ChatMessageInput]
    public var max_tokens: Int?
    public var max_completion_tokens: Int?
    public var temperature: Double?
    public var top_p: Double?
    public var top_k: Int?
    public var seed: Int?
    public var stop: StringOrStrings?
    public var n: Int?
    public var logprobs: Bool?
    public var top_logprobs: Int?
    public var stream: Bool?
}

/// `POST /v1/embeddings` body.
public struct EmbeddingRequest: Decodable, Sendable {
    public var model: String?
    public var input: StringOrStrings
    /// "float" (default) or "base64" (little-endian float32, as the openai client asks for).
    public var encoding_format: String?
}

/// Limits the server enforces on request fields.
public struct RequestLimits: Sendable {
    /// Most samples per request (`n`).
    public var maxSamples = 16
    /// Most alternatives per token (`logprobs` / `top_logprobs`).
    public var maxTopLogprobs = 20
    /// Most stop strings.
    public var maxStopStrings = 4
    /// Most texts per embeddings request.
    public var maxEmbeddingInputs = 256
    public init() {}
}

/// Fields shared by both generation endpoints, validated and in engine terms.
struct GenerationParameters {
    var maxTokens: Int?
    var sampling: SamplingParameters
    var stop: [String]
    var samples: Int
    var logprobs: Int?
    var stream: Bool

    init(maxTokens: Int?, temperature: Double?, topP: Double?, topK: Int?, seed: Int?, stop: StringOrStrings?, n: Int?,
         logprobs: Int?, stream: Bool?, limits: RequestLimits) throws {
        if let maxTokens, maxTokens < 0 {
            throw APIError.invalid("'max_tokens' must be ≥ 0, got \(maxTokens)", param: "max_tokens")
        }
        let temperature = temperature ?? 1
        guard temperature.isFinite, temperature >= 0, temperature <= 2 else {
            throw APIError.invalid("'temperature' must be in [0, 2], got \(temperature)", param: "temperature")
        }
        let topP = topP ?? 1
        guard topP > 0, topP <= 1 else { throw APIError.invalid("'top_p' must be in (0, 1], got \(topP)", param: "top_p") }
        if let topK, topK < 0 { throw APIError.invalid("'top_k' must be ≥ 0 (0 = all tokens), got \(topK)", param: "top_k") }
        let samples = n ?? 1
        guard samples >= 1, samples <= limits.maxSamples else {
            throw APIError.invalid("'n' must be in 1...\(limits.maxSamples), got \(samples)", param: "n")
        }
        if let logprobs, logprobs < 0 || logprobs > limits.maxTopLogprobs {
            throw APIError.invalid("log-probability alternatives must be in 0...\(limits.maxTopLogprobs), got \(logprobs)", param: "logprobs")
        }
        let stops = stop?.strings ?? []
        guard stops.count <= limits.maxStopStrings else {
            throw APIError.invalid("'stop' holds at most \(limits.maxStopStrings) strings, got \(stops.count)", param: "stop")
        }
        guard !stops.contains("") else { throw APIError.invalid("'stop' strings must not be empty", param: "stop") }
        // No seed: a fresh one per request, so that unseeded requests differ.
        let seedBits = seed.map { UInt64(bitPattern: Int64($0)) } ?? UInt64.random(in: .min ... .max)
        self.maxTokens = maxTokens
        self.sampling = SamplingParameters(temperature: Float(temperature), topP: Float(topP),
                                           topK: topK == 0 ? nil : topK, seed: seedBits)
        self.stop = stops
        self.samples = samples
        self.logprobs = logprobs
        self.stream = stream ?? false
    }
}
