import XCTest
import Foundation
import ModelFormats

/// Where the tests find the MiniLM model (fetched by scripts/fetch_models.sh) and the
/// sentence-transformers reference outputs (made by scripts/make_bert_fixtures.py).
enum BertTestSupport {
    struct TokenizerCase: Decodable { var text: String; var ids: [Int] }
    struct EmbeddingCase: Decodable { var text: String; var ids: [Int]; var embedding: [Float] }
    struct Reference: Decodable {
        var max_seq_length: Int
        var tokenizer_cases: [TokenizerCase]
        var embedding_cases: [EmbeddingCase]
    }

    static func reference() throws -> Reference {
        let url = try XCTUnwrap(Bundle.module.resourceURL?.appendingPathComponent("Fixtures/bert/minilm_reference.json"))
        return try JSONDecoder().decode(Reference.self, from: Data(contentsOf: url))
    }

    /// The model directory, or an XCTSkip naming where it was looked for and how to fetch it.
    static func modelDirectory() throws -> String {
        let cache = ProcessInfo.processInfo.environment["FLASH_MODEL_CACHE"]
            ?? (NSHomeDirectory() as NSString).appendingPathComponent(".cache/flash-models")
        let directory = (cache as NSString).appendingPathComponent("all-MiniLM-L6-v2")
        guard FileManager.default.fileExists(atPath: (directory as NSString).appendingPathComponent("model.safetensors")) else {
            throw XCTSkip("all-MiniLM-L6-v2 not found in \(directory); run scripts/fetch_models.sh (or set FLASH_MODEL_CACHE)")
        }
        return directory
    }
}

/// The WordPiece tokenizer on MiniLM's real vocabulary against Hugging Face's tokenizer
/// (ids recorded by sentence-transformers in the fixture).
final class BertTokenizerTests: XCTestCase {
    func testTokenIDsMatchHuggingFace() throws {
        let reference = try BertTestSupport.reference()
        let tokenizer = try WordPieceTokenizer(directory: try BertTestSupport.modelDirectory())
        XCTAssertGreaterThan(reference.tokenizer_cases.count, 30)
        for item in reference.tokenizer_cases {
            let ids = try tokenizer.encode(item.text, maxLength: reference.max_seq_length)
            XCTAssertEqual(ids, item.ids, "text: \(item.text.debugDescription)")
        }
    }
}
