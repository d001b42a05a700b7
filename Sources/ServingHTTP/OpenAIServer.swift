import Foundation
import ModelFormats
import Hummingbird
import Serving
import NIOCore

/// Settings of the HTTP layer.
public struct ServerOptions: Sendable {
    /// With a key, every route but `/health` needs `Authorization: Bearer KEY` (else 401).
    public var apiKey: String?
    public var limits = RequestLimits()
    /// Largest request body read (bytes); larger ones get 413.
    public var maxRequestBytes = 8 << 20
    /// Cancel a generation when its client closes the connection (Hummingbird's
    /// `consumeWithCancellationOnInboundClose`). Needs a real connection; in-process router
    /// tests, which have none, turn it off.
    public var cancelOnClientDisconnect = true
    /// `max_tokens` when a completions request gives none (OpenAI's default).
    public var defaultCompletionMaxTokens = 16

    public init(apiKey: String? = nil) { self.apiKey = apiKey }
}

/// The OpenAI-compatible API over a `ModelSlot`: routes, authentication, errors, streaming.
/// Every route it registers is listed in `routes` and documented in docs/openapi.yaml.
public struct OpenAIServer: Sendable {
    public let slot: ModelSlot
    public let metrics: ServerMetrics
    public let options: ServerOptions

    /// (method, path) of every route.
    public static let routes: [(method: String, path: String)] = [
        ("GET", "/health"), ("GET", "/metrics"), ("GET", "/v1/models"),
        ("POST", "/v1/completions"), ("POST", "/v1/chat/completions"), ("POST", "/v1/embeddings"),
    ]

    public init(slot: ModelSlot, metrics: ServerMetrics = ServerMetrics(), options: ServerOptions = ServerOptions()) {
        self.slot = slot
        self.metrics = metrics
        self.options = options
    }

