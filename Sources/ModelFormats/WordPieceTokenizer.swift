import Foundation
import FlashCore

/// Errors loading a WordPiece tokenizer. Each names the file and what was wrong.
public enum WordPieceTokenizerError: Error, CustomStringConvertible, Equatable {
    /// `vocab.txt` or `tokenizer_config.json` could not be read.
    case io(path: String, reason: String)
    /// `vocab.txt` has no tokens.
    case emptyVocabulary(path: String)
    /// The vocabulary lacks `[UNK]`, `[CLS]`, `[SEP]` or `[PAD]`.
    case missingSpecialToken(String)
    /// `tokenizer_config.json` is not valid.
    case invalidConfig(path: String, reason: String)

    /// What is wrong with the vocabulary or configuration.
    public var description: String {
        switch self {
        case .io(let path, let reason): "wordpiece: \(path): \(reason)"
        case .emptyVocabulary(let path): "wordpiece: \(path) holds no tokens (expected one token per line)"
        case .missingSpecialToken(let token): "wordpiece: the vocabulary has no \(token) token"
        case .invalidConfig(let path, let reason): "wordpiece: \(path): \(reason)"
        }
    }
}

/// BERT's tokenizer: the basic tokenizer (text cleanup, CJK splitting, accent stripping,
/// lower-casing, whitespace and punctuation splitting) followed by greedy longest-match-first
/// WordPiece over a `vocab.txt`. Behaves like Hugging Face's `BertTokenizerFast`
/// (`BertNormalizer` + `BertPreTokenizer` + `WordPiece` + the `[CLS] … [SEP]` template).
public struct WordPieceTokenizer: Sendable {
    /// Which parts of BERT's normalisation run (the fields of `tokenizer_config.json`).
    public struct Options: Sendable, Equatable {
        /// Lower-case every character (`do_lower_case`).
        public var lowercase: Bool
        /// Decompose (NFD) and drop non-spacing marks (`strip_accents`; `nil` there means
        /// "same as lowercase", as in BERT).
        public var stripAccents: Bool
        /// Put spaces around CJK ideographs so each becomes its own word (`tokenize_chinese_chars`).
        public var splitChineseCharacters: Bool
        /// Drop NUL, U+FFFD and control/format characters; map whitespace to a space.
        public var cleanText: Bool
        /// Longer words (in Unicode scalars) become a single `[UNK]` (`max_input_chars_per_word`).
        public var maxCharactersPerWord: Int

        /// BERT's defaults unless given; `stripAccents` follows `lowercase` when nil.
        public init(lowercase: Bool = true, stripAccents: Bool? = nil, splitChineseCharacters: Bool = true,
                    cleanText: Bool = true, maxCharactersPerWord: Int = 100) {
            self.lowercase = lowercase
            self.stripAccents = stripAccents ?? lowercase
            self.splitChineseCharacters = splitChineseCharacters
            self.cleanText = cleanText
            self.maxCharactersPerWord = maxCharactersPerWord
        }
    }

    /// Token strings by id (the lines of `vocab.txt`).
    public let tokens: [String]
    /// Ids by the token's UTF-8 bytes (compared byte for byte, as Hugging Face does: Swift's
    /// `String` equality would merge canonically equivalent spellings such as "é" and "e\u{301}").
    let idsByBytes: [[UInt8]: Int]
    /// How text is normalised and split before the vocabulary lookup.
    public let options: Options
    /// Id of `[UNK]`.
    public let unknownID: Int
    /// Id of `[CLS]`, which starts every encoded sequence.
    public let classID: Int
    /// Id of `[SEP]`, which ends every encoded sequence.
    public let separatorID: Int
    /// Id of `[PAD]`.
    public let paddingID: Int
    /// Special tokens written literally in the input text (e.g. `[SEP]`) map straight to their
    /// ids, as Hugging Face's added tokens do; matched case-sensitively before normalisation.
    public let specialTokens: [String]

    static let continuationPrefix = "##"

    /// A tokenizer over `vocabulary` (index = token id).
    public init(vocabulary: [String], options: Options = Options()) throws {
        var ids: [[UInt8]: Int] = [:]
        ids.reserveCapacity(vocabulary.count)
        // Later duplicates win, as in BERT's `load_vocab`.
        for (index, token) in vocabulary.enumerated() { ids[Array(token.utf8)] = index }
        func id(_ token: String) throws -> Int {
            guard let id = ids[Array(token.utf8)] else { throw WordPieceTokenizerError.missingSpecialToken(token) }
            return id
        }
        self.tokens = vocabulary
        self.idsByBytes = ids
        self.options = options
        unknownID = try id("[UNK]")
        classID = try id("[CLS]")
        separatorID = try id("[SEP]")
        paddingID = try id("[PAD]")
        specialTokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"].filter { ids[Array($0.utf8)] != nil }
    }

    /// The id of `token` (exact bytes), or `nil` when it is not in the vocabulary.
    public func id(of token: String) -> Int? { idsByBytes[Array(token.utf8)] }

