import XCTest
import Foundation
import FlashCore
import FlashAttention
import Transformer

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
