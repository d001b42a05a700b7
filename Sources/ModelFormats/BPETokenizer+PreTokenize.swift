extension BPETokenizer {
    /// The classes a pre-token run is made of (GPT-2's `\p{L}`, `\p{N}`, `\s`, and the rest).
    private enum ScalarClass { case letter, number, whitespace, other }

    private static func scalarClass(_ scalar: Unicode.Scalar) -> ScalarClass {
        if scalar.properties.isWhitespace { return .whitespace }
        switch scalar.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return .letter
        case .decimalNumber, .letterNumber, .otherNumber: return .number
        default: return .other
        }
    }

    private static let contractions: [[Unicode.Scalar]] = ["s", "t", "m", "d", "re", "ve", "ll"].map { Array($0.unicodeScalars) }

    /// Splits `text` the way GPT-2's pattern
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+` does:
    /// an apostrophe contraction; else an optional single leading space plus a run of letters,
    /// of digits, or of other non-space symbols; else a whitespace run, which leaves its last
    /// space to the word that follows. The pieces concatenate back to `text` exactly.
    public static func preTokenize(_ text: String) -> [String] {
        let scalars = Array(text.unicodeScalars)
        return pieceRanges(scalars).map { String(String.UnicodeScalarView(scalars[$0])) }
    }

    /// The UTF-8 bytes of each pre-token.
    static func preTokenizeBytes(_ text: String) -> [[UInt8]] {
        let scalars = Array(text.unicodeScalars)
        let bytes = Array(text.utf8)
        // byteOffset[i]: where scalar i starts in the UTF-8.
        var byteOffset = [Int](repeating: 0, count: scalars.count + 1)
        for (index, scalar) in scalars.enumerated() {
            let length = scalar.value < 0x80 ? 1 : scalar.value < 0x800 ? 2 : scalar.value < 0x10000 ? 3 : 4
            byteOffset[index + 1] = byteOffset[index] + length
        }
        return pieceRanges(scalars).map { Array(bytes[byteOffset[$0.lowerBound]..<byteOffset[$0.upperBound]]) }
    }

    private static func pieceRanges(_ scalars: [Unicode.Scalar]) -> [Range<Int>] {
        let classes = scalars.map(scalarClass)
        var pieces: [Range<Int>] = []
        var start = 0
        let count = scalars.count
        while start < count {
            var end = start + 1
            if scalars[start] == "'", let length = contractionLength(scalars, after: start) {
                end = start + 1 + length
            } else if classes[start] != .whitespace || (scalars[start] == " " && start + 1 < count && classes[start + 1] != .whitespace) {
                let runStart = classes[start] == .whitespace ? start + 1 : start
                let runClass = classes[runStart]
                end = runStart + 1
                while end < count && classes[end] == runClass { end += 1 }
            } else {
                while end < count && classes[end] == .whitespace { end += 1 }
                // Leave a final space to the word after the run (GPT-2's `\s+(?!\S)`).
                if end < count && end - start > 1 && scalars[end - 1] == " " { end -= 1 }
            }
            pieces.append(start..<end)
            start = end
        }
        return pieces
    }

    private static func contractionLength(_ scalars: [Unicode.Scalar], after apostrophe: Int) -> Int? {
        for suffix in contractions where apostrophe + suffix.count < scalars.count {
            if Array(scalars[(apostrophe + 1)...(apostrophe + suffix.count)]) == suffix { return suffix.count }
        }
        return nil
    }
}
