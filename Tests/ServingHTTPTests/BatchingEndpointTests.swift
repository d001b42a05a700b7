import Foundation
import XCTest
import Hummingbird
import HummingbirdTesting
import Serving
import ServingHTTP

/// The serving invariant through HTTP: greedy output is token for token what the direct decode
/// (`ServingFixtures.greedy`, no engine) produces, whatever else the batching engine runs —
/// concurrent requests, chunked prefill, preemption by a tiny KV pool, prefix-cache hits,
/// speculative decoding.
final class BatchingEndpointTests: XCTestCase {
    static let system = "You are a careful assistant. Answer in one short sentence, and never invent facts you do not know. "
    /// Eight prompts of different lengths; half share a system prompt longer than two blocks.
    static let prompts = ["What is the capital of France?", "Name a prime number.", "Why is the sky blue?",
                          "Write a haiku about autumn leaves falling on a quiet pond.", "2 + 2 =", "Tell me about whales.",
                          "List three colours.", "The quick brown fox"].enumerated().map { i, q in i % 2 == 0 ? system + q : q }

    /// The text and completion token count of a greedy /v1/completions answer.
    struct Answer: Equatable {
        var text: String
        var completionTokens: Int
        var cachedTokens: Int
    }

    static func complete(_ client: some TestClientProtocol, _ prompt: String, maxTokens: Int) async throws -> Answer {
        try await client.execute(uri: "/v1/completions", method: .post, headers: [.contentType: "application/json"],
                                 body: jsonBody(["prompt": prompt, "max_tokens": maxTokens, "temperature": 0])) { response in
            XCTAssertEqual(response.status, .ok, response.body.text)
            let json = response.body.json
            let choice = (json["choices"] as? [[String: Any]])?.first
            let usage = json["usage"] as? [String: Any]
            return Answer(text: choice?["text"] as? String ?? "<none>", completionTokens: usage?["completion_tokens"] as? Int ?? -1,
                          cachedTokens: (usage?["prompt_tokens_details"] as? [String: Any])?["cached_tokens"] as? Int ?? -1)
        }
    }

    /// What the direct decode answers (text and tokens, a stop token counted).
    static func expected(_ prompts: [String], maxTokens: Int) throws -> [(text: String, tokens: Int)] {
        let (_, tokenizer) = try ServingFixtures.model()
        return try prompts.map {
            let r = try ServingFixtures.greedy(tokenizer.encode($0, parseSpecial: false), maxTokens: maxTokens)
            return (r.text, r.tokens.count)
        }
    }

    /// Sends every prompt at once and returns the answers in order.
    static func concurrently(_ client: some TestClientProtocol, _ prompts: [String], maxTokens: Int) async throws -> [Answer] {
        try await withThrowingTaskGroup(of: (Int, Answer).self) { group in
            for (i, prompt) in prompts.enumerated() {
                group.addTask { (i, try await complete(client, prompt, maxTokens: maxTokens)) }
            }
            var answers = [Answer?](repeating: nil, count: prompts.count)
            for try await (i, answer) in group { answers[i] = answer }
            return answers.map { $0! }
        }
    }

    func testEightConcurrentGreedyRequestsEqualEachAloneAndTheDirectDecode() async throws {
        let maxTokens = 12
        let expected = try Self.expected(Self.prompts, maxTokens: maxTokens)
        // A 32-row step budget: the system-prompt requests are prefilled in chunks, beside the decodes.
        let served = try ServingFixtures.served(ServingConfiguration(blockSize: 16, blockCount: 128, maxRunning: 8,
                                                                     maxBatchTokens: 32, prefixCaching: false, threads: 2))
        let app = Application(router: try ServingFixtures.server(model: served).makeRouter())
        try await app.test(.router) { client in
            var alone: [Answer] = []
            for prompt in Self.prompts { alone.append(try await Self.complete(client, prompt, maxTokens: maxTokens)) }
            let stepsBefore = served.engine.statistics.steps
            let together = try await Self.concurrently(client, Self.prompts, maxTokens: maxTokens)
            let steps = served.engine.statistics.steps - stepsBefore
            for i in Self.prompts.indices {
                XCTAssertEqual(alone[i].text, expected[i].text, "prompt \(i) alone")
                XCTAssertEqual(alone[i].completionTokens, expected[i].tokens, "prompt \(i) alone")
                XCTAssertEqual(together[i], alone[i], "prompt \(i) among 8")
            }
            // Batched: far fewer model passes than tokens generated (one pass per token alone).
            let tokens = together.map(\.completionTokens).reduce(0, +)
            XCTAssertLessThan(steps, tokens / 2, "\(steps) steps for \(tokens) tokens: the requests were not batched")
        }
        await ServingFixtures.drain(served)
    }

