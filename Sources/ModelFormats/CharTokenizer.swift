/// A character-level tokenizer over **Unicode scalars** (code points), not `Character`s
/// (grapheme clusters): an "é" written as e + U+0301 is two tokens, and an emoji family is
/// several. Scalars keep the vocabulary small and make the round trip exact: a `String` is
/// rebuilt bit-for-bit from its scalars, whereas grapheme clusters would give every
/// combination of base + accents its own id.
///
/// Ids: 0 is reserved for **unknown** scalars (those not seen in the corpus the tokenizer was
/// built from); it decodes to U+FFFD, so text with unseen characters does not round-trip, but
/// never fails. Ids 1… are the corpus's distinct scalars in ascending code-point order, which
/// makes the vocabulary a pure function of the corpus's character set.
public struct CharTokenizer: Tokenizer, Codable, Equatable, Sendable {
    /// The id every scalar outside the vocabulary maps to.
    public static let unknownID = 0
    /// What the unknown id decodes to.
    public static let unknownScalar: Unicode.Scalar = "\u{FFFD}"

    /// Code points of ids 1…, ascending.
    public let scalars: [UInt32]
    private let idOfScalar: [UInt32: Int]

    /// The vocabulary of `corpus`'s distinct scalars.
    public init(corpus: String) {
        self.init(uncheckedScalars: Set(corpus.unicodeScalars.map(\.value)).sorted())
    }

    private init(uncheckedScalars scalars: [UInt32]) {
        self.scalars = scalars
        var idOfScalar: [UInt32: Int] = [:]
        for (index, value) in scalars.enumerated() { idOfScalar[value] = index + 1 }
        self.idOfScalar = idOfScalar
    }

    /// The corpus's distinct scalars plus one id for unknown ones.
    public var vocabularySize: Int { scalars.count + 1 }

    /// One id per Unicode scalar of `text` (unknown scalars get the unknown id).
    public func encode(_ text: String) -> [Int] {
        text.unicodeScalars.map { idOfScalar[$0.value] ?? CharTokenizer.unknownID }
    }

    /// The scalars the ids stand for, concatenated.
    public func decode(_ ids: [Int]) -> String {
        var view = String.UnicodeScalarView()
        for id in ids {
            if id >= 1 && id <= scalars.count, let scalar = Unicode.Scalar(scalars[id - 1]) {
                view.append(scalar)
            } else {
                view.append(CharTokenizer.unknownScalar)
            }
        }
        return String(view)
    }

    private enum CodingKeys: String, CodingKey { case scalars }

    /// Decodes `{"scalars": [code points]}`; rejects values that are not Unicode scalars,
    /// and duplicates or unsorted lists (which would make ids ambiguous).
    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let scalars = try container.decode([UInt32].self, forKey: .scalars)
        for (index, value) in scalars.enumerated() {
            guard Unicode.Scalar(value) != nil else {
                throw TokenizerError.invalid(reason: "scalars[\(index)] = \(value) is not a Unicode scalar value")
            }
            guard index == 0 || scalars[index - 1] < value else {
                throw TokenizerError.invalid(reason: "scalars must be strictly ascending; scalars[\(index)] = \(value)")
            }
        }
        self.init(uncheckedScalars: scalars)
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(scalars, forKey: .scalars)
    }

    /// Tokenizers with the same alphabet are the same tokenizer.
    public static func == (lhs: CharTokenizer, rhs: CharTokenizer) -> Bool { lhs.scalars == rhs.scalars }
}
