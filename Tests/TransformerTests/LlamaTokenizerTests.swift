import Foundation
import XCTest
import ModelFormats
import Transformer

/// The GGUF's byte-level BPE tokenizer against Hugging Face's tokenizer built from the same
/// metadata and llama.cpp's (fixture), plus round trips of arbitrary UTF-8.
final class LlamaTokenizerTests: XCTestCase {
    func testIDsMatchTransformers() throws {
        let (_, _, tokenizer) = try LlamaFixtures.model()
        let fixture = try LlamaFixtures.json("tokenizer")
        for c in fixture["cases"] as! [[String: Any]] {
            let text = c["text"] as! String
            XCTAssertEqual(tokenizer.encode(text), c["ids"] as! [Int], "ids of \(text.debugDescription)")
            if let llamaCpp = c["llamacpp_ids"] as? [Int] {
                XCTAssertEqual(tokenizer.encode(text), llamaCpp, "llama.cpp's ids of \(text.debugDescription)")
            }
        }
    }

    func testChatTemplateMatchesTransformers() throws {
        let (_, _, tokenizer) = try LlamaFixtures.model()
        let chat = try LlamaFixtures.json("tokenizer")["chat"] as! [String: Any]
        let prompt = try tokenizer.applyChatTemplate([ChatMessage(role: "user", content: chat["user"] as! String)])
        XCTAssertEqual(prompt, chat["prompt"] as! String)
        XCTAssertEqual(tokenizer.encode(prompt), chat["ids"] as! [Int])
        XCTAssertTrue(tokenizer.endOfGenerationTokens.contains(tokenizer.id(of: "<|im_end|>")!))
    }

    /// One tokenizer encoding from several threads at once (as `flash serve` does for concurrent
    /// requests) gives each text the ids a fresh tokenizer gives it alone. Thousands of distinct
    /// words keep the memo cache growing while it is read; unguarded, it crashed the server.
    func testConcurrentEncodingMatchesSerial() throws {
        let (file, _, shared) = try LlamaFixtures.model()
        var rng = SystemRandomNumberGenerator()
        let texts = (0..<64).map { i in
            (0..<60).map { _ in String((0..<Int.random(in: 3...9, using: &rng)).map { _ in "abcdefghijklmnopqrstuvwxyz".randomElement(using: &rng)! }) }
                .joined(separator: i % 2 == 0 ? " " : ", ")
        }
        let serial = try GGUFTokenizer(file: file)
        let expected = texts.map { serial.encode($0) }
        let results = UnsafeMutableBufferPointer<[Int]>.allocate(capacity: texts.count)
        results.initialize(repeating: [])
        defer { results.deallocate() }
        DispatchQueue.concurrentPerform(iterations: texts.count) { i in results[i] = shared.encode(texts[i]) }
        XCTAssertEqual(Array(results), expected)
    }

    func testAnyUTF8RoundTrips() throws {
        let (_, _, tokenizer) = try LlamaFixtures.model()
        var rng = SystemRandomNumberGenerator()
        let pools: [ClosedRange<UInt32>] = [0x20...0x7E, 0x09...0x0D, 0xA0...0x24F, 0x370...0x3FF, 0x400...0x4FF,
                                            0x3040...0x30FF, 0x4E00...0x4FFF, 0x1F300...0x1F6FF, 0x0...0x1F]
        for _ in 0..<200 {
            var text = String.UnicodeScalarView()
            for _ in 0..<Int.random(in: 0...40, using: &rng) {
                let pool = pools.randomElement(using: &rng)!
                // SmolLM's vocabulary has no token for the bytes 04, 06, 13, 14, 16 and 1D (nor for
                // bytes that never occur in UTF-8); like Hugging Face's and llama.cpp's tokenizers
                // it drops them (see the fixture's last case), so round trips exclude them.
                if let scalar = Unicode.Scalar(UInt32.random(in: pool, using: &rng)),
                   ![0x04, 0x06, 0x13, 0x14, 0x16, 0x1D].contains(scalar.value) { text.append(scalar) }
            }
            let string = String(text)
            let ids = tokenizer.encode(string, parseSpecial: false)
            XCTAssertEqual(Array(tokenizer.decode(ids).unicodeScalars), Array(string.unicodeScalars))
        }
        // Special-token text is plain text unless asked for.
        let special = "<|im_start|>"
        XCTAssertEqual(tokenizer.encode(special).count, 1)
        XCTAssertGreaterThan(tokenizer.encode(special, parseSpecial: false).count, 1)
        XCTAssertEqual(tokenizer.decode(tokenizer.encode(special, parseSpecial: false)), special)
    }
}
