import XCTest
import Foundation
import FlashCore
import ModelFormats

final class TokenizerTests: XCTestCase {
    /// Deterministic generator for the random-text tests (SplitMix64).
    struct TestRandom {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    }

    /// Random text mixing ASCII words and punctuation, whitespace runs, Latin-1, combining
    /// accents, CJK, emoji (with ZWJ sequences and skin-tone modifiers), and astral symbols.
    static func randomText(_ random: inout TestRandom, scalars count: Int) -> String {
        let ranges: [ClosedRange<UInt32>] = [
            0x61...0x7A, 0x41...0x5A, 0x30...0x39, 0x20...0x2F, 0x0A...0x0A, 0x09...0x09,
            0xC0...0xFF, 0x300...0x36F, 0x4E00...0x9FFF, 0x1F600...0x1F64F, 0x1F3FB...0x1F3FF,
            0x200D...0x200D, 0x27...0x27, 0x10400...0x1044F, 0x3000...0x3000,
        ]
        var view = String.UnicodeScalarView()
        for _ in 0..<count {
            let range = ranges[random.below(ranges.count)]
            let value = range.lowerBound + UInt32(random.below(Int(range.upperBound - range.lowerBound) + 1))
            view.append(Unicode.Scalar(value)!)
        }
        return String(view)
    }

    static let english = """
        The attention layer compares every query with every key. It's the heart of the transformer, \
        and FlashAttention computes it in tiles that fit the cache. We'll train a small model; they've \
        seen that the loss falls quickly. Don't forget: 1024 tokens, 12 heads, 64 dims per head!
        The  softmax   of the scores\tweights the values.\n\nThe end.
        """

    // MARK: pre-tokenization

    func testPreTokenizeFollowsGPT2Pattern() {
        XCTAssertEqual(BPETokenizer.preTokenize("Hello world, it's 2024!"),
                       ["Hello", " world", ",", " it", "'s", " 2024", "!"])
        // A whitespace run leaves its last space to the next word; newlines stand alone.
        XCTAssertEqual(BPETokenizer.preTokenize("a   b\n\nc  "), ["a", "  ", " b", "\n\n", "c", "  "])
        XCTAssertEqual(BPETokenizer.preTokenize("we'll they've I'm"), ["we", "'ll", " they", "'ve", " I", "'m"])
        XCTAssertEqual(BPETokenizer.preTokenize("x+=y..."), ["x", "+=", "y", "..."])
        XCTAssertEqual(BPETokenizer.preTokenize("日本語 テキスト"), ["日本語", " テキスト"])
        XCTAssertEqual(BPETokenizer.preTokenize(""), [])
    }

    func testPreTokensConcatenateToTheText() {
        var random = TestRandom(state: 1)
        for _ in 0..<50 {
            let text = Self.randomText(&random, scalars: 200)
            XCTAssertEqual(BPETokenizer.preTokenize(text).joined(), text)
        }
    }

    // MARK: BPE

    /// The independent reference: recount every pair over every word before each merge.
    static func naiveMerges(corpus: String, vocabularySize: Int) -> [BPETokenizer.Merge] {
        var counts: [[Int]: Int] = [:]
        for piece in BPETokenizer.preTokenize(corpus) { counts[piece.utf8.map { Int($0) }, default: 0] += 1 }
        var words = Array(counts.keys)
        let frequencies = words.map { counts[$0]! }
        var merges: [BPETokenizer.Merge] = []
        while 256 + merges.count < vocabularySize {
            var pairCounts: [[Int]: Int] = [:]
            for (word, frequency) in zip(words, frequencies) where word.count > 1 {
                for i in 0..<(word.count - 1) { pairCounts[[word[i], word[i + 1]], default: 0] += frequency }
            }
            guard let best = pairCounts.max(by: { a, b in
                a.value != b.value ? a.value < b.value : (a.key[0], a.key[1]) > (b.key[0], b.key[1])
            }), best.value >= 2 else { break }
            let id = 256 + merges.count
            merges.append(BPETokenizer.Merge(best.key[0], best.key[1]))
            words = words.map { word in
                var result: [Int] = []
                var i = 0
                while i < word.count {
                    if i + 1 < word.count && word[i] == best.key[0] && word[i + 1] == best.key[1] {
                        result.append(id); i += 2
                    } else {
                        result.append(word[i]); i += 1
                    }
                }
                return result
            }
        }
        return merges
    }

    func testTrainingMatchesNaiveRecountReference() throws {
        // Repetitive text with overlapping runs ("aaaa", "lll") and many ties.
        let corpus = Self.english + " aaaa aaa aa banana bandana ananas lll llll " + String(repeating: "the cat sat on the mat. ", count: 7)
        for size in [256, 270, 320, 400] {
            let trained = try BPETokenizer.train(corpus: corpus, vocabularySize: size)
            let reference = Self.naiveMerges(corpus: corpus, vocabularySize: size)
            XCTAssertEqual(trained.merges, reference, "vocabulary size \(size)")
            XCTAssertEqual(trained.vocabularySize, 256 + reference.count)
        }
        // Random multilingual text: many distinct pairs, counts of 2–3, so ties decide most merges.
        var random = TestRandom(state: 11)
        let text = Self.randomText(&random, scalars: 3000)
        XCTAssertEqual(try BPETokenizer.train(corpus: text, vocabularySize: 300).merges,
                       Self.naiveMerges(corpus: text, vocabularySize: 300))
    }

