import Foundation
import XCTest
import Hummingbird
import HummingbirdTesting
import Serving
import ServingHTTP

/// Errors, authentication, loading, back-pressure, cancellation, metrics and embeddings.
final class ServerBehaviourTests: XCTestCase {
    func request(_ app: some ApplicationProtocol, _ method: HTTPRequest.Method, _ uri: String, body: String? = nil,
                 headers: HTTPFields = [.contentType: "application/json"],
                 check: @escaping @Sendable (TestResponse) throws -> Void) async throws {
        try await app.test(.router) { client in
            try await client.execute(uri: uri, method: method, headers: headers, body: body.map { ByteBuffer(string: $0) }) { try check($0) }
        }
    }

    /// The OpenAI error body, checked for shape; returns (message, param).
    static func error(_ response: TestResponse, _ status: HTTPResponse.Status, file: StaticString = #filePath, line: UInt = #line) -> (String, String?) {
        XCTAssertEqual(response.status, status, response.body.text, file: file, line: line)
        XCTAssertEqual(response.headers[.contentType], "application/json", file: file, line: line)
        guard let error = response.body.json["error"] as? [String: Any], let message = error["message"] as? String,
              error["type"] is String, error.keys.contains("param"), error.keys.contains("code") else {
            XCTFail("not an OpenAI error body: \(response.body.text)", file: file, line: line)
            return ("", nil)
        }
        return (message, error["param"] as? String)
    }

    func testBadRequestsGet400NamingTheField() async throws {
        let app = Application(router: try ServingFixtures.server().makeRouter())
        let cases: [(body: String, param: String?, says: String)] = [
            ("{\"prompt\": \"hi\", ", nil, "not valid JSON"),
            ("", nil, "not valid JSON"),
            ("{\"prompt\": \"hi\", \"max_tokens\": \"ten\"}", "max_tokens", "wrong type"),
            ("{\"prompt\": \"hi\", \"max_tokens\": -1}", "max_tokens", "≥ 0"),
            ("{\"prompt\": \"hi\", \"n\": 1000}", "n", "1...16"),
            ("{\"prompt\": \"hi\", \"temperature\": 7}", "temperature", "[0, 2]"),
            ("{\"prompt\": \"hi\", \"top_p\": 0}", "top_p", "(0, 1]"),
            ("{\"prompt\": \"hi\", \"logprobs\": 99}", "logprobs", "0...20"),
            ("{\"prompt\": \"hi\", \"stop\": [\"a\", \"b\", \"c\", \"d\", \"e\"]}", "stop", "at most 4"),
            ("{\"prompt\": \"hi\", \"stream\": \"yes\"}", "stream", "wrong type"),
            ("{\"max_tokens\": 3}", "prompt", "required"),
            ("{\"prompt\": {\"text\": \"hi\"}}", "prompt", "wrong type"),
            ("{\"prompt\": [\"a\", \"b\"]}", "prompt", "exactly one prompt"),
            ("{\"prompt\": [1, 2, 99999999]}", "prompt", "token ids in 0..<49152"),
            ("{\"prompt\": \"\"}", "prompt", "at least one token"),
        ]
        for c in cases {
            try await request(app, .post, "/v1/completions", body: c.body) { response in
                let (message, param) = Self.error(response, .badRequest)
                XCTAssertEqual(param, c.param, "param for \(c.body)")
                XCTAssertTrue(message.contains(c.says), "\(message.debugDescription) should say \(c.says.debugDescription) for \(c.body)")
            }
        }
        let chatCases: [(body: String, param: String?)] = [
            ("{\"messages\": []}", "messages"),
            ("{\"messages\": \"hi\"}", "messages"),
            ("{\"messages\": [{\"content\": \"hi\"}]}", "messages[0].role"),
            ("{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"top_logprobs\": 2}", "top_logprobs"),
        ]
        for c in chatCases {
            try await request(app, .post, "/v1/chat/completions", body: c.body) { response in
                XCTAssertEqual(Self.error(response, .badRequest).1, c.param, c.body)
            }
        }
    }

