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
            // Q4_0/Q4_1/Q8_0 multiply x rounded to 8 bits per block (x̂ = d·q, |x − x̂| ≤ d/2):
            // within 1e-3 of W·x̂ in Float64, and within Σ_blocks d/2·Σ|w| (+1e-3) of gguf-py's W·x.
            let reference = try Self.productWithQ8Activations(type, decoded, rows: rows, x: x)
            var y = [Float](repeating: 0, count: rows)
            matrix.multiplyVector(x, into: &y, threads: 2)
            for r in 0..<rows {
                XCTAssertEqual(Double(y[r]), reference?.product[r] ?? product[r], accuracy: 1e-3, "\(name) row \(r)")
                XCTAssertEqual(Double(y[r]), product[r], accuracy: (reference?.bound[r] ?? 0) + 1e-3, "\(name) row \(r)")
            }

            // The batched product over 5 tokens gives the mat-vec's bits for each.
            let tokens = 5
            let xs = (0..<tokens).flatMap { _ in x }
            var ys = [Float](repeating: .nan, count: tokens * rows)
            matrix.multiply(xs, tokens: tokens, xStride: columns, into: &ys, yStride: rows, threads: 2)
            for t in 0..<tokens {
                for r in 0..<rows { XCTAssertEqual(ys[t * rows + r], y[r], "\(name) token \(t) row \(r)") }
            }
        }
    }

    /// For the types multiplied with 8-bit activations: W·x̂ in Float64 with x̂ = x rounded as
    /// the products round it, and per row the bound Σ_blocks (d_x/2)·Σ_block |w| on |W·x − W·x̂|.
    static func productWithQ8Activations(_ type: GGMLType, _ w: [Float], rows: Int, x: [Float]) throws
        -> (product: [Double], bound: [Double])? {
        guard [.q4_0, .q4_1, .q8_0].contains(type) else { return nil }
        let columns = x.count
        let q = try Q8Activations(rows: 1, columns: columns)
        q.quantize(row: 0, from: x)
        let rounded = (0..<columns).map { Double(q.scale(row: 0, block: $0 / 32)) * Double(q.value(row: 0, element: $0)) }
        var product = [Double](repeating: 0, count: rows), bound = product
        for r in 0..<rows {
            for c in 0..<columns {
                product[r] += Double(w[r * columns + c]) * rounded[c]
                bound[r] += Double(q.scale(row: 0, block: c / 32)) / 2 * abs(Double(w[r * columns + c]))
            }
        }
        return (product, bound)
    }

    func testTiledProductMatchesFloat64OnLargerShapes() throws {
        // 37 rows × 64 columns of Q8_0 (values exactly representable) times 9 tokens: checks
        // every tile and kernel edge against a Float64 product of the decoded matrix and the
        // 8-bit activations.
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
            let reference = try XCTUnwrap(Self.productWithQ8Activations(.q8_0, w, rows: rows, x: Array(x[(t * columns)..<((t + 1) * columns)])))
            for r in 0..<rows { XCTAssertEqual(Double(y[t * rows + r]), reference.product[r], accuracy: 1e-3) }
        }
    }
}