    public func makeRouter() -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: BearerAuthentication(apiKey: options.apiKey))
        router.get("/health") { _, _ in self.health() }
        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                     body: .init(byteBuffer: ByteBuffer(string: self.metrics.render(engine: self.slot.model?.engine.statistics))))
        }
        router.get("/v1/models") { _, _ in await self.answer { try self.models() } }
        router.post("/v1/completions") { request, context in await self.answer { try await self.completions(request, context) } }
        router.post("/v1/chat/completions") { request, context in await self.answer { try await self.chat(request, context) } }
        router.post("/v1/embeddings") { request, context in await self.answer { try await self.embeddings(request, context) } }
        return router
    }

    // MARK: Routes

    private func health() -> Response {
        switch slot.state {
        case .ready: return Self.json(.ok, .object([("status", "ok")]))
        case .loading: return Self.json(.serviceUnavailable, .object([("status", "loading")]))
        case .failed(let message): return Self.json(.serviceUnavailable, .object([("status", "error"), ("message", .string(message))]))
        }
    }

    private func models() throws -> Response {
        let model = try readyModel()
        var data: [JSONValue] = [.object([("id", .string(model.id)), ("object", "model"), ("created", 0),
                                          ("owned_by", "flash"), ("context_length", .int(model.contextLength))])]
        if let embedder = slot.embedder {
            data.append(.object([("id", .string(embedder.id)), ("object", "model"), ("created", 0), ("owned_by", "flash")]))
        }
        return Self.json(.ok, .object([("object", "list"), ("data", .array(data))]))
    }

    private func completions(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        var request = request
        let body = try await decodeBody(CompletionRequest.self, from: &request)
        let model = try readyModel()
        let p = try GenerationParameters(maxTokens: body.max_tokens, temperature: body.temperature, topP: body.top_p,
                                         topK: body.top_k, seed: body.seed, stop: body.stop, n: body.n,
                                         logprobs: body.logprobs, stream: body.stream, limits: options.limits)
        let prompt: [Int]
        switch body.prompt {
        case .text(let text): prompt = model.tokenizer.encode(text, special: false)
        case .tokens(let tokens): prompt = tokens
        }
        return try await generate(.completion, model: model, prompt: prompt,
                                  maxTokens: p.maxTokens ?? options.defaultCompletionMaxTokens, parameters: p, request: request)
    }

    private func chat(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        var request = request
        let body = try await decodeBody(ChatCompletionRequest.self, from: &request)
        let model = try readyModel()
        guard !body.messages.isEmpty else { throw APIError.invalid("'messages' must hold at least one message", param: "messages") }
        if body.top_logprobs != nil && body.logprobs != true {
            throw APIError.invalid("'top_logprobs' needs 'logprobs': true", param: "top_logprobs")
        }
        let p = try GenerationParameters(maxTokens: body.max_completion_tokens ?? body.max_tokens, temperature: body.temperature,
                                         topP: body.top_p, topK: body.top_k, seed: body.seed, stop: body.stop, n: body.n,
                                         logprobs: body.logprobs == true ? (body.top_logprobs ?? 0) : nil,
                                         stream: body.stream, limits: options.limits)
        let text: String
        do {
            text = try model.tokenizer.chatPrompt(body.messages.map { ChatMessage(role: $0.role, content: $0.content?.text ?? "") })
        } catch {
            throw APIError.invalid("this model has no usable chat template (\(error)); use /v1/completions", param: "messages")
        }
        let prompt = model.tokenizer.encode(text, special: true)
        // No max_tokens: up to the context length.
        return try await generate(.chat, model: model, prompt: prompt, maxTokens: p.maxTokens ?? model.contextLength,
                                  parameters: p, request: request)
    }

    private func embeddings(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        var request = request
        let body = try await decodeBody(EmbeddingRequest.self, from: &request)
        guard case .ready = slot.state else { throw Self.loadingError }
        guard let embedder = slot.embedder else {
            throw APIError(status: .notFound, message: "no embedding model is loaded; start the server with --embedding-model DIR",
                           type: "invalid_request_error", code: "model_not_found")
        }
        let texts = body.input.strings
        guard !texts.isEmpty, texts.count <= options.limits.maxEmbeddingInputs else {
            throw APIError.invalid("'input' must hold 1...\(options.limits.maxEmbeddingInputs) texts, got \(texts.count)", param: "input")
        }
        let format = body.encoding_format ?? "float"
        guard format == "float" || format == "base64" else {
            throw APIError.invalid("'encoding_format' must be \"float\" or \"base64\", got \"\(format)\"", param: "encoding_format")
        }
        let (vectors, tokens) = try await embedder.embed(texts)
        let data: [JSONValue] = vectors.enumerated().map { index, vector in
            let embedding: JSONValue = format == "float"
                ? .array(vector.map { .number(Double($0)) })
                : .string(vector.withUnsafeBytes { Data($0).base64EncodedString() })  // little-endian float32
            return .object([("object", "embedding"), ("index", .int(index)), ("embedding", embedding)])
        }
        return Self.json(.ok, .object([("object", "list"), ("data", .array(data)), ("model", .string(embedder.id)),
                                       ("usage", .object([("prompt_tokens", .int(tokens)), ("total_tokens", .int(tokens))]))]))
    }

    // MARK: Generation

    private func generate(_ kind: GenerationKind, model: ServedModel, prompt: [Int], maxTokens: Int,
                          parameters p: GenerationParameters, request: Request) async throws -> Response {
        let engineRequest = GenerationRequest(promptTokens: prompt, maxTokens: maxTokens, sampling: p.sampling,
                                              stopTokens: model.tokenizer.endOfGenerationTokens, n: p.samples,
                                              logprobs: p.logprobs)
        let run: GenerationRun
        do {
            run = try GenerationRun(model: model, request: engineRequest, stops: p.stop, metrics: metrics)
        } catch let error as ServingError {
            throw APIError.from(error)
        }
        let builder = ResponseBuilder(kind: kind, model: model.id, wantsLogprobs: p.logprobs != nil)
        let cancelOnClose = options.cancelOnClientDisconnect

        if p.stream {
            return Response(
                status: .ok,
                headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
                body: ResponseBody { writer in
                    func stream(_ writer: inout any ResponseBodyWriter) async throws {
                        var started = Set<Int>()
                        do {
                            let usage = try await run.consume { delta in
                                try await writer.write(Self.event(builder.chunk(delta, first: started.insert(delta.index).inserted)))
                            }
                            try await writer.write(Self.event(builder.usageChunk(usage)))
                        } catch let error where !(error is CancellationError) {
                            // Headers are sent: the error goes into the stream as its last event.
                            try await writer.write(Self.event(.object([("error", Self.errorJSON(APIError(
                                status: .internalServerError, message: "generation failed: \(error)", type: "server_error")))])))
                        }
                        try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
                    }
                    if cancelOnClose {
                        try await request.body.consumeWithCancellationOnInboundClose { _ in try await stream(&writer) }
                    } else {
                        try await stream(&writer)
                    }
                    try await writer.finish(nil)
                })
        }

        var choices = Array(repeating: ChoiceAccumulator(), count: p.samples)
        func collect() async throws -> ResponseUsage {
            try await run.consume { delta in
                choices[delta.index].text += delta.text
                choices[delta.index].logprobs += delta.logprobs
                if let reason = delta.finishReason { choices[delta.index].finishReason = reason }
            }
        }
        let usage = cancelOnClose
            ? try await request.body.consumeWithCancellationOnInboundClose { _ in try await collect() }
            : try await collect()
        return Self.json(.ok, builder.response(choices: choices, usage: usage))
    }

    // MARK: Helpers

    private static let loadingError = APIError(status: .serviceUnavailable, message: "the model is still loading; retry when GET /health answers 200",
                                               type: "model_loading")

    private func readyModel() throws -> ServedModel {
        switch slot.state {
        case .ready: if let model = slot.model { return model }
        case .failed(let message):
            throw APIError(status: .serviceUnavailable, message: "the model failed to load: \(message)", type: "server_error")
        case .loading: break
        }
        throw Self.loadingError
    }

    /// Reads the whole body (keeping the request's inbound stream for disconnect detection) and
    /// decodes it, turning every failure into a 400/413 that names the field.
    private func decodeBody<T: Decodable>(_ type: T.Type, from request: inout Request) async throws -> T {
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: options.maxRequestBytes)
        } catch let error as HTTPError where error.status == .contentTooLarge {
            throw APIError(status: .contentTooLarge, message: "the request body is larger than \(options.maxRequestBytes) bytes",
                           type: "invalid_request_error")
        }
        do {
            return try JSONDecoder().decode(T.self, from: Data(buffer.readableBytesView))
        } catch {
            throw APIError.from(decoding: error)
        }
    }

    /// Runs a handler, answering any error as an OpenAI-style JSON error.
    private func answer(_ handler: () async throws -> Response) async -> Response {
        do {
            return try await handler()
        } catch let error as APIError {
            return Self.json(error.status, .object([("error", Self.errorJSON(error))]))
        } catch let error as ServingError {
            let api = APIError.from(error)
            return Self.json(api.status, .object([("error", Self.errorJSON(api))]))
        } catch {
            let api = APIError(status: .internalServerError, message: "\(error)", type: "server_error")
            return Self.json(api.status, .object([("error", Self.errorJSON(api))]))
        }
    }

    static func errorJSON(_ e: APIError) -> JSONValue {
        .object([("message", .string(e.message)), ("type", .string(e.type)), ("param", .optional(e.param)), ("code", .optional(e.code))])
    }

    static func json(_ status: HTTPResponse.Status, _ value: JSONValue) -> Response {
        Response(status: status, headers: [.contentType: "application/json"],
                 body: .init(byteBuffer: ByteBuffer(string: value.serialized())))
    }

    /// One Server-Sent Event. The JSON is whole text, so a UTF-8 character is never split.
    static func event(_ value: JSONValue) -> ByteBuffer { ByteBuffer(string: "data: " + value.serialized() + "\n\n") }
}

/// 401 for requests without `Authorization: Bearer KEY`, when a key is set; `/health` stays open.
struct BearerAuthentication: RouterMiddleware {
    typealias Context = BasicRequestContext
    let apiKey: String?

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let apiKey, request.uri.path != "/health" else { return try await next(request, context) }
        if Self.matches(request.headers[.authorization], "Bearer \(apiKey)") { return try await next(request, context) }
        let error = APIError(status: .unauthorized, message: "missing or wrong API key: send 'Authorization: Bearer KEY'",
                             type: "invalid_request_error", code: "invalid_api_key")
        var response = OpenAIServer.json(.unauthorized, .object([("error", OpenAIServer.errorJSON(error))]))
        response.headers[.wwwAuthenticate] = "Bearer"
        return response
    }

    /// Compares in time independent of where the strings differ, so response timing does not
    /// reveal how much of a guessed key was right.
    static func matches(_ given: String?, _ expected: String) -> Bool {
        let a = Array((given ?? "").utf8), b = Array(expected.utf8)
        var difference = a.count ^ b.count
        for i in b.indices { difference |= Int((i < a.count ? a[i] : 0) ^ b[i]) }
        return difference == 0
    }
}