    func testAPromptThatCanNeverFitGets400NamingTheContextLength() async throws {
        let served = try ServingFixtures.engine()
        let app = Application(router: try ServingFixtures.server().makeRouter())
        let tooLong = Array(repeating: "1", count: served.contextLength).joined(separator: ",")
        try await request(app, .post, "/v1/completions", body: "{\"prompt\": [\(tooLong)]}") { response in
            let (message, param) = Self.error(response, .badRequest)
            XCTAssertEqual(param, "prompt")
            XCTAssertTrue(message.contains("context length \(served.contextLength)"), message)
            XCTAssertTrue(message.contains("at most \(served.contextLength - 1)"), message)
            XCTAssertEqual((response.body.json["error"] as? [String: Any])?["code"] as? String, "context_length_exceeded")
        }
    }

    func testAPIKeyIsRequiredEverywhereButHealth() async throws {
        let app = Application(router: try ServingFixtures.server(apiKey: "sekret").makeRouter())
        try await request(app, .get, "/health") { XCTAssertEqual($0.status, .ok) }
        try await request(app, .get, "/v1/models") { response in
            _ = Self.error(response, .unauthorized)
            XCTAssertEqual(response.headers[.wwwAuthenticate], "Bearer")
        }
        try await request(app, .get, "/v1/models", headers: [.authorization: "Bearer wrong"]) { _ = Self.error($0, .unauthorized) }
        try await request(app, .post, "/v1/completions", body: "{\"prompt\": \"hi\", \"max_tokens\": 1}") { _ = Self.error($0, .unauthorized) }
        try await request(app, .get, "/metrics") { _ = Self.error($0, .unauthorized) }
        try await request(app, .get, "/v1/models", headers: [.authorization: "Bearer sekret"]) { response in
            XCTAssertEqual(response.status, .ok)
            XCTAssertEqual(((response.body.json["data"] as? [[String: Any]])?.first)?["id"] as? String, "smollm2-test")
        }
    }

    func testHealthIs503WhileLoadingAnd200After() async throws {
        let slot = ModelSlot()
        var options = ServerOptions()
        options.cancelOnClientDisconnect = false
        let app = Application(router: OpenAIServer(slot: slot, options: options).makeRouter())
        try await request(app, .get, "/health") { response in
            XCTAssertEqual(response.status, .serviceUnavailable)
            XCTAssertEqual(response.body.json["status"] as? String, "loading")
        }
        try await request(app, .post, "/v1/completions", body: "{\"prompt\": \"hi\"}") { _ = Self.error($0, .serviceUnavailable) }
        slot.finishLoading(model: try ServingFixtures.engine())
        try await request(app, .get, "/health") { response in
            XCTAssertEqual(response.status, .ok)
            XCTAssertEqual(response.body.json["status"] as? String, "ok")
        }
        let failed = ModelSlot()
        failed.failLoading("bad file")
        let failedApp = Application(router: OpenAIServer(slot: failed, options: options).makeRouter())
        try await request(failedApp, .get, "/health") { response in
            XCTAssertEqual(response.status, .serviceUnavailable)
            XCTAssertEqual(response.body.json["message"] as? String, "bad file")
        }
    }

    /// One slot, one request running and one waiting (`maxWaiting` 1): the next gets 503 with
    /// a JSON error at once; once they are gone, requests are served again.
    func testAFullQueueGets503() async throws {
        let served = try ServingFixtures.served(ServingConfiguration(blockSize: 16, blockCount: 64, maxRunning: 1, maxWaiting: 1, threads: 2))
        let prompt = served.tokenizer.encode("Hello", special: false)
        let greedy = SamplingParameters(temperature: 0)
        let holder = try served.engine.submit(GenerationRequest(promptTokens: prompt, maxTokens: 400, sampling: greedy))
        try await waitUntil { served.engine.statistics.runningRequests == 1 }
        let waiter = try served.engine.submit(GenerationRequest(promptTokens: prompt, maxTokens: 400, sampling: greedy))
        try await waitUntil { served.engine.statistics.waitingRequests == 1 }
        let app = Application(router: try ServingFixtures.server(model: served).makeRouter())
        try await request(app, .post, "/v1/completions", body: "{\"prompt\": \"hi\", \"max_tokens\": 2}") { response in
            let (message, _) = Self.error(response, .serviceUnavailable)
            XCTAssertTrue(message.contains("busy"), message)
            XCTAssertTrue(message.contains("--max-waiting"), message)
            XCTAssertEqual((response.body.json["error"] as? [String: Any])?["code"] as? String, "queue_full")
        }
        // Dropping both streams cancels them and frees the engine for the next request.
        for events in [holder, waiter] {
            let consumer = Task { for try await _ in events {} }
            consumer.cancel()
            _ = try? await consumer.value
        }
        try await waitUntil { served.engine.statistics.runningRequests + served.engine.statistics.waitingRequests == 0 }
        try await request(app, .post, "/v1/completions", body: "{\"prompt\": \"hi\", \"max_tokens\": 2}") {
            XCTAssertEqual($0.status, .ok)
        }
        await ServingFixtures.drain(served)
    }

