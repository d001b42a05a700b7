import Foundation

/// The byte-level BPE tokenizer stored in a GGUF file (`tokenizer.ggml.model = "gpt2"`): the
/// vocabulary (`tokenizer.ggml.tokens`), merge rules (`tokenizer.ggml.merges`, "left right" in
/// priority order), token types (`tokenizer.ggml.token_type`) and special token ids.
///
/// Encoding: special tokens (types control and user-defined) are matched literally first; the
/// text between them is split into pieces by the pre-tokenizer the file names
/// (`tokenizer.ggml.pre`); each piece's UTF-8 bytes are mapped to GPT-2's printable byte alphabet
/// and merged by rank. When the vocabulary has a token for every byte (GPT-2's has), any UTF-8
/// text encodes and decodes back to itself; bytes a vocabulary lacks (SmolLM's has no token for
/// six control characters) are dropped, as Hugging Face's and llama.cpp's tokenizers drop them.
///
/// Thread-safe: encoding memoises pieces in a cache behind a lock (`flash serve` encodes
/// concurrent requests with one tokenizer; unguarded, the cache crashed the server).
public final class GGUFTokenizer: @unchecked Sendable {
    /// ggml token types.
    public enum TokenType: Int32, Sendable {
        /// The values of `tokenizer.ggml.token_type`.
        case undefined = 0, normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6
    }

    /// Token strings by id (`tokenizer.ggml.tokens`).
    public let tokens: [String]
    /// The type of each token (`tokenizer.ggml.token_type`).
    public let tokenTypes: [TokenType]
    /// Beginning-of-sequence token id, if the model has one.
    public let bosToken: Int?
    /// End-of-sequence token id, if the model has one.
    public let eosToken: Int?
    /// Token ids that end generation (eos plus `<|im_end|>`-style end-of-turn tokens).
    public let endOfGenerationTokens: Set<Int>
    /// Whether encoding a prompt starts it with `bosToken` (`tokenizer.ggml.add_bos_token`).
    public let addBOS: Bool
    /// The pre-tokenizer's name (`tokenizer.ggml.pre`), which decides how text is split
    /// before merging.
    public let preTokenizer: String
    /// The model's Jinja chat template (`tokenizer.chat_template`), if it has one.
    public let chatTemplate: String?

    // Keyed by exact UTF-8 bytes: Swift's String equality is canonical equivalence, under
    // which e.g. ";" equals U+037E, which would conflate distinct tokens.
    private let tokenIDs: [[UInt8]: Int]
    private let mergeRanks: [[UInt8]: Int]
    /// Special tokens longest first, for literal matching.
    private let specialTokens: [(text: [UInt8], id: Int)]
    private var cache: [[UInt8]: [Int]] = [:]
    /// Guards `cache`; the merging itself runs outside it.
    private let cacheLock = NSLock()

    /// Reads the tokenizer from `file`'s metadata.
    public convenience init(file: GGUFFile) throws {
        let model = try file.string("tokenizer.ggml.model")
        guard model == "gpt2" else {
            throw GGUFError.wrongMetadataType(key: "tokenizer.ggml.model", expected: "\"gpt2\" (byte-level BPE), got \"\(model)\"")
        }
        guard let tokenValues = file.metadata["tokenizer.ggml.tokens"]?.array else {
            throw GGUFError.missingMetadata("tokenizer.ggml.tokens")
        }
        var tokens: [String] = []
        tokens.reserveCapacity(tokenValues.count)
        for value in tokenValues {
            guard let s = value.string else { throw GGUFError.wrongMetadataType(key: "tokenizer.ggml.tokens", expected: "an array of strings") }
            tokens.append(s)
        }
        var types = [TokenType](repeating: .normal, count: tokens.count)
        if let typeValues = file.metadata["tokenizer.ggml.token_type"]?.array {
            guard typeValues.count == tokens.count else {
                throw GGUFError.wrongMetadataType(key: "tokenizer.ggml.token_type", expected: "one type per token (\(tokens.count))")
            }
            for (i, value) in typeValues.enumerated() {
                types[i] = value.integer.flatMap { TokenType(rawValue: Int32(clamping: $0)) } ?? .normal
            }
        }
        var merges: [String: Int] = [:]
        if let mergeValues = file.metadata["tokenizer.ggml.merges"]?.array {
            merges.reserveCapacity(mergeValues.count)
            for (rank, value) in mergeValues.enumerated() {
                guard let s = value.string else { throw GGUFError.wrongMetadataType(key: "tokenizer.ggml.merges", expected: "an array of strings") }
                if merges[s] == nil { merges[s] = rank }
            }
        }
        func tokenID(_ key: String) -> Int? {
            guard let id = file.metadata[key]?.integer, id >= 0, id < tokens.count else { return nil }
            return id
        }
        let chatTemplate = file.metadata["tokenizer.chat_template"]?.string
        self.init(tokens: tokens, tokenTypes: types, mergeRanks: merges,
                  bos: tokenID("tokenizer.ggml.bos_token_id"), eos: tokenID("tokenizer.ggml.eos_token_id"),
                  addBOS: file.metadata["tokenizer.ggml.add_bos_token"]?.bool ?? false,
                  preTokenizer: file.metadata["tokenizer.ggml.pre"]?.string ?? "default",
                  chatTemplate: chatTemplate)
    }

