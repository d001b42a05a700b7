import XCTest
@testable import FlashCore

/// A row of C is bit-for-bit the same whether it is multiplied alone (the m = 1 path for B
/// stored k×n, the blocked path for a transposed B) or as any row of a taller multiply (the
/// blocked path, full or edge tile), for depths of one and several `kc` slices and both B
/// layouts: a serving engine's batch invariance rests on it (a tied head multiplies by Eᵀ).
final class GEMMRowInvarianceTests: XCTestCase {
    func testOneRowEqualsThatRowOfABatch() {
        var state: UInt64 = 7
        func random() -> Float {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Float(Double(state >> 11) / Double(1 << 53) * 2 - 1)
        }
        for (k, n) in [(64, 70), (256, 33), (600, 96), (1030, 40)] {
            for m in [2, 5, 9, 17] {
                for transposeB in [false, true] {
                    let a = (0..<(m * k)).map { _ in random() }, b = (0..<(k * n)).map { _ in random() }
                    let ldb = transposeB ? k : n
                    var batch = [Float](repeating: 0, count: m * n)
                    GEMM.multiplyUnchecked(transposeA: false, transposeB: transposeB, m: m, n: n, k: k, alpha: 1, a: a, lda: k,
                                           b: b, ldb: ldb, beta: 0, c: &batch, ldc: n, threads: 2)
                    for row in [0, m / 2, m - 1] {
                        var single = [Float](repeating: 0, count: n)
                        Array(a[(row * k)..<((row + 1) * k)]).withUnsafeBufferPointer { r in
                            GEMM.multiplyUnchecked(transposeA: false, transposeB: transposeB, m: 1, n: n, k: k, alpha: 1, a: r.baseAddress!,
                                                   lda: k, b: b, ldb: ldb, beta: 0, c: &single, ldc: n, threads: 2)
                        }
                        XCTAssertEqual(single, Array(batch[(row * n)..<((row + 1) * n)]),
                                       "k \(k) n \(n) m \(m) row \(row) transposeB \(transposeB)")
                    }
                }
            }
        }
    }
}