    /// A consumer that goes away mid-generation (what a client disconnect does to the handler)
    /// stops the sequence within a step and gives its KV blocks back; a request cancelled while
    /// it waits leaves the queue.
    func testCancellingTheStreamStopsTheSequenceAndFreesItsBlocks() async throws {
        let served = try ServingFixtures.served(ServingConfiguration(blockSize: 16, blockCount: 64, maxRunning: 1, maxWaiting: 4, threads: 2))
        let engine = served.engine
        let greedy = SamplingParameters(temperature: 0)
        let events = try engine.submit(GenerationRequest(promptTokens: served.tokenizer.encode("Hello", special: false),
                                                         maxTokens: 2000, sampling: greedy))
        let seen = LockedBox(0)
        let consumer = Task {
            for try await event in events { if case .token = event { seen.value += 1 } }
        }
        try await waitUntil { seen.value >= 3 }
        XCTAssertGreaterThan(engine.statistics.blocksUsed, 0)
        consumer.cancel()
        _ = try? await consumer.value
        try await waitUntil { engine.statistics.runningRequests == 0 && engine.statistics.blocksUsed == 0 }
        XCTAssertEqual(engine.statistics.blocksFree, 64, "every block is back in the pool")
        XCTAssertLessThan(seen.value, 100, "generation ran on after cancellation")
        // A queued request cancelled before it runs is removed from the queue.
        let running = try engine.submit(GenerationRequest(promptTokens: [1], maxTokens: 300, sampling: greedy))
        let queued = try engine.submit(GenerationRequest(promptTokens: [1], maxTokens: 5, sampling: greedy))
        let queuedConsumer = Task { for try await _ in queued {} }
        try await waitUntil { engine.statistics.waitingRequests == 1 }
        queuedConsumer.cancel()
        _ = try? await queuedConsumer.value
        try await waitUntil { engine.statistics.waitingRequests == 0 }
        let runningConsumer = Task { for try await _ in running {} }
        runningConsumer.cancel()
        _ = try? await runningConsumer.value
        try await waitUntil { engine.statistics.runningRequests == 0 && engine.statistics.blocksUsed == 0 }
        await ServingFixtures.drain(served)
    }

    /// The handler's task cancelled mid-stream (what Hummingbird does when the client's
    /// connection closes): the request leaves the engine and its KV blocks return to the pool.
    func testACancelledStreamingHandlerGivesItsBlocksBack() async throws {
        let served = try ServingFixtures.served(ServingConfiguration(blockSize: 16, blockCount: 64, maxRunning: 2, threads: 2))
        let app = Application(router: try ServingFixtures.server(model: served).makeRouter())
        let client = Task {
            try await app.test(.router) { client in
                try await client.execute(uri: "/v1/completions", method: .post, headers: [.contentType: "application/json"],
                                         body: jsonBody(["prompt": "Count: 1, 2, 3,", "max_tokens": 2000, "temperature": 0,
                                                         "stream": true])) { _ in }
            }
        }
        try await waitUntil { served.engine.statistics.generatedTokens >= 3 }
        XCTAssertEqual(served.engine.statistics.runningRequests, 1)
        XCTAssertGreaterThan(served.engine.statistics.blocksUsed, 0)
        client.cancel()
        _ = try? await client.value
        try await waitUntil { served.engine.statistics.runningRequests == 0 && served.engine.statistics.blocksUsed == 0 }
        XCTAssertEqual(served.engine.statistics.blocksFree, 64)
        XCTAssertLessThan(served.engine.statistics.generatedTokens, 2000)
        await ServingFixtures.drain(served)
    }

