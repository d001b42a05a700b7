import Foundation
import XCTest
import Hummingbird
import HummingbirdTesting
import ModelFormats
import ServingHTTP

/// /v1/completions and /v1/chat/completions in process (HummingbirdTesting `.router`) against
/// the real test model, checked against a direct greedy decode of the same model.
final class CompletionEndpointTests: XCTestCase {
    static let prompt = "The three primary colors are"

    func post(_ app: some ApplicationProtocol, _ uri: String, _ body: [String: Any],
              headers: HTTPFields = [.contentType: "application/json"],
              check: @escaping @Sendable (TestResponse) throws -> Void) async throws {
        try await app.test(.router) { client in
            try await client.execute(uri: uri, method: .post, headers: headers, body: jsonBody(body)) { try check($0) }
        }
    }

    func testGreedyCompletionEqualsDirectGreedyDecode() async throws {
        let server = try ServingFixtures.server()
        let (_, tokenizer) = try ServingFixtures.model()
        let promptIDs = tokenizer.encode(Self.prompt, parseSpecial: false)
        let expected = try ServingFixtures.greedy(promptIDs, maxTokens: 24)
        XCTAssertFalse(expected.text.isEmpty)
        let app = Application(router: server.makeRouter())
        try await post(app, "/v1/completions", ["model": "x", "prompt": Self.prompt, "max_tokens": 24, "temperature": 0]) { response in
            XCTAssertEqual(response.status, .ok)
            XCTAssertEqual(response.headers[.contentType], "application/json")
            let json = response.body.json
            XCTAssertEqual(json["object"] as? String, "text_completion")
            XCTAssertEqual(json["model"] as? String, "smollm2-test")
            let choices = json["choices"] as! [[String: Any]]
            XCTAssertEqual(choices.count, 1)
            XCTAssertEqual(choices[0]["text"] as? String, expected.text)
            XCTAssertEqual(choices[0]["finish_reason"] as? String, expected.stopped ? "stop" : "length")
            XCTAssertTrue(choices[0]["logprobs"] is NSNull)
            let usage = json["usage"] as! [String: Any]
            XCTAssertEqual(usage["prompt_tokens"] as? Int, promptIDs.count)
            XCTAssertEqual(usage["completion_tokens"] as? Int, expected.tokens.count)
            XCTAssertEqual(usage["total_tokens"] as? Int, promptIDs.count + expected.tokens.count)
            XCTAssertEqual((usage["prompt_tokens_details"] as? [String: Any])?["cached_tokens"] as? Int, 0)
        }
    }

    func testStreamedCompletionHasSSEFramingUsageAndTheSameText() async throws {
        let server = try ServingFixtures.server()
        let (_, tokenizer) = try ServingFixtures.model()
        let expected = try ServingFixtures.greedy(tokenizer.encode(Self.prompt, parseSpecial: false), maxTokens: 24)
        let app = Application(router: server.makeRouter())
        try await post(app, "/v1/completions", ["prompt": Self.prompt, "max_tokens": 24, "temperature": 0, "stream": true]) { response in
            XCTAssertEqual(response.status, .ok)
            XCTAssertEqual(response.headers[.contentType], "text/event-stream")
            let events = sseEvents(response.body.text)
            XCTAssertEqual(events.last, "[DONE]")
            XCTAssertGreaterThanOrEqual(events.count, 4)
            let chunks = events.dropLast().map { ByteBuffer(string: $0).json }
            let usageChunk = chunks.last!
            XCTAssertEqual((usageChunk["choices"] as? [Any])?.count, 0)
            XCTAssertEqual((usageChunk["usage"] as? [String: Any])?["completion_tokens"] as? Int, expected.tokens.count)
            var text = ""
            var reasons: [String] = []
            for chunk in chunks.dropLast() {
                XCTAssertEqual(chunk["object"] as? String, "text_completion")
                let choice = (chunk["choices"] as! [[String: Any]])[0]
                text += choice["text"] as! String
                if let reason = choice["finish_reason"] as? String { reasons.append(reason) }
            }
            XCTAssertEqual(text, expected.text)
            XCTAssertEqual(reasons, [expected.stopped ? "stop" : "length"], "exactly one chunk ends the choice")
        }
    }