    func testPreemptionByATinyKVPoolKeepsGreedyOutput() async throws {
        // Short prompts (1 block) that run on: admitted at once, they grow past the pool together.
        let prompts = ["Once upon a time", "The history of Rome", "In the beginning", "def fibonacci(n):"]
        let maxTokens = 32
        let expected = try Self.expected(prompts, maxTokens: maxTokens)
        // 10 blocks of 8 positions, none shared: each request needs 5 blocks at its end, so they
        // cannot all fit.
        let served = try ServingFixtures.served(ServingConfiguration(blockSize: 8, blockCount: 10, maxRunning: 4,
                                                                     maxBatchTokens: 64, prefixCaching: false, threads: 2))
        let app = Application(router: try ServingFixtures.server(model: served).makeRouter())
        try await app.test(.router) { client in
            let answers = try await Self.concurrently(client, prompts, maxTokens: maxTokens)
            for (i, answer) in answers.enumerated() {
                XCTAssertEqual(answer.text, expected[i].text, "prompt \(i)")
                XCTAssertEqual(answer.completionTokens, expected[i].tokens, "prompt \(i)")
            }
        }
        XCTAssertGreaterThan(served.engine.statistics.preemptions, 0, "the pool was meant to force a preemption: \(served.engine.statistics)")
        await ServingFixtures.drain(served)
    }

    func testAPrefixCacheHitIsReportedAsCachedTokensAndInMetrics() async throws {
        let served = try ServingFixtures.served(ServingConfiguration(blockSize: 16, blockCount: 64, maxRunning: 4, threads: 2))
        let server = try ServingFixtures.server(model: served)
        let app = Application(router: server.makeRouter())
        let first = Self.system + "What is the capital of France?", second = Self.system + "Name a prime number."
        let systemTokens = served.tokenizer.encode(Self.system, special: false).count
        let expected = try Self.expected([second], maxTokens: 8)[0]
        try await app.test(.router) { client in
            let cold = try await Self.complete(client, first, maxTokens: 8)
            XCTAssertEqual(cold.cachedTokens, 0)
            let warm = try await Self.complete(client, second, maxTokens: 8)
            // Every full block of the shared system prompt came from the cache, and nothing else.
            XCTAssertEqual(warm.cachedTokens, systemTokens / 16 * 16)
            XCTAssertGreaterThan(warm.cachedTokens, 0)
            XCTAssertEqual(warm.text, expected.text, "a prefix hit does not change the output")
            try await client.execute(uri: "/metrics", method: .get) { response in
                let line = response.body.text.split(separator: "\n").first { $0.hasPrefix("flash_prefix_cache_hit_tokens_total ") }
                XCTAssertEqual(line.flatMap { Double($0.split(separator: " ")[1]) }, Double(warm.cachedTokens))
            }
        }
        await ServingFixtures.drain(served)
    }

    func testAPromptLargerThanTheKVCacheGets400NamingTheLimit() async throws {
        let served = try ServingFixtures.served(ServingConfiguration(blockSize: 16, blockCount: 2, threads: 2))
        let app = Application(router: try ServingFixtures.server(model: served).makeRouter())
        try await app.test(.router) { client in
            try await client.execute(uri: "/v1/completions", method: .post, headers: [.contentType: "application/json"],
                                     body: jsonBody(["prompt": Array(repeating: 1, count: 40), "max_tokens": 1])) { response in
                let (message, param) = ServerBehaviourTests.error(response, .badRequest)
                XCTAssertEqual(param, "prompt")
                XCTAssertTrue(message.contains("--kv-cache-tokens 32"), message)
                XCTAssertTrue(message.contains("at most 31"), message)
            }
        }
        await ServingFixtures.drain(served)
    }

    /// Prompt lookup and a draft model (the model drafting for itself, so its greedy guesses
    /// are all right) change how many passes the output takes, not the output.
    func testSpeculativeDecodingKeepsGreedyOutput() async throws {
        let prompts = ["Repeat after me: the cat sat on the mat, the cat sat on the mat, the cat sat on the mat, the cat sat on the",
                       "def add(a, b):\n    return a + b\n\ndef add(a, b):\n", "What is the capital of France?"]
        let maxTokens = 16
        let expected = try Self.expected(prompts, maxTokens: maxTokens)
        for method in [SpeculationMethod.ngram, .draft] {
            let served = try ServingFixtures.served(ServingConfiguration(blockSize: 16, blockCount: 64, maxRunning: 4, threads: 2,
                                                                         speculation: method, speculativeTokens: 4),
                                                    draft: method == .draft)
            let app = Application(router: try ServingFixtures.server(model: served).makeRouter())
            try await app.test(.router) { client in
                let answers = try await Self.concurrently(client, prompts, maxTokens: maxTokens)
                for (i, answer) in answers.enumerated() {
                    XCTAssertEqual(answer.text, expected[i].text, "\(method) prompt \(i)")
                    XCTAssertEqual(answer.completionTokens, expected[i].tokens, "\(method) prompt \(i)")
                }
                try await client.execute(uri: "/metrics", method: .get) { response in
                    func value(_ name: String) -> Double? {
                        response.body.text.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ")[1]) }
                    }
                    let proposed = value("flash_speculative_proposed_tokens_total") ?? 0
                    let accepted = value("flash_speculative_accepted_tokens_total") ?? 0
                    XCTAssertGreaterThan(accepted, 0, "\(method)")
                    if method == .draft { XCTAssertEqual(accepted, proposed, "a model drafting for itself is always right") }
                }
            }
            await ServingFixtures.drain(served)
        }
    }
}
