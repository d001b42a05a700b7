/// GPT-2's reversible map from bytes to printable characters: printable Latin-1 bytes map to
/// themselves, the other 68 bytes to U+0100 onwards, in byte order.
enum GGUFByteAlphabet {
    static let characters: [Character] = {
        var printable = Array(33...126) + Array(161...172) + Array(174...255)
        var codes = printable
        var extra = 0
        for b in 0..<256 where !printable.contains(b) {
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
        }
        var table = [Character](repeating: " ", count: 256)
        for (b, c) in zip(printable, codes) { table[b] = Character(Unicode.Scalar(UInt32(c))!) }
        return table
    }()

    static let bytes: [UInt32: UInt8] = {
        var map: [UInt32: UInt8] = [:]
        for (b, c) in characters.enumerated() { map[c.unicodeScalars.first!.value] = UInt8(b) }
        return map
    }()

    @inline(__always) static func character(for byte: UInt8) -> Character { characters[Int(byte)] }
    @inline(__always) static func byte(for scalar: Unicode.Scalar) -> UInt8? { bytes[scalar.value] }
}

/// Splits text into the pieces BPE merges within, as the model's own tokenizer does.
///
/// - `gpt2`-style (GPT-2's regex):
///   `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
/// - `smollm`, `starcoder`, `refact`, `codeshell`, `command-r`, `exaone`, `minerva`: every
///   number character is first split off on its own (HF's `Digits(individual_digits)`), then
///   GPT-2's regex runs on the text between.
/// Other names fall back to GPT-2's regex.
enum GGUFPreTokenizer {
    static let digitSplitting: Set<String> = ["smollm", "starcoder", "refact", "codeshell", "command-r", "exaone", "minerva"]

    static func split(_ text: String, style: String) -> [String] {
        let scalars = Array(text.unicodeScalars)
        var pieces: [String] = []
        if digitSplitting.contains(style) {
            var start = 0
            for (i, s) in scalars.enumerated() where isNumber(s) {
                gpt2(scalars[start..<i], into: &pieces)
                pieces.append(String(s))
                start = i + 1
            }
            gpt2(scalars[start..<scalars.count], into: &pieces)
        } else {
            gpt2(scalars[0..<scalars.count], into: &pieces)
        }
        return pieces
    }

    static func isLetter(_ s: Unicode.Scalar) -> Bool {
        switch s.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: true
        default: false
        }
    }

    static func isNumber(_ s: Unicode.Scalar) -> Bool {
        switch s.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: true
        default: false
        }
    }

    static func isSpace(_ s: Unicode.Scalar) -> Bool { s.properties.isWhitespace }

    /// GPT-2's regex, matched by hand (leftmost alternative wins, as in a backtracking regex).
    static func gpt2(_ s: ArraySlice<Unicode.Scalar>, into pieces: inout [String]) {
        var i = s.startIndex
        let end = s.endIndex
        func emit(_ from: Int, _ to: Int) {
            var piece = String.UnicodeScalarView()
            piece.append(contentsOf: s[from..<to])
            pieces.append(String(piece))
        }
        func run(from j: Int, _ predicate: (Unicode.Scalar) -> Bool) -> Int {
            var k = j
            while k < end && predicate(s[k]) { k += 1 }
            return k
        }
        let isOther: (Unicode.Scalar) -> Bool = { !isSpace($0) && !isLetter($0) && !isNumber($0) }
        while i < end {
            let c = s[i]
            // 's 't 're 've 'm 'll 'd
            if c == "'" && i + 1 < end {
                let n = s[i + 1]
                if n == "s" || n == "t" || n == "m" || n == "d" { emit(i, i + 2); i += 2; continue }
                if i + 2 < end {
                    let pair = String(String.UnicodeScalarView([n, s[i + 2]]))
                    if pair == "re" || pair == "ve" || pair == "ll" { emit(i, i + 3); i += 3; continue }
                }
            }
            let body = (c == " " && i + 1 < end) ? i + 1 : i
            if body < end {
                let b = s[body]
                if isLetter(b) { let k = run(from: body, isLetter); emit(i, k); i = k; continue }
                if isNumber(b) { let k = run(from: body, isNumber); emit(i, k); i = k; continue }
                if isOther(b) { let k = run(from: body, isOther); emit(i, k); i = k; continue }
            }
            // Whitespace: \s+(?!\S) takes the run but leaves its last character when a
            // non-space follows; a single space before non-space falls through to \s+.
            let k = run(from: i, isSpace)
            if k < end && k - i > 1 {
                emit(i, k - 1); i = k - 1
            } else {
                emit(i, max(k, i + 1)); i = max(k, i + 1)
            }
        }
    }
}
