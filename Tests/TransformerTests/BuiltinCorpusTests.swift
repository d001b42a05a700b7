import XCTest
import Transformer

final class BuiltinCorpusTests: XCTestCase {
    func testCorpusIsBundledEnglishText() throws {
        let text = try BuiltinCorpus.text()
        XCTAssertGreaterThan(text.utf8.count, 200_000)
        XCTAssertTrue(text.contains("FlashAttention"))
        XCTAssertTrue(text.unicodeScalars.allSatisfy { $0.isASCII })
    }
}