    /// A prompt whose greedy continuation is Japanese: SmolLM2's byte-level tokens split most
    /// of its characters across tokens, and no streamed piece may hold half a character.
    func testStreamingNeverSplitsAUTF8Character() async throws {
        let server = try ServingFixtures.server()
        let (_, tokenizer) = try ServingFixtures.model()
        let prompt = "日本語の文: 東京は日本の首都です。大阪は"
        let ids = tokenizer.encode(prompt, parseSpecial: false)
        let expected = try ServingFixtures.greedy(ids, maxTokens: 16)
        // The test is only meaningful if some token of the continuation ends mid-character.
        var splits = 0
        var pending: [UInt8] = []
        for token in expected.tokens {
            pending += tokenizer.bytes(of: token, skipSpecial: true)
            if String(validating: pending, as: UTF8.self) == nil { splits += 1 } else { pending = [] }
        }
        XCTAssertGreaterThan(splits, 0, "the continuation \(expected.text.debugDescription) splits no character; pick another prompt")
        let app = Application(router: server.makeRouter())
        try await post(app, "/v1/completions", ["prompt": prompt, "max_tokens": 16, "temperature": 0, "stream": true]) { response in
            let events = sseEvents(response.body.text)
            var text = ""
            for event in events.dropLast(2) {
                let choice = (ByteBuffer(string: event).json["choices"] as! [[String: Any]])[0]
                let piece = choice["text"] as! String
                // The last piece may end in U+FFFD: max_tokens can cut a character, as in `flash generate`.
                if choice["finish_reason"] is NSNull {
                    XCTAssertFalse(piece.contains("\u{FFFD}"), "a streamed piece holds a broken character: \(piece.debugDescription)")
                }
                text += piece
            }
            XCTAssertEqual(text, expected.text)
        }
    }

    func testChatCompletionUsesTheChatTemplateAndEqualsDirectGreedyDecode() async throws {
        let server = try ServingFixtures.server()
        let (_, tokenizer) = try ServingFixtures.model()
        let messages = [ChatMessage(role: "user", content: "What is the capital of France?")]
        let ids = tokenizer.encode(try tokenizer.applyChatTemplate(messages), parseSpecial: true)
        let expected = try ServingFixtures.greedy(ids, maxTokens: 30)
        let app = Application(router: server.makeRouter())
        let body: [String: Any] = ["messages": [["role": "user", "content": "What is the capital of France?"]],
                                   "max_tokens": 30, "temperature": 0]
        try await post(app, "/v1/chat/completions", body) { response in
            XCTAssertEqual(response.status, .ok)
            let json = response.body.json
            XCTAssertEqual(json["object"] as? String, "chat.completion")
            let choice = (json["choices"] as! [[String: Any]])[0]
            let message = choice["message"] as! [String: Any]
            XCTAssertEqual(message["role"] as? String, "assistant")
            XCTAssertEqual(message["content"] as? String, expected.text)
            XCTAssertEqual(choice["finish_reason"] as? String, expected.stopped ? "stop" : "length")
            XCTAssertEqual((json["usage"] as! [String: Any])["prompt_tokens"] as? Int, ids.count)
        }
        var streamed = body
        streamed["stream"] = true
        try await post(app, "/v1/chat/completions", streamed) { response in
            let events = sseEvents(response.body.text)
            let chunks = events.dropLast(2).map { ByteBuffer(string: $0).json }
            XCTAssertEqual(chunks.first?["object"] as? String, "chat.completion.chunk")
            let deltas = chunks.map { ($0["choices"] as! [[String: Any]])[0]["delta"] as! [String: Any] }
            XCTAssertEqual(deltas.first?["role"] as? String, "assistant")
            XCTAssertEqual(deltas.compactMap { $0["content"] as? String }.joined(), expected.text)
        }
    }

    func testStopStringEndsTheTextBeforeIt() async throws {
        let server = try ServingFixtures.server()
        let (_, tokenizer) = try ServingFixtures.model()
        let expected = try ServingFixtures.greedy(tokenizer.encode(Self.prompt, parseSpecial: false), maxTokens: 24)
        // A stop string from the middle of the greedy text (it may span tokens).
        let characters = Array(expected.text)
        XCTAssertGreaterThan(characters.count, 12)
        let stop = String(characters[8..<11])
        let cut = expected.text.range(of: stop)!.lowerBound
        let app = Application(router: server.makeRouter())
        for stream in [false, true] {
            try await post(app, "/v1/completions", ["prompt": Self.prompt, "max_tokens": 24, "temperature": 0,
                                                    "stop": ["never-appears", stop], "stream": stream]) { response in
                XCTAssertEqual(response.status, .ok)
                var text = "", reason: String?
                if stream {
                    for event in sseEvents(response.body.text).dropLast(2) {
                        let choice = (ByteBuffer(string: event).json["choices"] as! [[String: Any]])[0]
                        text += choice["text"] as! String
                        reason = choice["finish_reason"] as? String ?? reason
                    }
                } else {
                    let choice = (response.body.json["choices"] as! [[String: Any]])[0]
                    text = choice["text"] as! String
                    reason = choice["finish_reason"] as? String
                }
                XCTAssertEqual(text, String(expected.text[..<cut]), "stream: \(stream)")
                XCTAssertEqual(reason, "stop")
            }
        }
    }

