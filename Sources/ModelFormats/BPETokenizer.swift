import FlashCore

/// Byte-level byte-pair encoding (GPT-2 style).
///
/// Ids 0…255 are the 256 byte values; id 256 + r is the token made by merge r (`merges[r]`,
/// a pair of earlier ids). Text is first split into **pre-tokens** (`preTokenize`: words with
/// their leading space, number runs, punctuation runs, whitespace runs, English contractions),
/// and merges never cross a pre-token boundary. Because every token is a byte string and the
/// bytes of all pre-tokens concatenate back to the text's UTF-8, `decode(encode(s)) == s` for
/// every `String` s — emoji, CJK, combining accents included.
public struct BPETokenizer: Tokenizer, Codable, Equatable, Sendable {
    /// A merge: the token `left` followed by the token `right` becomes one new token.
    public struct Merge: Codable, Equatable, Hashable, Sendable {
        /// The first token of the pair.
        public let left: Int
        /// The token that follows it.
        public let right: Int
        /// The merge of `left` followed by `right`.
        public init(_ left: Int, _ right: Int) {
            self.left = left
            self.right = right
        }
        public init(from decoder: Decoder) throws {
            var container = try decoder.unkeyedContainer()
            self.init(try container.decode(Int.self), try container.decode(Int.self))
        }
        public func encode(to encoder: Encoder) throws {
            var container = encoder.unkeyedContainer()
            try container.encode(left)
            try container.encode(right)
        }
        var key: UInt64 { UInt64(left) << 32 | UInt64(right) }
    }

    /// Merges in rank order (rank r makes id 256 + r).
    public let merges: [Merge]
    /// The bytes of every id.
    private let tokenBytes: [[UInt8]]
    /// Rank of each merge, keyed by `Merge.key`.
    private let rankOfPair: [UInt64: Int]

    /// A tokenizer applying `merges`; throws `TokenizerError.invalid` unless merge r combines
    /// ids below 256 + r.
    public init(merges: [Merge]) throws {
        for (rank, merge) in merges.enumerated() {
            let limit = 256 + rank
            guard (0..<limit).contains(merge.left), (0..<limit).contains(merge.right) else {
                throw TokenizerError.invalid(reason: "merge \(rank) = (\(merge.left), \(merge.right)) refers to an id outside 0..<\(limit)")
            }
        }
        self.init(uncheckedMerges: merges)
    }

    private init(uncheckedMerges merges: [Merge]) {
        self.merges = merges
        var tokenBytes = (0..<256).map { [UInt8($0)] }
        var rankOfPair: [UInt64: Int] = [:]
        for (rank, merge) in merges.enumerated() {
            tokenBytes.append(tokenBytes[merge.left] + tokenBytes[merge.right])
            rankOfPair[merge.key] = rankOfPair[merge.key] ?? rank
        }
        self.tokenBytes = tokenBytes
        self.rankOfPair = rankOfPair
    }

    /// The 256 byte tokens plus one token per merge.
    public var vocabularySize: Int { 256 + merges.count }

    /// The bytes token `id` stands for (empty for an id outside the vocabulary).
    public func bytes(of id: Int) -> [UInt8] {
        (0..<tokenBytes.count).contains(id) ? tokenBytes[id] : []
    }

    /// Token ids of `text`: pre-tokenised, then each pre-token's bytes merged in rank order.
    public func encode(_ text: String) -> [Int] {
        var ids: [Int] = []
        ids.reserveCapacity(text.utf8.count / 3)
        for piece in BPETokenizer.preTokenizeBytes(text) {
            ids.append(contentsOf: encode(piece: piece))
        }
        return ids
    }

    /// Applies merges to one pre-token by rank: repeatedly merge every occurrence (left to
    /// right) of the adjacent pair whose merge was learned first — the order training made them.
    private func encode(piece: [UInt8]) -> [Int] {
        var symbols = piece.map { Int($0) }
        while symbols.count > 1 {
            var bestRank = Int.max
            for position in 0..<(symbols.count - 1) {
                if let rank = rankOfPair[UInt64(symbols[position]) << 32 | UInt64(symbols[position + 1])], rank < bestRank {
                    bestRank = rank
                }
            }
            if bestRank == Int.max { break }
            symbols = BPETokenizer.apply(merges[bestRank], id: 256 + bestRank, to: symbols)
        }
        return symbols
    }

    /// Replaces each non-overlapping occurrence of `merge`, scanning left to right, by `id`.
    static func apply<T: BinaryInteger>(_ merge: Merge, id: T, to symbols: [T]) -> [T] {
        var result: [T] = []
        result.reserveCapacity(symbols.count)
        var position = 0
        while position < symbols.count {
            if position + 1 < symbols.count, symbols[position] == T(merge.left), symbols[position + 1] == T(merge.right) {
                result.append(id)
                position += 2
            } else {
                result.append(symbols[position])
                position += 1
            }
        }
        return result
    }

    /// Decodes ids to bytes, then bytes to text. Ids outside the vocabulary decode to U+FFFD;
    /// a byte sequence that is not valid UTF-8 (possible only for ids not made by `encode`,
    /// e.g. sampled ones) decodes with U+FFFD in place of the bad bytes.
    public func decode(_ ids: [Int]) -> String {
        var bytes: [UInt8] = []
        for id in ids {
            if (0..<tokenBytes.count).contains(id) { bytes.append(contentsOf: tokenBytes[id]) } else {
                bytes.append(contentsOf: [0xEF, 0xBF, 0xBD])
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private enum CodingKeys: String, CodingKey { case merges }

    /// Decodes `{"merges": [[left, right], ...]}`, validating every merge.
    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        try self.init(merges: try container.decode([Merge].self, forKey: .merges))
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(merges, forKey: .merges)
    }

    /// Tokenizers with the same merges are the same tokenizer.
    public static func == (lhs: BPETokenizer, rhs: BPETokenizer) -> Bool { lhs.merges == rhs.merges }
}