    func testTrainingStopsWhenNoPairRepeats() throws {
        let tokenizer = try BPETokenizer.train(corpus: "ab ab", vocabularySize: 1000)
        // "ab" ×1 and " ab" ×1: the pair (a, b) occurs twice, (space, a) once, then nothing repeats.
        XCTAssertEqual(tokenizer.merges, [BPETokenizer.Merge(97, 98)])
        XCTAssertThrowsError(try BPETokenizer.train(corpus: "x", vocabularySize: 255)) { error in
            XCTAssertEqual((error as? InvalidArgument)?.argument, "vocabularySize")
        }
    }

    func testEncodeAppliesMergesByRankAndCompresses() throws {
        let tokenizer = try BPETokenizer(merges: [.init(97, 98), .init(256, 99), .init(98, 99)])
        // "abc": (a,b) has rank 0 → [ab, c], then (ab, c) rank 1 → [abc]; (b,c) never applies.
        XCTAssertEqual(tokenizer.encode("abc"), [257])
        XCTAssertEqual(tokenizer.encode("bc"), [258])
        XCTAssertEqual(tokenizer.encode("abab"), [256, 256])
        XCTAssertEqual(tokenizer.bytes(of: 257), Array("abc".utf8))
        let trained = try BPETokenizer.train(corpus: String(repeating: Self.english, count: 3), vocabularySize: 400)
        let ids = trained.encode(Self.english)
        XCTAssertLessThan(ids.count, Self.english.utf8.count / 2)
        XCTAssertTrue(ids.allSatisfy { (0..<trained.vocabularySize).contains($0) })
    }

    func testBPERoundTripsArbitraryUnicode() throws {
        var random = TestRandom(state: 7)
        let trainingText = Self.english + Self.randomText(&random, scalars: 4000)
        let tokenizer = try BPETokenizer.train(corpus: trainingText, vocabularySize: 600)
        XCTAssertGreaterThan(tokenizer.merges.count, 100)
        for _ in 0..<100 {
            let text = Self.randomText(&random, scalars: 1 + random.below(300))
            XCTAssertEqual(tokenizer.decode(tokenizer.encode(text)), text)
        }
        for text in ["", "e\u{301}", "👨‍👩‍👧‍👦", "🇫🇷", "\r\n", "漢字かな交じり文", Self.english] {
            XCTAssertEqual(tokenizer.decode(tokenizer.encode(text)), text)
        }
    }

    func testBPEDecodeOfBadIdsDoesNotTrap() throws {
        let tokenizer = try BPETokenizer(merges: [])
        XCTAssertEqual(tokenizer.decode([104, -1, 105, 256]), "h\u{FFFD}i\u{FFFD}")
        XCTAssertEqual(tokenizer.decode([0xE6]), "\u{FFFD}")  // a lone UTF-8 lead byte
        XCTAssertThrowsError(try BPETokenizer(merges: [.init(0, 256)]))
    }

    // MARK: characters

    func testCharTokenizerRoundTripAndUnknowns() {
        let tokenizer = CharTokenizer(corpus: "hello, wörld e\u{301}")
        // Distinct scalars sorted: " ", ",", "d", "e", "h", "l", "o", "r", "w", "ö", U+0301 → ids 1…11.
        XCTAssertEqual(tokenizer.vocabularySize, 12)
        XCTAssertEqual(tokenizer.encode(" ,"), [1, 2])
        XCTAssertEqual(tokenizer.encode("e\u{301}"), [4, 11])
        XCTAssertEqual(tokenizer.decode(tokenizer.encode("hello wörld")), "hello wörld")
        XCTAssertEqual(tokenizer.encode("hex"), [5, 4, CharTokenizer.unknownID])
        XCTAssertEqual(tokenizer.decode([5, 0, 99, -3]), "h\u{FFFD}\u{FFFD}\u{FFFD}")
        var random = TestRandom(state: 3)
        let text = Self.randomText(&random, scalars: 2000)
        let full = CharTokenizer(corpus: text)
        XCTAssertEqual(full.decode(full.encode(text)), text)
    }

    // MARK: saving

    func testSaveAndLoadBothKinds() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tokenizer-tests-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let bpe = try BPETokenizer.train(corpus: Self.english, vocabularySize: 300)
        for tokenizer in [AnyTokenizer.bytePair(bpe), .character(CharTokenizer(corpus: Self.english))] {
            let path = directory.appendingPathComponent("t.json").path
            try tokenizer.save(to: path)
            let loaded = try AnyTokenizer.load(from: path)
            XCTAssertEqual(loaded.vocabularySize, tokenizer.vocabularySize)
            XCTAssertEqual(loaded.encode(Self.english), tokenizer.encode(Self.english))
            XCTAssertEqual(loaded.decode(loaded.encode(Self.english)), Self.english)
        }
        let bad = directory.appendingPathComponent("bad.json").path
        try Data(#"{"kind": "bytePair", "tokenizer": {"merges": [[0, 300]]}}"#.utf8).write(to: URL(fileURLWithPath: bad))
        XCTAssertThrowsError(try AnyTokenizer.load(from: bad)) { error in
            XCTAssertTrue("\(error)".contains("outside"), "\(error)")
        }
        try Data("not json".utf8).write(to: URL(fileURLWithPath: bad))
        XCTAssertThrowsError(try AnyTokenizer.load(from: bad)) { error in
            XCTAssertTrue("\(error)".contains("bad.json"), "\(error)")
        }
        XCTAssertThrowsError(try AnyTokenizer.load(from: directory.appendingPathComponent("missing").path))
    }
}
