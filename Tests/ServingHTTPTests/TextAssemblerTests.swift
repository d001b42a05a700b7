import XCTest
import ServingHTTP

/// Stream text assembly without a model: UTF-8 boundaries and stop strings, fed byte by byte
/// and in every split of the input, against the plain answer computed on the whole text.
final class TextAssemblerTests: XCTestCase {
    /// Feeds `text`'s bytes in the given piece sizes; returns the pieces sent and whether it stopped.
    func feed(_ text: String, pieces sizes: [Int], stops: [String]) -> ([String], Bool) {
        var assembler = TextAssembler(stops: stops)
        let bytes = Array(text.utf8)
        var sent: [String] = []
        var start = 0
        for size in sizes where start < bytes.count {
            let end = min(bytes.count, start + size)
            sent.append(assembler.append(Array(bytes[start..<end])))
            start = end
            if assembler.stopped { break }
        }
        if !assembler.stopped { sent.append(assembler.flush()) }
        return (sent, assembler.stopped)
    }

    func testMultiByteCharactersAreNeverSplit() {
        let text = "aé日本語🙂z"
        for size in 1...5 {
            let (pieces, stopped) = feed(text, pieces: Array(repeating: size, count: 40), stops: [])
            XCTAssertFalse(stopped)
            XCTAssertEqual(pieces.joined(), text, "piece size \(size)")
            for piece in pieces { XCTAssertFalse(piece.contains("\u{FFFD}"), "size \(size): \(pieces)") }
        }
        // Byte by byte: the 4-byte emoji comes out whole, once.
        let (pieces, _) = feed("🙂", pieces: [1, 1, 1, 1], stops: [])
        XCTAssertEqual(pieces, ["", "", "", "🙂", ""])
    }

    func testStopStringsCutTheTextInEverySplit() {
        let text = "Hello, world. STOP here ünd more"
        let stops = ["STOP", "never"]
        let expected = "Hello, world. "
        for size in 1...8 {
            let (pieces, stopped) = feed(text, pieces: Array(repeating: size, count: 60), stops: stops)
            XCTAssertTrue(stopped, "size \(size)")
            XCTAssertEqual(pieces.joined(), expected, "size \(size)")
            // Nothing of the stop string was ever sent.
            XCTAssertFalse(pieces.joined().contains("S"), "size \(size)")
        }
        // The earliest of several stop strings wins; a multi-byte stop string works too.
        XCTAssertEqual(feed("abc ünd xyz", pieces: [3, 3, 3, 3], stops: ["xyz", "ünd"]).0.joined(), "abc ")
        // A held prefix that does not complete a stop string is sent at the end.
        XCTAssertEqual(feed("the end ST", pieces: [4, 4, 4], stops: ["STOP"]).0.joined(), "the end ST")
    }

    func testTrailingIncompleteCharacterIsReplacedAtTheEnd() {
        var assembler = TextAssembler(stops: [])
        XCTAssertEqual(assembler.append([0x61, 0xE6, 0x97]), "a")
        XCTAssertEqual(assembler.flush(), "\u{FFFD}")
    }
}
