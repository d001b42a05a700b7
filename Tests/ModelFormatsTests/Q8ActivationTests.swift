import Foundation
import XCTest
import ModelFormats

/// Quantised products with 8-bit activations: the activation quantisation against a Float64
/// reference, the integer block dot products against exact integer sums (including the edge
/// cases of the integer instructions: the largest magnitudes, all-zero rows, odd block counts),
/// and batch invariance of the products.
final class Q8ActivationTests: XCTestCase {
    /// Block counts covering whole groups of 4, every partial last group, and SmolLM2's 18.
    static let blockCounts = [1, 2, 3, 4, 5, 6, 7, 18]

    func testQuantisationMatchesFloat64Reference() throws {
        var rng = SystemRandomNumberGenerator()
        for blocks in Self.blockCounts {
            let columns = 32 * blocks
            var x = (0..<columns).map { _ in Float.random(in: -3...3, using: &rng) }
            // Edge blocks: all zero; huge values (near Float's range: s = d·Σq ≈ Σx must stay
            // finite); a tiny scale; one huge outlier.
            if blocks > 1 { for j in 32..<64 { x[j] = 0 } }
            if blocks > 2 { for j in 64..<96 { x[j] = j % 2 == 0 ? 1e36 : -1e36 / 3 } }
            if blocks > 3 { for j in 96..<128 { x[j] = Float(j - 112) * 1e-30 } }
            if blocks > 4 { x[140] = 1e6 }
            let q = try Q8Activations(rows: 1, columns: columns)
            q.quantize(row: 0, from: x)
            for b in 0..<blocks {
                let values = x[(32 * b)..<(32 * b + 32)].map(Double.init)
                let amax = values.map(abs).max()!
                let d = Double(q.scale(row: 0, block: b))
                XCTAssertEqual(d, amax / 127, accuracy: amax / 127 * 1e-7, "d of block \(b)")
                var sum = 0
                for (j, v) in values.enumerated() {
                    let value = Int(q.value(row: 0, element: 32 * b + j))
                    sum += value
                    XCTAssertLessThanOrEqual(abs(value), 127)
                    if amax == 0 {
                        XCTAssertEqual(value, 0)
                    } else {
                        // Nearest integer to x/d, up to the rounding of x·(1/d) in Float32.
                        XCTAssertLessThanOrEqual(abs(Double(value) - v / d), 0.5 + 1e-5, "block \(b) element \(j)")
                        if abs(v) == amax { XCTAssertEqual(abs(value), 127) }
                    }
                }
                XCTAssertEqual(Double(q.scaledSum(row: 0, block: b)), d * Double(sum), accuracy: abs(d * Double(sum)) * 1e-7)
            }
        }
    }

    func testNonFiniteBlockGivesNaNNotATrap() throws {
        var x = [Float](repeating: 1, count: 64)
        x[40] = .infinity
        let q = try Q8Activations(rows: 1, columns: 64)
        q.quantize(row: 0, from: x)
        XCTAssertEqual(q.scale(row: 0, block: 0), 1 / 127, accuracy: 1e-9)
        XCTAssertTrue(q.scale(row: 0, block: 1).isNaN)
        XCTAssertThrowsError(try Q8Activations(rows: 1, columns: 48))
    }

    /// Blocks of `type` with d = 1 (and m = `min` for Q4_1) and the given quantised values
    /// (nibbles 0...15 for Q4, signed bytes for Q8_0), in the file's encoding.
    static func encode(_ type: GGMLType, _ q: [Int], min: Float = 0) -> [UInt8] {
        var bytes: [UInt8] = []
        for b in 0..<(q.count / 32) {
            let block = Array(q[(32 * b)..<(32 * b + 32)])
            withUnsafeBytes(of: Float16(1).bitPattern) { bytes += $0 }
            if type == .q4_1 { withUnsafeBytes(of: Float16(min).bitPattern) { bytes += $0 } }
            if type == .q8_0 {
                bytes += block.map { UInt8(bitPattern: Int8($0)) }
            } else {
                bytes += (0..<16).map { UInt8(block[$0] | block[$0 + 16] << 4) }
            }
        }
        return bytes
    }

