import XCTest
import FlashCore
@testable import ModelFormats

/// `multiplyRows` gives every token exactly `multiplyVector`'s result (bit for bit), whatever
/// the number of tokens or a token's place among them, for the packed types and a plain one;
/// and it agrees with a Float64 product of the decoded weights within the 8-bit activation
/// quantisation's bound.
final class RowProductTests: XCTestCase {
    func testEachRowIsTheMatrixVectorProduct() throws {
        var state: UInt64 = 3
        func next() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return state >> 11
        }
        func uniform() -> Float { Float(Double(next() % 1_000_000) / 500_000 - 1) }
        for type in [GGMLType.q4_0, .q4_1, .q8_0, .f16] {
            // 160 columns: Q4 has one full group of 4 blocks and a partial one; Q8 two full and a half.
            let rows = 70, columns = 160
            let blocks = columns / type.blockSize
            var bytes = [UInt8]()
            for _ in 0..<(rows * blocks) {
                switch type {
                case .f16:
                    for _ in 0..<type.blockSize { withUnsafeBytes(of: Float16(uniform()).bitPattern) { bytes += $0 } }
                default:
                    withUnsafeBytes(of: Float16(Float(next() % 100 + 1) / 800).bitPattern) { bytes += $0 }
                    if type == .q4_1 { withUnsafeBytes(of: Float16(uniform() / 10).bitPattern) { bytes += $0 } }
                    let payload = type == .q8_0 ? 32 : 16
                    for _ in 0..<payload { bytes.append(UInt8(truncatingIfNeeded: next())) }
                }
            }
            XCTAssertEqual(bytes.count, rows * blocks * type.blockBytes)
            let data = UnsafeMutableRawPointer.allocate(byteCount: bytes.count, alignment: 64)
            defer { data.deallocate() }
            data.copyMemory(from: bytes, byteCount: bytes.count)
            let matrix = try QuantizedMatrix(type: type, rows: rows, columns: columns, data: data, owner: nil)
            let weights = matrix.dequantized()
            for tokens in [1, 2, 3, 4, 7, 9, 16, 33] {
                let x = (0..<(tokens * columns)).map { _ in uniform() }
                var batched = [Float](repeating: 0, count: tokens * rows)
                x.withUnsafeBufferPointer { xp in
                    batched.withUnsafeMutableBufferPointer { yp in
                        QuantizedMatrix.multiplyRows([(matrix, yp.baseAddress!, rows)], x: xp.baseAddress!, xStride: columns,
                                                     tokens: tokens, threads: 2)
                    }
                }
                for t in 0..<tokens {
                    var single = [Float](repeating: 0, count: rows)
                    Array(x[(t * columns)..<((t + 1) * columns)]).withUnsafeBufferPointer { xp in
                        matrix.multiplyVector(xp.baseAddress!, into: &single, threads: 2)
                    }
                    XCTAssertEqual(Array(batched[(t * rows)..<((t + 1) * rows)]), single, "\(type), token \(t) of \(tokens)")
                    for r in 0..<rows {
                        // Packed types multiply x quantised to 8 bits per block of 32 (step
                        // max|x|/127, error ≤ half a step per element): the bound is
                        // Σ_c |w_c|·max|x_block|/254, plus Float32 rounding.
                        var exact = 0.0, bound = 1e-5
                        for c in 0..<columns {
                            let w = Double(weights[r * columns + c]), xc = Double(x[t * columns + c])
                            exact += w * xc
                            let block = (t * columns + c / 32 * 32)..<(t * columns + c / 32 * 32 + 32)
                            let step = Double(x[block].map { abs($0) }.max()!) / 127
                            bound += type == .f16 ? 1e-6 * abs(w * xc) : abs(w) * step / 2 * 1.01 + 1e-6 * abs(w * xc)
                        }
                        XCTAssertEqual(Double(single[r]), exact, accuracy: bound, "\(type) row \(r)")
                    }
                }
            }
        }
    }
}
