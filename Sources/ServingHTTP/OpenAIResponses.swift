import Foundation

/// Which OpenAI endpoint a generation answers, and how its JSON is shaped.
enum GenerationKind: Sendable {
    case completion
    case chat

    var object: String { self == .completion ? "text_completion" : "chat.completion" }
    var chunkObject: String { self == .completion ? "text_completion" : "chat.completion.chunk" }
    var idPrefix: String { self == .completion ? "cmpl-" : "chatcmpl-" }
}

/// A choice as it accumulates for a non-streamed response.
struct ChoiceAccumulator {
    var text = ""
    var logprobs: [LogprobEntry] = []
    var finishReason: String?
}

/// Builds the JSON bodies of completion and chat responses, whole or as stream chunks.
struct ResponseBuilder {
    let kind: GenerationKind
    let id: String
    let created: Int
    let model: String
    let wantsLogprobs: Bool

    init(kind: GenerationKind, model: String, wantsLogprobs: Bool) {
        self.kind = kind
        self.id = kind.idPrefix + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        self.created = Int(Date().timeIntervalSince1970)
        self.model = model
        self.wantsLogprobs = wantsLogprobs
    }

    private func header(object: String) -> [(String, JSONValue)] {
        [("id", .string(id)), ("object", .string(object)), ("created", .int(created)), ("model", .string(model))]
    }

    /// The whole response of a non-streamed request.
    func response(choices: [ChoiceAccumulator], usage: ResponseUsage) -> JSONValue {
        let items: [JSONValue] = choices.enumerated().map { index, choice in
            switch kind {
            case .completion:
                .object([("index", .int(index)), ("text", .string(choice.text)),
                         ("logprobs", logprobs(choice.logprobs)), ("finish_reason", .optional(choice.finishReason))])
            case .chat:
                .object([("index", .int(index)),
                         ("message", .object([("role", "assistant"), ("content", .string(choice.text))])),
                         ("logprobs", logprobs(choice.logprobs)), ("finish_reason", .optional(choice.finishReason))])
            }
        }
        return .object(header(object: kind.object) + [("choices", .array(items)), ("usage", Self.usage(usage))])
    }

    /// One streamed chunk carrying `delta` (the chat role goes in a choice's first chunk).
    func chunk(_ delta: ChoiceDelta, first: Bool) -> JSONValue {
        let choice: JSONValue
        switch kind {
        case .completion:
            choice = .object([("index", .int(delta.index)), ("text", .string(delta.text)),
                              ("logprobs", logprobs(delta.logprobs)), ("finish_reason", .optional(delta.finishReason))])
        case .chat:
            var fields: [(String, JSONValue)] = []
            if first { fields.append(("role", "assistant")) }
            if !delta.text.isEmpty || delta.finishReason == nil { fields.append(("content", .string(delta.text))) }
            choice = .object([("index", .int(delta.index)), ("delta", .object(fields)),
                              ("logprobs", logprobs(delta.logprobs)), ("finish_reason", .optional(delta.finishReason))])
        }
        return .object(header(object: kind.chunkObject) + [("choices", .array([choice]))])
    }

    /// The last chunk before `[DONE]`: no choices, the request's usage.
    func usageChunk(_ usage: ResponseUsage) -> JSONValue {
        .object(header(object: kind.chunkObject) + [("choices", .array([])), ("usage", Self.usage(usage))])
    }

    static func usage(_ u: ResponseUsage) -> JSONValue {
        .object([("prompt_tokens", .int(u.prompt_tokens)), ("completion_tokens", .int(u.completion_tokens)),
                 ("total_tokens", .int(u.total_tokens)),
                 ("prompt_tokens_details", .object([("cached_tokens", .int(u.prompt_tokens_details.cached_tokens))]))])
    }

    private func logprobs(_ entries: [LogprobEntry]) -> JSONValue {
        guard wantsLogprobs else { return .null }
        let bytes: ([UInt8]) -> JSONValue = { .array($0.map { .int(Int($0)) }) }
        switch kind {
        case .completion:
            // Legacy shape: parallel arrays, top alternatives as {token: logprob} objects.
            var offset = 0
            var offsets: [JSONValue] = []
            for entry in entries {
                offsets.append(.int(offset))
                offset += entry.token.count
            }
            return .object([
                ("tokens", .array(entries.map { .string($0.token) })),
                ("token_logprobs", .array(entries.map { .number(Double($0.logprob)) })),
                ("top_logprobs", .array(entries.map { entry in
                    var seen = Set<String>()
                    return .object(entry.top.compactMap { alt in
                        seen.insert(alt.token).inserted ? (alt.token, .number(Double(alt.logprob))) : nil
                    })
                })),
                ("text_offset", .array(offsets)),
            ])
        case .chat:
            return .object([("content", .array(entries.map { entry in
                .object([("token", .string(entry.token)), ("logprob", .number(Double(entry.logprob))),
                         ("bytes", bytes(entry.bytes)),
                         ("top_logprobs", .array(entry.top.map { alt in
                             .object([("token", .string(alt.token)), ("logprob", .number(Double(alt.logprob))),
                                      ("bytes", bytes(alt.bytes))])
                         }))])
            }))])
        }
    }
}