    func testMetricsCountTokensLatenciesAndTheEnginesBlocks() async throws {
        let served = try ServingFixtures.served(ServingConfiguration(blockSize: 16, blockCount: 32, maxRunning: 2, threads: 2))
        let server = try ServingFixtures.server(model: served)
        let promptTokens = served.tokenizer.encode("Hello there", special: false).count
        let app = Application(router: server.makeRouter())
        try await request(app, .post, "/v1/completions", body: "{\"prompt\": \"Hello there\", \"max_tokens\": 5, \"temperature\": 0}") {
            XCTAssertEqual($0.status, .ok)
        }
        try await request(app, .get, "/metrics") { response in
            XCTAssertEqual(response.status, .ok)
            XCTAssertTrue(response.headers[.contentType]?.hasPrefix("text/plain; version=0.0.4") ?? false)
            let text = response.body.text
            func value(_ name: String) -> Double? {
                text.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ")[1]) }
            }
            XCTAssertEqual(value("flash_prompt_tokens_total"), Double(promptTokens))
            XCTAssertEqual(value("flash_generation_tokens_total"), 5)
            XCTAssertEqual(value("flash_requests_running"), 0)
            XCTAssertEqual(value("flash_requests_waiting"), 0)
            XCTAssertEqual(value("flash_time_to_first_token_seconds_count"), 1)
            XCTAssertEqual(value("flash_time_per_output_token_seconds_count"), 4)
            XCTAssertTrue(text.contains("# TYPE flash_time_to_first_token_seconds histogram"), text)
            // The request is over: every block is free again (its full blocks stay cached, evictable).
            XCTAssertEqual(value("flash_kv_blocks_used"), 0)
            XCTAssertEqual(value("flash_kv_blocks_free"), 32)
            XCTAssertEqual(value("flash_prefix_cache_queried_tokens_total"), Double(promptTokens))
            XCTAssertEqual(value("flash_prefix_cache_hit_tokens_total"), 0)
            XCTAssertEqual(value("flash_speculative_proposed_tokens_total"), 0)
        }
        await ServingFixtures.drain(served)
    }

    func testEmbeddingsMatchTheEncoderInBothFormats() async throws {
        let embedder = try ServingFixtures.embedder()
        let server = try ServingFixtures.server(embedder: embedder)
        let app = Application(router: server.makeRouter())
        let direct = try embedder.encoder.embed(["The cat sits.", "Ein Hund."], threads: 2)
        try await request(app, .post, "/v1/embeddings", body: "{\"input\": [\"The cat sits.\", \"Ein Hund.\"], \"model\": \"m\"}") { response in
            XCTAssertEqual(response.status, .ok)
            let data = response.body.json["data"] as! [[String: Any]]
            XCTAssertEqual(data.count, 2)
            for (index, item) in data.enumerated() {
                XCTAssertEqual(item["index"] as? Int, index)
                let vector = (item["embedding"] as! [Double]).map(Float.init)
                XCTAssertEqual(vector, direct[index])
            }
            XCTAssertEqual((response.body.json["usage"] as! [String: Any])["prompt_tokens"] as? Int,
                           try ["The cat sits.", "Ein Hund."].map { try embedder.encoder.tokenize($0).count }.reduce(0, +))
        }
        try await request(app, .post, "/v1/embeddings", body: "{\"input\": \"The cat sits.\", \"encoding_format\": \"base64\"}") { response in
            let item = (response.body.json["data"] as! [[String: Any]])[0]
            let bytes = Data(base64Encoded: item["embedding"] as! String)!
            let vector = bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            XCTAssertEqual(vector, direct[0])
        }
        try await request(app, .post, "/v1/embeddings", body: "{\"input\": []}") { XCTAssertEqual(Self.error($0, .badRequest).1, "input") }
        let noEmbedder = Application(router: try ServingFixtures.server().makeRouter())
        try await request(noEmbedder, .post, "/v1/embeddings", body: "{\"input\": \"x\"}") { _ = Self.error($0, .notFound) }
    }

    func waitUntil(seconds: Double = 30, _ condition: @escaping () -> Bool) async throws {
        let deadline = Date().addingTimeInterval(seconds)
        while !condition() {
            guard Date() < deadline else { XCTFail("condition not met within \(seconds) s"); return }
            try await Task.sleep(for: .milliseconds(10))
        }
    }
}
