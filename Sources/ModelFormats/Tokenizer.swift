import Foundation

/// Turns text into token ids and back. Every tokenizer in this module round-trips: for any
/// `String` s, `decode(encode(s)) == s` (for `CharTokenizer` only when every character of s was
/// in the corpus it was built from; see its unknown-character policy).
public protocol Tokenizer {
    /// Number of distinct ids; every id `encode` returns lies in `0..<vocabularySize`.
    var vocabularySize: Int { get }
    /// The ids of `text`.
    func encode(_ text: String) -> [Int]
    /// The text of `ids`. Ids outside `0..<vocabularySize` decode to U+FFFD (the replacement
    /// character) rather than trapping, so a sampler bug never crashes a demo.
    func decode(_ ids: [Int]) -> String
}

/// Errors loading a saved tokenizer.
public enum TokenizerError: Error, CustomStringConvertible, Equatable {
    /// The file could not be read or written.
    case io(path: String, reason: String)
    /// The file is not a tokenizer this module can read.
    case malformed(path: String, reason: String)
    /// The tokenizer's contents are inconsistent (e.g. a merge of unknown tokens).
    case invalid(reason: String)

    /// What went wrong, naming the file or token.
    public var description: String {
        switch self {
        case .io(let path, let reason): "tokenizer: \(path): \(reason)"
        case .malformed(let path, let reason): "tokenizer: \(path) is not a saved tokenizer: \(reason)"
        case .invalid(let reason): "tokenizer: \(reason)"
        }
    }
}

/// Any of this module's tokenizers, in one Codable value: what a checkpoint stores next to the
/// model so that the model's ids mean the same text when it is loaded again.
///
/// JSON form: `{"kind": "character", "tokenizer": {...}}` or `{"kind": "bytePair", "tokenizer": {...}}`.
public enum AnyTokenizer: Codable, Tokenizer, Sendable {
    /// A character-level tokenizer.
    case character(CharTokenizer)
    /// A byte-level BPE tokenizer.
    case bytePair(BPETokenizer)

    private enum CodingKeys: String, CodingKey { case kind, tokenizer }
    private enum Kind: String, Codable { case character, bytePair }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        switch try container.decode(Kind.self, forKey: .kind) {
        case .character: self = .character(try container.decode(CharTokenizer.self, forKey: .tokenizer))
        case .bytePair: self = .bytePair(try container.decode(BPETokenizer.self, forKey: .tokenizer))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .character(let tokenizer):
            try container.encode(Kind.character, forKey: .kind)
            try container.encode(tokenizer, forKey: .tokenizer)
        case .bytePair(let tokenizer):
            try container.encode(Kind.bytePair, forKey: .kind)
            try container.encode(tokenizer, forKey: .tokenizer)
        }
    }

    private var wrapped: Tokenizer {
        switch self {
        case .character(let tokenizer): tokenizer
        case .bytePair(let tokenizer): tokenizer
        }
    }

    /// The wrapped tokenizer's vocabulary size.
    public var vocabularySize: Int { wrapped.vocabularySize }
    /// The wrapped tokenizer's ids for `text`.
    public func encode(_ text: String) -> [Int] { wrapped.encode(text) }
    /// The wrapped tokenizer's text for `ids`.
    public func decode(_ ids: [Int]) -> String { wrapped.decode(ids) }

    /// Writes the tokenizer as JSON to `path` (atomically).
    public func save(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = try encoder.encode(self)
        do { try data.write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
            throw TokenizerError.io(path: path, reason: error.localizedDescription)
        }
    }

    /// Reads a tokenizer written by `save(to:)`; throws `TokenizerError` naming the file and
    /// the problem for an unreadable or malformed file.
    public static func load(from path: String) throws -> AnyTokenizer {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw TokenizerError.io(path: path, reason: error.localizedDescription)
        }
        do { return try JSONDecoder().decode(AnyTokenizer.self, from: data) } catch let error as TokenizerError {
            throw error
        } catch {
            throw TokenizerError.malformed(path: path, reason: "\(error)")
        }
    }
}
