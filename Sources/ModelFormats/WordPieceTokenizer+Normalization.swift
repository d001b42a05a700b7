import Foundation

/// BERT's basic tokenizer, in Hugging Face's order: clean the text, space out CJK ideographs,
/// strip accents (NFD, drop non-spacing marks), lower-case, then split into words on
/// whitespace and around every punctuation character.
extension WordPieceTokenizer {
    /// The normalised scalars of `text` (`BertNormalizer`).
    func normalize(_ text: ArraySlice<Unicode.Scalar>) -> [Unicode.Scalar] {
        var cleaned: [Unicode.Scalar] = []
        cleaned.reserveCapacity(text.count)
        var isASCII = true
        for scalar in text {
            if options.cleanText {
                if scalar.value == 0 || scalar.value == 0xFFFD || Self.isControl(scalar) { continue }
                if Self.isWhitespace(scalar) { cleaned.append(" "); continue }
            }
            if options.splitChineseCharacters && Self.isChineseCharacter(scalar) {
                cleaned.append(" ")
                cleaned.append(scalar)
                cleaned.append(" ")
            } else {
                cleaned.append(scalar)
            }
            if !scalar.isASCII { isASCII = false }
        }
        if isASCII {
            if options.lowercase {
                for i in cleaned.indices where cleaned[i].value >= 65 && cleaned[i].value <= 90 {
                    cleaned[i] = Unicode.Scalar(cleaned[i].value + 32)!
                }
            }
            return cleaned
        }
        var result = cleaned
        if options.stripAccents {
            var string = String()
            string.unicodeScalars.append(contentsOf: cleaned)
            result = string.decomposedStringWithCanonicalMapping.unicodeScalars
                .filter { $0.properties.generalCategory != .nonspacingMark }
        }
        if options.lowercase {
            // Scalar by scalar (no context rules such as the final sigma), as Rust's
            // `char::to_lowercase` does in Hugging Face's normaliser.
            var lowered: [Unicode.Scalar] = []
            lowered.reserveCapacity(result.count)
            for scalar in result {
                if scalar.isASCII || !scalar.properties.changesWhenLowercased {
                    lowered.append(scalar.value >= 65 && scalar.value <= 90 ? Unicode.Scalar(scalar.value + 32)! : scalar)
                } else {
                    lowered.append(contentsOf: scalar.properties.lowercaseMapping.unicodeScalars)
                }
            }
            result = lowered
        }
        return result
    }

    /// Words of normalised text (`BertPreTokenizer`): runs of non-space, non-punctuation
    /// scalars, and every punctuation scalar as a word of its own.
    static func preTokenize(_ scalars: [Unicode.Scalar]) -> [ArraySlice<Unicode.Scalar>] {
        var words: [ArraySlice<Unicode.Scalar>] = []
        var start = 0
        for (i, scalar) in scalars.enumerated() {
            if isWhitespace(scalar) {
                if start < i { words.append(scalars[start..<i]) }
                start = i + 1
            } else if isPunctuation(scalar) {
                if start < i { words.append(scalars[start..<i]) }
                words.append(scalars[i...i])
                start = i + 1
            }
        }
        if start < scalars.count { words.append(scalars[start...]) }
        return words
    }

    /// Unicode White_Space (Rust's `char::is_whitespace`), which includes tab, CR and LF.
    static func isWhitespace(_ scalar: Unicode.Scalar) -> Bool {
        scalar.properties.isWhitespace
    }

    /// Control, format, surrogate, private-use and unassigned scalars (category C*), except
    /// tab, CR and LF, which count as whitespace.
    static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        if scalar == "\t" || scalar == "\n" || scalar == "\r" { return false }
        switch scalar.properties.generalCategory {
        case .control, .format, .surrogate, .privateUse, .unassigned: return true
        default: return false
        }
    }

    /// ASCII punctuation (all non-alphanumeric printable ASCII, e.g. `$`, `+`, `^`, `` ` ``)
    /// or any Unicode punctuation category P*.
    static func isPunctuation(_ scalar: Unicode.Scalar) -> Bool {
        let v = scalar.value
        if (33...47).contains(v) || (58...64).contains(v) || (91...96).contains(v) || (123...126).contains(v) { return true }
        switch scalar.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
             .initialPunctuation, .finalPunctuation, .otherPunctuation: return true
        default: return false
        }
    }

    /// The CJK Unified Ideographs blocks (and compatibility ideographs) that BERT splits
    /// into single-character words; the ranges of Hugging Face's `is_chinese_char`.
    /// Hangul, Hiragana and Katakana are not included, as in BERT.
    static func isChineseCharacter(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F,
             0x2B740...0x2B81F, 0x2B920...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F: return true
        default: return false
        }
    }
}