    /// Reads `vocab.txt` (one token per line, id = line number).
    public init(vocabularyPath: String, options: Options = Options()) throws {
        let text: String
        do { text = try String(contentsOfFile: vocabularyPath, encoding: .utf8) } catch {
            throw WordPieceTokenizerError.io(path: vocabularyPath, reason: error.localizedDescription)
        }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if lines.last == "" { lines.removeLast() }
        guard !lines.isEmpty else { throw WordPieceTokenizerError.emptyVocabulary(path: vocabularyPath) }
        try self.init(vocabulary: lines, options: options)
    }

    /// Loads `vocab.txt` from a model directory, with the options of its
    /// `tokenizer_config.json` when present (BERT's defaults otherwise).
    public init(directory: String) throws {
        let configPath = (directory as NSString).appendingPathComponent("tokenizer_config.json")
        var options = Options()
        if FileManager.default.fileExists(atPath: configPath) {
            options = try Self.options(fromConfigAt: configPath)
        }
        try self.init(vocabularyPath: (directory as NSString).appendingPathComponent("vocab.txt"), options: options)
    }

    /// The fields of `tokenizer_config.json` that shape BERT's normalisation.
    struct Config: Decodable {
        var do_lower_case: Bool?
        var strip_accents: Bool?
        var tokenize_chinese_chars: Bool?
    }

    static func options(fromConfigAt path: String) throws -> Options {
        let config: Config
        do {
            config = try JSONDecoder().decode(Config.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw WordPieceTokenizerError.invalidConfig(path: path, reason: "expected a JSON object with optional boolean do_lower_case, strip_accents, tokenize_chinese_chars: \(error)")
        }
        return Options(lowercase: config.do_lower_case ?? true, stripAccents: config.strip_accents,
                       splitChineseCharacters: config.tokenize_chinese_chars ?? true)
    }

    /// The WordPiece tokens of `text`, without `[CLS]`/`[SEP]` and without truncation.
    public func tokenize(_ text: String) -> [String] {
        wordPieceIDs(text).map { tokens[$0] }
    }

    /// `[CLS] tokens [SEP]` ids, the tokens truncated so that the whole sequence is at most
    /// `maxLength` long (the tail is dropped, as Hugging Face's truncation does).
    public func encode(_ text: String, maxLength: Int? = nil) throws -> [Int] {
        var pieces = wordPieceIDs(text)
        if let maxLength {
            try InvalidArgument.require(maxLength >= 2, "maxLength", expected: "≥ 2 (room for [CLS] and [SEP])", got: "\(maxLength)")
            if pieces.count > maxLength - 2 { pieces.removeLast(pieces.count - (maxLength - 2)) }
        }
        return [classID] + pieces + [separatorID]
    }

    /// WordPiece ids of `text`: special tokens split out first, the rest normalised,
    /// pre-tokenised into words and each word split greedily into the longest vocabulary pieces.
    func wordPieceIDs(_ text: String) -> [Int] {
        let scalars = Array(text.unicodeScalars)
        var result: [Int] = []
        var textStart = 0
        func flushText(upTo end: Int) {
            guard textStart < end else { return }
            for word in Self.preTokenize(normalize(scalars[textStart..<end])) { appendPieces(of: word, to: &result) }
        }
        var i = 0
        while i < scalars.count {
            if scalars[i] == "[", let (id, length) = specialToken(at: i, in: scalars) {
                flushText(upTo: i)
                result.append(id)
                i += length
                textStart = i
            } else {
                i += 1
            }
        }
        flushText(upTo: scalars.count)
        return result
    }

    /// The longest special token spelled exactly at `position`, with its length in scalars.
    func specialToken(at position: Int, in scalars: [Unicode.Scalar]) -> (id: Int, length: Int)? {
        var best: (id: Int, length: Int)?
        for token in specialTokens {
            let tokenScalars = Array(token.unicodeScalars)
            guard position + tokenScalars.count <= scalars.count,
                  scalars[position..<(position + tokenScalars.count)].elementsEqual(tokenScalars),
                  tokenScalars.count > (best?.length ?? 0) else { continue }
            best = (idsByBytes[Array(token.utf8)]!, tokenScalars.count)
        }
        return best
    }

    /// Greedy longest-match-first split of one word; a word with no full split, or longer than
    /// `maxCharactersPerWord` scalars, becomes one `[UNK]`.
    func appendPieces(of word: ArraySlice<Unicode.Scalar>, to result: inout [Int]) {
        if word.count > options.maxCharactersPerWord {
            result.append(unknownID)
            return
        }
        let mark = result.count
        var start = word.startIndex
        var candidate: [UInt8] = []
        while start < word.endIndex {
            var end = word.endIndex
            var found: Int?
            while start < end {
                candidate.removeAll(keepingCapacity: true)
                if start > word.startIndex { candidate.append(contentsOf: Self.continuationPrefix.utf8) }
                for scalar in word[start..<end] { candidate.append(contentsOf: scalar.utf8) }
                if let id = idsByBytes[candidate] { found = id; break }
                end -= 1
            }
            guard let found else {
                result.removeSubrange(mark...)
                result.append(unknownID)
                return
            }
            result.append(found)
            start = end
        }
    }
}
