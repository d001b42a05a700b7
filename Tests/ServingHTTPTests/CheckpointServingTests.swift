import Foundation
import XCTest
import FlashCore
import Hummingbird
import HummingbirdTesting
import ModelFormats
import Serving
import ServingHTTP
import Transformer

/// `flash serve --checkpoint`: a model trained here, saved as `flash train` saves it, loaded by
/// `ServedModel.load` and served by the same batching engine as a GGUF model.
final class CheckpointServingTests: XCTestCase {
    /// 61 distinct characters: a character tokenizer of 62 tokens (one unknown).
    static let alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456 ."

    /// Writes a small rotary/RMSNorm/SwiGLU model (weights scaled up so that logits are far from
    /// ties) with a character tokenizer into a fresh directory.
    static func writeCheckpoint(vocabulary: String = alphabet, seed: UInt64 = 5) throws -> (directory: String, model: TransformerModel) {
        let tokenizer = CharTokenizer(corpus: vocabulary)
        let config = TransformerConfig(layers: 2, heads: 4, kvHeads: 2, width: 64, mlpWidth: 320, context: 96,
                                       vocabularySize: tokenizer.vocabularySize, positionEncoding: .rotary, norm: .rmsNorm,
                                       activation: .swiglu, bias: false, tiedEmbeddings: false)
        let model = try TransformerModel(config: config, seed: seed)
        for i in 0..<model.parameterCount { model.parameters[i] *= 6 }
        let directory = NSTemporaryDirectory() + "flash-serve-checkpoint-\(UUID().uuidString)"
        try Checkpoint.save(model: model, tokenizerJSON: JSONEncoder().encode(AnyTokenizer.character(tokenizer)), to: directory)
        model.threads = 2
        return (directory, model)
    }

    func testACheckpointIsServedByTheBatchingEngineWithTheGreedyOutputOfItsOwnForwardPass() async throws {
        let (directory, model) = try Self.writeCheckpoint()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let served = try ServedModel.load(.checkpoint(directory), configuration: ServingConfiguration(
            blockSize: 4, blockCount: 64, maxRunning: 4, maxBatchTokens: 16, threads: 2))
        XCTAssertEqual(served.id, URL(fileURLWithPath: directory).lastPathComponent)
        let prompts = ["hello world", "The cat sat", "abc abc abc abc", "Z"]
        // Reference: the model's own contiguous forward pass, recomputing the whole context each
        // token (`flash generate --no-cache`), no engine and no paged cache.
        let expected: [String] = try prompts.map { prompt in
            let ids = served.tokenizer.encode(prompt, special: false)
            let tokens = try Generator(model: model, useCache: false).generate(prompt: ids, maxTokens: 10, choose: Generator.argmax)
            return tokens.map { served.tokenizer.spelling(of: $0) }.joined()
        }
        let app = Application(router: try ServingFixtures.server(model: served).makeRouter())
        try await app.test(.router) { client in
            let answers = try await BatchingEndpointTests.concurrently(client, prompts, maxTokens: 10)
            XCTAssertEqual(answers.map(\.text), expected)
            XCTAssertEqual(answers.map(\.completionTokens), Array(repeating: 10, count: prompts.count))
        }
        await ServingFixtures.drain(served)
    }

    func testADraftWithAnotherVocabularyIsRefusedNamingTheFlag() throws {
        let (target, model) = try Self.writeCheckpoint()
        let (draft, _) = try Self.writeCheckpoint(vocabulary: "abc")
        defer {
            try? FileManager.default.removeItem(atPath: target)
            try? FileManager.default.removeItem(atPath: draft)
        }
        XCTAssertThrowsError(try ServedModel.load(.checkpoint(target), draft: (.checkpoint(draft), "--draft-checkpoint"),
                                                  configuration: ServingConfiguration(blockCount: 8, threads: 2, speculation: .draft))) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains("--draft-checkpoint"), message)
            XCTAssertTrue(message.contains("\(model.config.vocabularySize) tokens"), message)
            XCTAssertTrue(message.contains("4 tokens"), message)
        }
    }
}