    func testSeededSamplesAreReproducibleAndDistinct() async throws {
        let server = try ServingFixtures.server()
        let app = Application(router: server.makeRouter())
        let body: [String: Any] = ["prompt": "Once upon a time", "max_tokens": 12, "temperature": 1.0, "seed": 1234, "n": 3]
        let first = LockedBox<[String]>([])
        try await post(app, "/v1/completions", body) { response in
            let choices = response.body.json["choices"] as! [[String: Any]]
            XCTAssertEqual(choices.map { $0["index"] as? Int }, [0, 1, 2])
            first.value = choices.map { $0["text"] as! String }
            XCTAssertEqual((response.body.json["usage"] as! [String: Any])["completion_tokens"] as? Int, 36)
        }
        XCTAssertGreaterThan(Set(first.value).count, 1, "three samples at temperature 1 should not all agree")
        try await post(app, "/v1/completions", body) { response in
            let texts = (response.body.json["choices"] as! [[String: Any]]).map { $0["text"] as! String }
            XCTAssertEqual(texts, first.value, "the same seed gives the same samples")
        }
    }

    func testLogprobsAreTheModelsLogSoftmax() async throws {
        let server = try ServingFixtures.server()
        let (model, tokenizer) = try ServingFixtures.model()
        let ids = tokenizer.encode(Self.prompt, parseSpecial: false)
        // Reference: the first generated token's log-softmax in Float64.
        let logits = try ServingFixtures.pagedForward(model, ids, start: 0, cache: ServingFixtures.pagedCache(model, capacity: ids.count + 1))
        let maximum = Double(logits.max()!)
        let logSum = maximum + log(logits.reduce(0.0) { $0 + exp(Double($1) - maximum) })
        let best = logits.indices.max { logits[$0] < logits[$1] }!
        let expectedFirst = Double(logits[best]) - logSum
        let app = Application(router: server.makeRouter())
        try await post(app, "/v1/completions", ["prompt": Self.prompt, "max_tokens": 4, "temperature": 0, "logprobs": 3]) { response in
            let logprobs = (response.body.json["choices"] as! [[String: Any]])[0]["logprobs"] as! [String: Any]
            let tokenLogprobs = logprobs["token_logprobs"] as! [Double]
            let top = logprobs["top_logprobs"] as! [[String: Double]]
            XCTAssertEqual(tokenLogprobs.count, 4)
            XCTAssertEqual((logprobs["tokens"] as! [String]).count, 4)
            XCTAssertEqual(tokenLogprobs[0], expectedFirst, accuracy: 1e-4)
            for (chosen, alternatives) in zip(tokenLogprobs, top) {
                XCTAssertLessThanOrEqual(chosen, 0)
                XCTAssertLessThanOrEqual(alternatives.count, 3)
                // Greedy: the chosen token is the most likely one.
                XCTAssertEqual(alternatives.values.max()!, chosen, accuracy: 1e-6)
            }
        }
        let chat: [String: Any] = ["messages": [["role": "user", "content": "Hi"]], "max_tokens": 3, "temperature": 0,
                                   "logprobs": true, "top_logprobs": 2]
        try await post(app, "/v1/chat/completions", chat) { response in
            let content = ((response.body.json["choices"] as! [[String: Any]])[0]["logprobs"] as! [String: Any])["content"] as! [[String: Any]]
            XCTAssertEqual(content.count, 3)
            for entry in content {
                XCTAssertEqual((entry["top_logprobs"] as! [Any]).count, 2)
                let bytes = (entry["bytes"] as! [Int]).map(UInt8.init)
                XCTAssertEqual(String(decoding: bytes, as: UTF8.self), entry["token"] as? String)
            }
        }
    }
}

/// A mutable value shared with a `@Sendable` test closure.
final class LockedBox<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var _value: T
    init(_ value: T) { _value = value }
    var value: T {
        get { lock.withLock { _value } }
        set { lock.withLock { _value = newValue } }
    }
}
