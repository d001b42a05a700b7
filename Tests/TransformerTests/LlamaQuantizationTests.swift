import Foundation
import XCTest
import ModelFormats

/// Block decoding and quantised products against gguf-py's decoder (fixture made by
/// scripts/make_llama_fixtures.py from random blocks of every supported type).
final class LlamaQuantizationTests: XCTestCase {
    func testDecodingAndProductsMatchGGUFPy() throws {
        let fixture = try LlamaFixtures.json("quant_blocks")
        let cases = fixture["cases"] as! [[String: Any]]
        XCTAssertEqual(cases.count, 10)
        for c in cases {
            let name = c["type"] as! String
            let type = try XCTUnwrap(GGMLType.allCases.first { $0.description == name }, name)
            let rows = c["rows"] as! Int, columns = c["columns"] as! Int
            let data = [UInt8](Data(base64Encoded: c["data"] as! String)!)
            let expected = (c["values"] as! [NSNumber]).map(\.doubleValue)
            let x = (c["x"] as! [NSNumber]).map(\.floatValue)
            let product = (c["product"] as! [NSNumber]).map(\.doubleValue)
            let bytes = GGUFBytes(copying: data)
            let matrix = try QuantizedMatrix(type: type, rows: rows, columns: columns, data: bytes.pointer, owner: bytes)
            XCTAssertEqual(matrix.rowBytes * rows, data.count, name)

            // Decoding is exact up to the fixture's 6 printed decimals.
            let decoded = matrix.dequantized()
            let worst = zip(decoded, expected).map { abs(Double($0) - $1) }.max()!
            XCTAssertLessThan(worst, 1e-6, "\(name) decode")

            // W·x: Float32 sums of 256 terms of size ≤ ~5 stay within 1e-4 of the Float64 value.
            var y = [Float](repeating: 0, count: rows)
            matrix.multiplyVector(x, into: &y, threads: 2)
            for r in 0..<rows { XCTAssertEqual(Double(y[r]), product[r], accuracy: 1e-3, "\(name) row \(r)") }

            // The tiled product over 5 tokens (4×4 kernel plus the 1-token edge) gives the same.
            let tokens = 5
            let xs = (0..<tokens).flatMap { _ in x }
            var ys = [Float](repeating: .nan, count: tokens * rows)
            matrix.multiply(xs, tokens: tokens, xStride: columns, into: &ys, yStride: rows, threads: 2)
            for t in 0..<tokens {
                for r in 0..<rows { XCTAssertEqual(Double(ys[t * rows + r]), product[r], accuracy: 1e-3, "\(name) token \(t) row \(r)") }
            }
        }
    }

    func testTiledProductMatchesFloat64OnLargerShapes() throws {
        // 37 rows × 64 columns of Q8_0 (values exactly representable) times 9 tokens: checks
        // every tile and kernel edge against a Float64 product of the decoded matrix.
        var rng = SystemRandomNumberGenerator()
        let rows = 37, columns = 64, tokens = 9
        var data: [UInt8] = []
        for _ in 0..<(rows * columns / 32) {
            withUnsafeBytes(of: Float16(Float.random(in: 0.01...0.1, using: &rng)).bitPattern) { data += $0 }
            for _ in 0..<32 { data.append(UInt8.random(in: 0...255, using: &rng)) }
        }
        let bytes = GGUFBytes(copying: data)
        let matrix = try QuantizedMatrix(type: .q8_0, rows: rows, columns: columns, data: bytes.pointer, owner: bytes)
        let w = matrix.dequantized()
        let x = (0..<(tokens * columns)).map { _ in Float.random(in: -1...1, using: &rng) }
        var y = [Float](repeating: .nan, count: tokens * rows)
        matrix.multiply(x, tokens: tokens, xStride: columns, into: &y, yStride: rows, threads: 3)
        for t in 0..<tokens {
            for r in 0..<rows {
                var s = 0.0
                for c in 0..<columns { s += Double(w[r * columns + c]) * Double(x[t * columns + c]) }
                XCTAssertEqual(Double(y[t * rows + r]), s, accuracy: 1e-3)
            }
        }
    }
}
