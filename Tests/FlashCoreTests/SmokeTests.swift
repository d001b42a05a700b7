import XCTest
import FlashCore

final class SmokeTests: XCTestCase {
    func testGEMMSmall() throws {
        let a: [Float] = [1, 2, 3, 4, 5, 6]      // 2×3
        let b: [Float] = [7, 8, 9, 10, 11, 12]   // 3×2
        var c = [Float](repeating: .nan, count: 4)
        try GEMM.multiply(m: 2, n: 2, k: 3, a: a, lda: 3, b: b, ldb: 2, c: &c, ldc: 2)
        XCTAssertEqual(c, [58, 64, 139, 154])
    }
    func testExp() {
        XCTAssertEqual(VectorMath.exp(-Float.infinity), 0)
        XCTAssertEqual(VectorMath.exp(Float(0)), 1)
        XCTAssertEqual(Double(VectorMath.exp(Float(1))), M_E, accuracy: 1e-6)
    }
}