    /// A tokenizer from its parts (`mergeRanks` maps "left right" to its priority, lower first).
    public init(tokens: [String], tokenTypes: [TokenType], mergeRanks: [String: Int], bos: Int?, eos: Int?,
                addBOS: Bool, preTokenizer: String, chatTemplate: String?) {
        self.tokens = tokens
        self.tokenTypes = tokenTypes
        var ranks: [[UInt8]: Int] = [:]
        ranks.reserveCapacity(mergeRanks.count)
        for (merge, rank) in mergeRanks { ranks[Array(merge.utf8)] = rank }
        self.mergeRanks = ranks
        bosToken = bos
        eosToken = eos
        self.addBOS = addBOS
        self.preTokenizer = preTokenizer
        self.chatTemplate = chatTemplate
        var ids: [[UInt8]: Int] = [:]
        ids.reserveCapacity(tokens.count)
        for (i, t) in tokens.enumerated() where ids[Array(t.utf8)] == nil { ids[Array(t.utf8)] = i }
        tokenIDs = ids
        specialTokens = tokens.indices
            .filter { tokenTypes[$0] == .control || tokenTypes[$0] == .userDefined }
            .filter { !tokens[$0].isEmpty }
            .map { (Array(tokens[$0].utf8), $0) }
            .sorted { $0.text.count > $1.text.count }
        var ends = Set<Int>()
        if let eos { ends.insert(eos) }
        for name in ["<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>"] {
            if let id = ids[Array(name.utf8)] { ends.insert(id) }
        }
        endOfGenerationTokens = ends
    }

    /// Number of tokens.
    public var vocabularySize: Int { tokens.count }

    /// The id of the token spelled `text` exactly, if any.
    public func id(of text: String) -> Int? { tokenIDs[Array(text.utf8)] }

    /// Token ids for `text`. With `parseSpecial`, literal special-token strings (e.g.
    /// `<|im_start|>`) become their ids; otherwise they are encoded as plain text. Prepends BOS
    /// when `addBOS` is set and the file asks for it.
    public func encode(_ text: String, parseSpecial: Bool = true, addBOS: Bool? = nil) -> [Int] {
        var result: [Int] = []
        if addBOS ?? self.addBOS, let bosToken { result.append(bosToken) }
        let bytes = Array(text.utf8)
        var start = 0, i = 0
        func flush(_ end: Int) {
            if end > start {
                let segment = String(decoding: bytes[start..<end], as: UTF8.self)
                for piece in GGUFPreTokenizer.split(segment, style: preTokenizer) { result += bpe(piece) }
            }
        }
        if parseSpecial && !specialTokens.isEmpty {
            while i < bytes.count {
                var matched: (text: [UInt8], id: Int)?
                for special in specialTokens where special.text[0] == bytes[i] && special.text.count <= bytes.count - i {
                    if bytes[i..<(i + special.text.count)].elementsEqual(special.text) { matched = special; break }
                }
                if let matched {
                    flush(i)
                    result.append(matched.id)
                    i += matched.text.count
                    start = i
                } else {
                    i += 1
                }
            }
        }
        flush(bytes.count)
        return result
    }

    /// BPE-merges one pre-tokenized piece. Symbols are the UTF-8 bytes of byte-alphabet strings.
    private func bpe(_ piece: String) -> [Int] {
        let key = Array(piece.utf8)
        if let cached = cacheLock.withLock({ cache[key] }) { return cached }
        var symbols = key.map { Array(String(GGUFByteAlphabet.character(for: $0)).utf8) }
        while symbols.count > 1 {
            var best = Int.max, bestIndex = -1
            for j in 0..<(symbols.count - 1) {
                if let rank = mergeRanks[symbols[j] + [0x20] + symbols[j + 1]], rank < best {
                    best = rank
                    bestIndex = j
                }
            }
            if bestIndex < 0 { break }
            // Merge every occurrence of this pair, left to right.
            let (left, right) = (symbols[bestIndex], symbols[bestIndex + 1])
            var next: [[UInt8]] = []
            next.reserveCapacity(symbols.count)
            var j = 0
            while j < symbols.count {
                if j + 1 < symbols.count && symbols[j] == left && symbols[j + 1] == right {
                    next.append(left + right)
                    j += 2
                } else {
                    next.append(symbols[j])
                    j += 1
                }
            }
            symbols = next
        }
        var ids: [Int] = []
        for symbol in symbols {
            if let id = tokenIDs[symbol] {
                ids.append(id)
            } else {
                // A merged symbol with no token: fall back to its bytes (a byte the vocabulary
                // lacks is dropped).
                for scalar in String(decoding: symbol, as: UTF8.self).unicodeScalars {
                    if let id = tokenIDs[Array(String(scalar).utf8)] { ids.append(id) }
                }
            }
        }
        cacheLock.withLock {
            if cache.count < 100_000 { cache[key] = ids }
        }
        return ids
    }

    /// The raw bytes a token stands for (special tokens: their text, or nothing when
    /// `skipSpecial`). Ids outside the vocabulary decode to nothing.
    public func bytes(of token: Int, skipSpecial: Bool = false) -> [UInt8] {
        guard token >= 0 && token < tokens.count else { return [] }
        switch tokenTypes[token] {
        case .control, .unused:
            return skipSpecial ? [] : Array(tokens[token].utf8)
        case .userDefined:
            return Array(tokens[token].utf8)
        default:
            var result: [UInt8] = []
            for scalar in tokens[token].unicodeScalars {
                if let byte = GGUFByteAlphabet.byte(for: scalar) {
                    result.append(byte)
                } else {
                    result += Array(String(scalar).utf8)
                }
            }
            return result
        }
    }

    /// The text of `tokens` (invalid UTF-8 sequences, e.g. a cut-off character, become U+FFFD).
    public func decode(_ tokens: [Int], skipSpecial: Bool = false) -> String {
        String(decoding: tokens.flatMap { bytes(of: $0, skipSpecial: skipSpecial) }, as: UTF8.self)
    }
}
