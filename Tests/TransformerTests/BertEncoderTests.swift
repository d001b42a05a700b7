import XCTest
import Foundation
import FlashCore
import FlashAttention
import Transformer
import ModelFormats

/// MiniLM sentence embeddings against sentence-transformers' (fixture from
/// scripts/make_bert_fixtures.py), one text at a time and as one padded batch.
final class BertEncoderTests: XCTestCase {
    nonisolated(unsafe) static var cachedEncoder: BertSentenceEncoder?

    func encoder() throws -> BertSentenceEncoder {
        if let encoder = Self.cachedEncoder { return encoder }
        let encoder = try BertSentenceEncoder(directory: try BertTestSupport.modelDirectory())
        Self.cachedEncoder = encoder
        return encoder
    }

    static func cosine(_ a: [Float], _ b: [Float]) -> Double {
        var (dot, na, nb) = (0.0, 0.0, 0.0)
        for (x, y) in zip(a, b) { dot += Double(x) * Double(y); na += Double(x) * Double(x); nb += Double(y) * Double(y) }
        return dot / (na.squareRoot() * nb.squareRoot())
    }

    func testLoadsSentenceTransformersConfiguration() throws {
        let encoder = try encoder()
        XCTAssertEqual(encoder.maxSequenceLength, 256)
        XCTAssertEqual(encoder.pooling, BertPooling(mean: true))
        XCTAssertTrue(encoder.normalizes)
        XCTAssertEqual(encoder.dimension, 384)
        XCTAssertEqual(encoder.model.configuration.layerCount, 6)
    }

    func testEachSentenceMatchesSentenceTransformers() throws {
        let encoder = try encoder()
        let reference = try BertTestSupport.reference()
        for item in reference.embedding_cases {
            XCTAssertEqual(try encoder.tokenize(item.text), item.ids, item.text)
            let embedding = try encoder.embed([item.text])[0]
            let similarity = Self.cosine(embedding, item.embedding)
            XCTAssertGreaterThanOrEqual(similarity, 0.9999, "text: \(item.text.prefix(60))")
            let norm = embedding.reduce(0) { $0 + Double($1) * Double($1) }.squareRoot()
            XCTAssertEqual(norm, 1, accuracy: 1e-5)
        }
    }
}

extension BertEncoderTests {
    func testPaddedBatchMatchesSentenceTransformers() throws {
        let encoder = try encoder()
        let reference = try BertTestSupport.reference()
        // One batch: lengths from 3 to 256 tokens, so most rows are padding for most texts.
        let embeddings = try encoder.embed(reference.embedding_cases.map(\.text), batchSize: 64)
        for (item, embedding) in zip(reference.embedding_cases, embeddings) {
            XCTAssertGreaterThanOrEqual(Self.cosine(embedding, item.embedding), 0.9999, "text: \(item.text.prefix(60))")
        }
    }

    func testMalformedModelDirectoriesThrowClearErrors() throws {
        let source = try BertTestSupport.modelDirectory()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("bert-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        func path(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }
        XCTAssertThrowsError(try BertSentenceEncoder(directory: directory)) {
            XCTAssertEqual($0 as? BertModelError, .missingFile(path("config.json")))
        }
        try #"{"model_type": "bert", "hidden_size": "big"}"#.write(toFile: path("config.json"), atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try BertSentenceEncoder(directory: directory)) {
            guard case .invalidConfig(let file, _) = $0 as? BertModelError else { return XCTFail("\($0)") }
            XCTAssertEqual(file, path("config.json"))
        }
        var config = try String(contentsOfFile: (source as NSString).appendingPathComponent("config.json"), encoding: .utf8)
        try config.replacingOccurrences(of: "\"num_attention_heads\": 12", with: "\"num_attention_heads\": 7")
            .write(toFile: path("config.json"), atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try BertSentenceEncoder(directory: directory)) {
            XCTAssertTrue("\($0)".contains("not a multiple of num_attention_heads 7"), "\($0)")
        }
        // The real config with a weights file that lacks a tensor, then one with a wrong shape.
        config = config.replacingOccurrences(of: "\"num_hidden_layers\": 6", with: "\"num_hidden_layers\": 1")
        try config.write(toFile: path("config.json"), atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try BertSentenceEncoder(directory: directory)) {
            XCTAssertEqual($0 as? BertModelError, .missingFile(path("model.safetensors")))
        }
        let full = try Safetensors.read(path: (source as NSString).appendingPathComponent("model.safetensors"),
                                        including: { $0.hasPrefix("embeddings.") && !$0.hasSuffix("position_ids") || $0.hasPrefix("encoder.layer.0.") }).tensors
        var missing = full
        missing["encoder.layer.0.attention.self.key.bias"] = nil
        try Safetensors.write(missing, to: path("model.safetensors"))
        XCTAssertThrowsError(try BertSentenceEncoder(directory: directory)) {
            XCTAssertEqual($0 as? BertModelError, .missingTensor("encoder.layer.0.attention.self.key.bias"))
        }
        var wrong = full
        wrong["encoder.layer.0.intermediate.dense.weight"] = try Tensor(zeros: [384, 1536])
        try Safetensors.write(wrong, to: path("model.safetensors"))
        XCTAssertThrowsError(try BertSentenceEncoder(directory: directory)) {
            XCTAssertEqual($0 as? BertModelError, .wrongShape(tensor: "encoder.layer.0.intermediate.dense.weight", expected: [1536, 384], got: [384, 1536]))
        }
        try Data("not safetensors".utf8).write(to: URL(fileURLWithPath: path("model.safetensors")))
        XCTAssertThrowsError(try BertSentenceEncoder(directory: directory)) { XCTAssertTrue($0 is SafetensorsError, "\($0)") }
        // Valid weights but no vocabulary.
        try Safetensors.write(full, to: path("model.safetensors"))
        XCTAssertThrowsError(try BertSentenceEncoder(directory: directory)) {
            guard case .io = $0 as? WordPieceTokenizerError else { return XCTFail("\($0)") }
        }
    }
}