    /// With d = 1 everywhere and activations that quantise exactly (integers, each block
    /// reaching ±127, so d_x = 1 and q_x = x), every product is an integer below 2^24: the
    /// kernel's result must equal the exact integer sum, which checks the integer block dots
    /// bit for bit (the instructions' saturation, the partial groups, the offsets).
    func testIntegerBlockDotsAreExact() throws {
        var rng = SystemRandomNumberGenerator()
        for type in [GGMLType.q4_0, .q4_1, .q8_0] {
            for blocks in Self.blockCounts {
                let columns = 32 * blocks
                let range = type == .q8_0 ? -128...127 : 0...15
                // Rows: random, all largest (15 / −128 against ±127 activations), all zero.
                var weights = (0..<(3 * columns)).map { _ in Int.random(in: range, using: &rng) }
                for j in 0..<columns { weights[columns + j] = type == .q8_0 ? -128 : 15; weights[2 * columns + j] = 0 }
                var xRows: [[Int]] = [
                    (0..<columns).map { _ in Int.random(in: -127...127, using: &rng) },
                    [Int](repeating: 127, count: columns),
                    (0..<columns).map { $0 % 3 == 0 ? 127 : -127 },
                    [Int](repeating: 0, count: columns),
                ]
                for b in 0..<blocks { xRows[0][32 * b + Int.random(in: 0..<32, using: &rng)] = -127 }
                let min: Float = type == .q4_1 ? 3 : 0
                let bytes = GGUFBytes(copying: Self.encode(type, weights, min: min))
                let matrix = try QuantizedMatrix(type: type, rows: 3, columns: columns, data: bytes.pointer, owner: bytes)
                let x = xRows.flatMap { $0.map(Float.init) }
                var y = [Float](repeating: .nan, count: 4 * 3)
                matrix.multiply(x, tokens: 4, xStride: columns, into: &y, yStride: 3, threads: 2)
                for t in 0..<4 {
                    for r in 0..<3 {
                        var exact = 0
                        for j in 0..<columns {
                            let w = type == .q4_0 ? weights[r * columns + j] - 8 : weights[r * columns + j]
                            exact += w * xRows[t][j] + (type == .q4_1 ? 3 * xRows[t][j] : 0)
                        }
                        XCTAssertEqual(y[t * 3 + r], Float(exact), "\(type) blocks \(blocks) row \(r) activation \(t)")
                    }
                }
            }
        }
    }

    /// A random matrix of `type` (F16, or blocks with small random scales and random values).
    static func randomMatrix(_ type: GGMLType, rows: Int, columns: Int) throws -> QuantizedMatrix {
        var rng = SystemRandomNumberGenerator()
        var bytes: [UInt8] = []
        func half(_ range: ClosedRange<Float>) {
            withUnsafeBytes(of: Float16(Float.random(in: range, using: &rng)).bitPattern) { bytes += $0 }
        }
        if type == .f16 {
            for _ in 0..<(rows * columns) { half(-1...1) }
        } else {
            let header = type == .q4_1 ? 4 : 2
            for _ in 0..<(rows * columns / 32) {
                half(0.001...0.05)
                if type == .q4_1 { half(-0.1...0.1) }
                for _ in header..<type.blockBytes { bytes.append(UInt8.random(in: 0...255, using: &rng)) }
            }
        }
        let data = GGUFBytes(copying: bytes)
        return try QuantizedMatrix(type: type, rows: rows, columns: columns, data: data.pointer, owner: data)
    }

    /// A row's product must not depend on the batch it is computed in: a mat-vec, batches of
    /// 1–40 rows (the row at different positions of the kernel's register tiles of weight rows ×
    /// activation rows, on either side of its 32-row activation chunks, in chunks of weight rows
    /// that end in a partial tile: 75 rows), 1 and 2 threads all give the same bits.
    func testRowsAreBitIdenticalWhateverTheBatch() throws {
        var rng = SystemRandomNumberGenerator()
        let columns = 32 * 18, rows = 75
        for type in [GGMLType.q4_1, .q4_0, .q8_0, .f16] {
            let matrix = try Self.randomMatrix(type, rows: rows, columns: columns)
            let x = (0..<(40 * columns)).map { _ in Float.random(in: -2...2, using: &rng) }
            var single = [[Float]]()
            for t in 0..<40 {
                var y = [Float](repeating: .nan, count: rows)
                x.withUnsafeBufferPointer { matrix.multiplyVector($0.baseAddress! + t * columns, into: &y, threads: 1) }
                single.append(y)
            }
            for threads in [1, 2] {
                for (first, count) in [(0, 16), (0, 7), (5, 7), (9, 7), (3, 1), (0, 2), (1, 2), (6, 3), (0, 40), (1, 33), (7, 8)] {
                    var y = [Float](repeating: .nan, count: count * rows)
                    x.withUnsafeBufferPointer {
                        matrix.multiply($0.baseAddress! + first * columns, tokens: count, xStride: columns, into: &y, yStride: rows, threads: threads)
                    }
                    for t in 0..<count {
                        XCTAssertEqual(Array(y[(t * rows)..<((t + 1) * rows)]).map(\.bitPattern), single[first + t].map(\.bitPattern),
                                       "\(type): row \(first + t) in a batch of \(count) from \(first), \(threads) threads")
                    }
                }
                var y = [Float](repeating: .nan, count: rows)
                x.withUnsafeBufferPointer { matrix.multiplyVector($0.baseAddress! + 4 * columns, into: &y, threads: threads) }
                XCTAssertEqual(y.map(\.bitPattern), single[4].map(\.bitPattern), "\(type) mat-vec, \(threads) threads")
            }
        }
    }
}
