import Foundation
import XCTest
import Hummingbird
import HummingbirdTesting
import ModelFormats
import Transformer
import Serving
import ServingHTTP

/// The test model (SmolLM2-135M Q4_1 from scripts/fetch_models.sh), loaded once, the batching
/// engines the servers run on it, and a direct decoding loop over `LlamaModel` (no scheduler,
/// no engine) that the server's answers are checked against.
enum ServingFixtures {
    static let modelName = "SmolLM2-135M-Instruct.Q4_1.gguf"
    static var cacheFolder: String {
        ProcessInfo.processInfo.environment["FLASH_MODEL_CACHE"] ?? (NSHomeDirectory() + "/.cache/flash-models")
    }

    nonisolated(unsafe) private static var loaded: (LlamaModel, GGUFTokenizer)?
    nonisolated(unsafe) private static var sharedModel: ServedModel?
    nonisolated(unsafe) private static var sharedEmbedder: Embedder?

    /// The model and tokenizer; skips the test when the model has not been fetched.
    static func model() throws -> (model: LlamaModel, tokenizer: GGUFTokenizer) {
        if let loaded { return loaded }
        let path = cacheFolder + "/" + modelName
        guard FileManager.default.fileExists(atPath: path) else {
            throw XCTSkip("\(modelName) not found in \(cacheFolder); run `bash scripts/fetch_models.sh` to fetch it")
        }
        let file = try GGUFFile(path: path)
        let result = (try LlamaModel(file: file, threads: 2), try GGUFTokenizer(file: file))
        loaded = result
        return result
    }

    /// One served model shared by the tests: a batching engine of 8 slots over a 2048-position
    /// pool (tests that need other limits, or clean counters, make their own with `served`).
    static func engine() throws -> ServedModel {
        if let sharedModel { return sharedModel }
        let shared = try Self.served(ServingConfiguration(blockSize: 16, blockCount: 128, maxRunning: 8, maxWaiting: 8, threads: 2))
        sharedModel = shared
        return shared
    }

    /// A served model with its own engine over the shared `LlamaModel` (`draft`: the model
    /// drafts for itself). The engines share the model's buffers, so a test lets its own engine
    /// go idle (`drain`) before it ends.
    static func served(_ configuration: ServingConfiguration, draft: Bool = false, id: String = "smollm2-test") throws -> ServedModel {
        let (model, tokenizer) = try model()
        let engine = try ServingEngine(model: model, draft: draft ? model : nil, configuration: configuration)
        return ServedModel(id: id, engine: engine, tokenizer: GGUFServingTokenizer(tokenizer: tokenizer))
    }

    /// Waits (up to 60 s) until `served`'s engine has no request left, then stops it.
    static func drain(_ served: ServedModel) async {
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            let s = served.engine.statistics
            if s.runningRequests + s.waitingRequests == 0 { break }
            try? await Task.sleep(for: .milliseconds(10))
        }
        await served.engine.shutdown(gracePeriod: .zero)
    }

    static func embedder() throws -> Embedder {
        if let sharedEmbedder { return sharedEmbedder }
        let directory = cacheFolder + "/all-MiniLM-L6-v2"
        guard FileManager.default.fileExists(atPath: directory + "/config.json") else {
            throw XCTSkip("all-MiniLM-L6-v2 not found in \(cacheFolder); run `bash scripts/fetch_models.sh`")
        }
        let embedder = try Embedder(directory: directory, threads: 2)
        sharedEmbedder = embedder
        return embedder
    }

    /// A ready server over `model` (default: the shared one), for HummingbirdTesting's `.router` mode (no
    /// socket, so no disconnect detection).
    static func server(apiKey: String? = nil, model: ServedModel? = nil, embedder: Embedder? = nil) throws -> OpenAIServer {
        let slot = ModelSlot()
        slot.finishLoading(model: try model ?? Self.engine(), embedder: embedder)
        var options = ServerOptions(apiKey: apiKey)
        options.cancelOnClientDisconnect = false
        return OpenAIServer(slot: slot, options: options)
    }

    /// A direct pass of the model's paged forward (what `flash generate --gguf` runs, through
    /// its scheduler): `tokens` appended at `start` to one sequence whose cache is `cache`,
    /// blocks 0, 1, 2, … in order; the logits of the last token.
    static func pagedForward(_ model: LlamaModel, _ tokens: [Int], start: Int, cache: PagedKVCache) throws -> [Float] {
        try model.forward(PagedBatch(sequences: [
            .init(tokens: tokens, start: start, blockTable: (0..<Int32(cache.blockCount)).map { $0 }, logitRows: 1),
        ]), cache: cache)
    }

    /// A paged cache for one sequence of up to `capacity` tokens.
    static func pagedCache(_ model: LlamaModel, capacity: Int) throws -> PagedKVCache {
        try model.makePagedCache(blockCount: (capacity + 15) / 16, blockSize: 16)
    }

    /// Greedy continuation computed directly with the model's paged forward pass (what `flash
    /// generate --temperature 0` runs): the prompt in one pass, then argmax one token at a time,
    /// ending at an end-of-generation token. Returns the text and the token count (a stop token
    /// counts).
    static func greedy(_ prompt: [Int], maxTokens: Int) throws -> (text: String, tokens: [Int], stopped: Bool) {
        let (model, tokenizer) = try model()
        let cache = try pagedCache(model, capacity: prompt.count + maxTokens)
        var logits = try pagedForward(model, prompt, start: 0, cache: cache)
        var tokens: [Int] = []
        var bytes: [UInt8] = []
        while tokens.count < maxTokens {
            let next = logits.indices.max { logits[$0] < logits[$1] || (logits[$0] == logits[$1] && $0 > $1) }!
            tokens.append(next)
            if tokenizer.endOfGenerationTokens.contains(next) { return (String(decoding: bytes, as: UTF8.self), tokens, true) }
            bytes += tokenizer.bytes(of: next, skipSpecial: true)
            if tokens.count == maxTokens { break }
            logits = try pagedForward(model, [next], start: prompt.count + tokens.count - 1, cache: cache)
        }
        return (String(decoding: bytes, as: UTF8.self), tokens, false)
    }
}

/// JSON helpers for response bodies.
extension ByteBuffer {
    var json: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(readableBytesView))) as? [String: Any] ?? [:]
    }
    var text: String { String(decoding: readableBytesView, as: UTF8.self) }
}

/// Server-Sent Events of a streamed body: the `data:` payloads in order. Fails the test on any
/// framing error (a line that is not `data: …`, an event not ended by a blank line).
func sseEvents(_ body: String, file: StaticString = #filePath, line: UInt = #line) -> [String] {
    var events: [String] = []
    let blocks = body.components(separatedBy: "\n\n")
    XCTAssertEqual(blocks.last, "", "the stream must end with a blank line", file: file, line: line)
    for block in blocks.dropLast() {
        XCTAssertTrue(block.hasPrefix("data: ") && !block.contains("\n"), "bad SSE event: \(block.debugDescription)", file: file, line: line)
        events.append(String(block.dropFirst(6)))
    }
    return events
}

func jsonBody(_ object: [String: Any]) -> ByteBuffer {
    ByteBuffer(bytes: [UInt8](try! JSONSerialization.data(withJSONObject: object)))
}
