import XCTest
import FlashCore
import ModelFormats

/// BERT's tokenisation rules on a tiny hand-made vocabulary, each expectation derived by hand
/// from the rules (the comparison with Hugging Face's tokenizer on the real vocabulary lives in
/// TransformerTests/BertTokenizerTests).
final class WordPieceTokenizerTests: XCTestCase {
    static let vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un", "##aff", "##able", "hello",
                             "world", ",", "!", "a", "##b", "cafe", "东", "京", "x", "##x", "ß", "σ", "##σ"]

    func tokenizer(_ options: WordPieceTokenizer.Options = .init()) throws -> WordPieceTokenizer {
        try WordPieceTokenizer(vocabulary: Self.vocabulary, options: options)
    }

    func testGreedyLongestMatchFirst() throws {
        let t = try tokenizer()
        XCTAssertEqual(t.tokenize("UnAffable"), ["un", "##aff", "##able"])
        // "ab" splits as a + ##b; "abz" cannot finish its split (no "##z"), so the whole word is [UNK].
        XCTAssertEqual(t.tokenize("ab abz"), ["a", "##b", "[UNK]"])
    }

    func testPunctuationAndWhitespaceSplitting() throws {
        let t = try tokenizer()
        XCTAssertEqual(t.tokenize("Hello,World!"), ["hello", ",", "world", "!"])
        XCTAssertEqual(t.tokenize("  hello\t\n world\u{3000}! "), ["hello", "world", "!"])
        // '$' is ASCII punctuation (not Unicode P*), so it is split off and unknown on its own.
        XCTAssertEqual(t.tokenize("hello$world"), ["hello", "[UNK]", "world"])
    }

    func testAccentsCaseAndCleanup() throws {
        let t = try tokenizer()
        XCTAssertEqual(t.tokenize("CAFÉ Café cafe\u{0301}"), ["cafe", "cafe", "cafe"])
        XCTAssertEqual(t.tokenize("hel\u{0007}lo wor\u{200B}ld\u{0000}\u{FFFD}"), ["hello", "world"])
        // Lower-casing is per character: a final capital sigma becomes σ, not ς.
        XCTAssertEqual(t.tokenize("ΣΣ"), ["σ", "##σ"])
        let cased = try tokenizer(.init(lowercase: false))
        XCTAssertEqual(cased.options.stripAccents, false)
        XCTAssertEqual(cased.tokenize("Hello hello"), ["[UNK]", "hello"])
        XCTAssertEqual(cased.tokenize("café"), ["[UNK]"])
    }

    func testChineseCharactersBecomeWords() throws {
        XCTAssertEqual(try tokenizer().tokenize("东京"), ["东", "京"])
        XCTAssertEqual(try tokenizer(.init(splitChineseCharacters: false)).tokenize("东京"), ["[UNK]"])
    }

    func testOverlongWordIsUnknown() throws {
        let t = try tokenizer()
        XCTAssertEqual(t.tokenize(String(repeating: "x", count: 100)), ["x"] + Array(repeating: "##x", count: 99))
        XCTAssertEqual(t.tokenize(String(repeating: "x", count: 101) + " hello"), ["[UNK]", "hello"])
    }

    func testSpecialTokensWrittenInTheText() throws {
        let t = try tokenizer()
        XCTAssertEqual(t.tokenize("hello[SEP]world [MASK]"), ["hello", "[SEP]", "world", "[MASK]"])
        // Matching is case-sensitive, as for Hugging Face's added tokens.
        XCTAssertEqual(t.tokenize("[sep]"), ["[UNK]", "[UNK]", "[UNK]"])
    }

    func testEncodeAddsClassAndSeparatorAndTruncates() throws {
        let t = try tokenizer()
        XCTAssertEqual(try t.encode("hello world"), [2, 8, 9, 3])
        XCTAssertEqual(try t.encode("hello world hello", maxLength: 4), [2, 8, 9, 3])
        XCTAssertEqual(try t.encode("", maxLength: 2), [2, 3])
        XCTAssertThrowsError(try t.encode("hello", maxLength: 1)) { XCTAssertEqual(($0 as? InvalidArgument)?.argument, "maxLength") }
    }

    func testBadVocabularies() throws {
        XCTAssertThrowsError(try WordPieceTokenizer(vocabulary: ["[PAD]", "[UNK]", "[SEP]"])) {
            XCTAssertEqual($0 as? WordPieceTokenizerError, .missingSpecialToken("[CLS]"))
        }
        XCTAssertThrowsError(try WordPieceTokenizer(vocabularyPath: "/nonexistent/vocab.txt"))
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("wordpiece-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let empty = directory.appendingPathComponent("vocab.txt")
        try Data().write(to: empty)
        XCTAssertThrowsError(try WordPieceTokenizer(vocabularyPath: empty.path)) {
            XCTAssertEqual($0 as? WordPieceTokenizerError, .emptyVocabulary(path: empty.path))
        }
        try (Self.vocabulary.joined(separator: "\n") + "\n").write(to: empty, atomically: true, encoding: .utf8)
        try #"{"do_lower_case": "yes"}"#.write(to: directory.appendingPathComponent("tokenizer_config.json"), atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try WordPieceTokenizer(directory: directory.path)) {
            guard case .invalidConfig = $0 as? WordPieceTokenizerError else { return XCTFail("\($0)") }
        }
        try #"{"do_lower_case": false, "strip_accents": null}"#.write(to: directory.appendingPathComponent("tokenizer_config.json"), atomically: true, encoding: .utf8)
        let loaded = try WordPieceTokenizer(directory: directory.path)
        XCTAssertEqual(loaded.tokens, Self.vocabulary)
        XCTAssertEqual(loaded.options, .init(lowercase: false, stripAccents: false))
    }
}
