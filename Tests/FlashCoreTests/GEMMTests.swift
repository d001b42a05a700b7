import FlashCore
import XCTest

/// GEMM against a plain Float64 triple loop, over ragged shapes, every transpose combination,
/// α/β cases, strided storage and thread counts.
final class GEMMTests: XCTestCase {
    /// Sizes that hit every edge of the blocking: 1, less than a micro-tile (8×32 on AVX-512,
    /// 6×16 on AVX2), exact tiles, one past, and more than one kc slice where kc < 300.
    static let sizes = [1, 3, 7, 16, 63, 64, 65, 127, 129, 300]

    /// A matrix stored row-major with `columns` ≤ `stride`; the padding holds NaN so that any
    /// read of it shows up in the result.
    struct Stored {
        var values: [Float]
        let rows: Int, columns: Int, stride: Int

        init(rows: Int, columns: Int, stride: Int, seed: inout UInt64) {
            self.rows = rows; self.columns = columns; self.stride = stride
            values = [Float](repeating: .nan, count: max(1, rows * stride))
            for r in 0..<rows {
                for c in 0..<columns { values[r * stride + c] = Float(Self.next(&seed)) }
            }
        }

        /// Uniform in [-1, 1), from a 64-bit LCG (deterministic across runs and machines).
        static func next(_ state: inout UInt64) -> Double {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Double(state >> 11) / Double(1 << 53) * 2 - 1
        }

        subscript(r: Int, c: Int) -> Double { Double(values[r * stride + c]) }
    }

    struct Problem {
        let transposeA: Bool, transposeB: Bool
        let m: Int, n: Int, k: Int
        let alpha: Float, beta: Float
        let a: Stored, b: Stored
        var c: Stored

        init(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1, beta: Float = 0,
             padding: Int = 0, cFill: Float? = nil, seed: UInt64) {
            var state = seed
            self.transposeA = transposeA; self.transposeB = transposeB
            self.m = m; self.n = n; self.k = k; self.alpha = alpha; self.beta = beta
            a = transposeA ? Stored(rows: k, columns: m, stride: m + padding, seed: &state)
                           : Stored(rows: m, columns: k, stride: k + padding, seed: &state)
            b = transposeB ? Stored(rows: n, columns: k, stride: k + padding, seed: &state)
                           : Stored(rows: k, columns: n, stride: n + padding, seed: &state)
            c = Stored(rows: m, columns: n, stride: n + padding, seed: &state)
            if let cFill {
                for r in 0..<m { for j in 0..<n { c.values[r * c.stride + j] = cFill } }
            }
        }

        func opA(_ i: Int, _ p: Int) -> Double { transposeA ? a[p, i] : a[i, p] }
        func opB(_ p: Int, _ j: Int) -> Double { transposeB ? b[j, p] : b[p, j] }

        /// Runs the GEMM on a copy of C and returns it.
        func run(threads: Int?) throws -> [Float] {
            var out = c.values
            try GEMM.multiply(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
                              a: a.values, lda: a.stride, b: b.values, ldb: b.stride, beta: beta,
                              c: &out, ldc: c.stride, threads: threads)
            return out
        }

        /// Checks `out` against the Float64 reference with a forward error bound: the sum of
        /// k products in Float32 is within about k·u·Σ|a·b| of the exact sum (u = 2⁻²⁴), and
        /// C's padding (NaN) is untouched.
        func check(_ out: [Float], file: StaticString = #filePath, line: UInt = #line) {
            let label = "\(transposeA ? "T" : "N")\(transposeB ? "T" : "N") m=\(m) n=\(n) k=\(k) α=\(alpha) β=\(beta)"
            for i in 0..<m {
                for j in 0..<n {
                    var sum = 0.0, magnitude = 0.0
                    if alpha != 0 {
                        for p in 0..<k {
                            let product = opA(i, p) * opB(p, j)
                            sum += product
                            magnitude += abs(product)
                        }
                    }
                    let old = beta == 0 ? 0 : Double(beta) * c[i, j]
                    let expected = Double(alpha) * sum + old
                    let bound = Double(k + 2) * 0x1p-23 * (abs(Double(alpha)) * magnitude + abs(old)) + 1e-30
                    let got = Double(out[i * c.stride + j])
                    if !(abs(got - expected) <= bound) {
                        XCTFail("\(label): C[\(i),\(j)] = \(got), expected \(expected) ± \(bound)", file: file, line: line)
                        return
                    }
                }
                for j in n..<c.stride where !out[i * c.stride + j].isNaN {
                    XCTFail("\(label): wrote C's padding at row \(i), column \(j)", file: file, line: line)
                    return
                }
            }
        }
    }

    /// Every size in every dimension and every pair of dimensions (a Latin square over the
    /// size list: m = sizes[i], n = sizes[j], k = sizes[(i + j) mod 10]), all four transposes.
    func testLatinSquareOfShapesAllTransposes() throws {
        let s = Self.sizes
        for i in 0..<s.count {
            for j in 0..<s.count {
                let (m, n, k) = (s[i], s[j], s[(i + j) % s.count])
                for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
                    let problem = Problem(transposeA: ta, transposeB: tb, m: m, n: n, k: k,
                                          seed: UInt64(i * 1000 + j * 10 + (ta ? 2 : 0) + (tb ? 1 : 0)))
                    problem.check(try problem.run(threads: nil))
                }
            }
        }
    }

    /// Shapes past the column block (nc = 512) and the row block (mc = 256), with two or three
    /// kc slices (k > 256), α and β both in play.
    func testShapesAcrossCacheBlocks() throws {
        for (m, n, k) in [(300, 600, 513), (520, 33, 300), (9, 1100, 257)] {
            for (ta, tb) in [(false, false), (true, true)] {
                let problem = Problem(transposeA: ta, transposeB: tb, m: m, n: n, k: k, alpha: 0.75, beta: -1.5,
                                      seed: UInt64(m * n + k))
                problem.check(try problem.run(threads: nil))
            }
        }
    }

    /// The build's own blocking: a row block of a transposed A and a ragged one past it (mc),
    /// a column block and one ragged tile past nc, and two kc slices plus a remainder (kc, nc
    /// and mc come from this machine's caches).
    func testShapesAroundThisBuildsBlocks() throws {
        let (mr, nr) = (GEMMBlocking.tile.rows, GEMMBlocking.tile.columns)
        let (m, n, k) = (GEMMBlocking.mc + 3 * mr + 1, GEMMBlocking.nc + nr + 3, 2 * GEMMBlocking.kc + 5)
        for (ta, tb) in [(false, false), (false, true), (true, false)] {
            let problem = Problem(transposeA: ta, transposeB: tb, m: m, n: n, k: k, alpha: -0.5, beta: 2,
                                  seed: UInt64(m + n + k))
            problem.check(try problem.run(threads: nil))
        }
    }

    func testAlphaBetaCases() throws {
        let shapes = [(65, 129, 63), (7, 3, 300), (64, 64, 64), (1, 1, 1)]
        let cases: [(alpha: Float, beta: Float, fill: Float?)] = [
            (1, 0, .nan),          // β = 0 ignores C, even NaN
            (1, 0, .infinity),
            (-0.5, 0, .nan),
            (1, 1, nil),           // accumulate
            (-0.5, 0.25, nil),
            (2, -1, nil),
            (0, 2, nil),           // α = 0: C = βC, A and B not used
            (0, 0, .nan),          // α = 0, β = 0: C = 0
        ]
        for (index, (m, n, k)) in shapes.enumerated() {
            for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
                for c in cases {
                    let problem = Problem(transposeA: ta, transposeB: tb, m: m, n: n, k: k, alpha: c.alpha,
                                          beta: c.beta, cFill: c.fill, seed: UInt64(index * 17 + 3))
                    let out = try problem.run(threads: nil)
                    problem.check(out)
                    if c.alpha == 0 && c.beta == 0 {
                        XCTAssertTrue(out.allSatisfy { $0 == 0 }, "α = β = 0 must give exact zeros")
                    }
                }
            }
        }
    }

    func testZeroInnerDimensionScalesC() throws {
        var c: [Float] = [1, 2, 3, 4, 5, 6]
        let none: [Float] = [0]
        try GEMM.multiply(m: 2, n: 3, k: 0, a: none, lda: 1, b: none, ldb: 3, beta: 0.5, c: &c, ldc: 3)
        XCTAssertEqual(c, [0.5, 1, 1.5, 2, 2.5, 3])
        c = [.nan, .nan, .nan, .nan, .nan, .nan]
        try GEMM.multiply(m: 2, n: 3, k: 0, a: none, lda: 1, b: none, ldb: 3, beta: 0, c: &c, ldc: 3)
        XCTAssertEqual(c, [0, 0, 0, 0, 0, 0])
    }

    /// Leading dimensions larger than the stored rows: the NaN padding must never be read
    /// (it would poison C) and C's padding must never be written.
    func testStridedStorage() throws {
        for (m, n, k) in [(65, 129, 63), (3, 300, 17), (129, 7, 300)] {
            for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
                for padding in [1, 13] {
                    let problem = Problem(transposeA: ta, transposeB: tb, m: m, n: n, k: k, alpha: 1.5, beta: 0.5,
                                          padding: padding, seed: UInt64(m + n + padding))
                    problem.check(try problem.run(threads: nil))
                }
            }
        }
    }

    /// Each element of C is computed by one thread in an order that depends only on k.
    func testBitIdenticalForAnyThreadCount() throws {
        for (m, n, k) in [(300, 129, 300), (64, 1100, 70), (1100, 65, 300), (257, 257, 257), (1, 3000, 300),
                          (130, 333, 2 * GEMMBlocking.kc + 5)] {
            for (ta, tb) in [(false, false), (true, true), (false, true)] {
                let problem = Problem(transposeA: ta, transposeB: tb, m: m, n: n, k: k, alpha: 0.5, beta: 0.25,
                                      seed: UInt64(m * 7 + n))
                let single = try problem.run(threads: 1)
                for threads in [2, 3, 5] {
                    let multi = try problem.run(threads: threads)
                    XCTAssertEqual(single.map(\.bitPattern), multi.map(\.bitPattern),
                                   "m=\(m) n=\(n) k=\(k) threads=\(threads)")
                }
                problem.check(single)
            }
        }
    }

    func testTensorMultiply() throws {
        let a = try Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6])
        let b = try Tensor(shape: [2, 3], values: [7, 8, 9, 10, 11, 12])
        let c = try Tensor(zeros: [2, 2])
        try GEMM.multiply(a, b, transposeB: true, into: c)
        // [1 2 3; 4 5 6] · [7 8 9; 10 11 12]ᵀ
        XCTAssertEqual(c.floats(), [50, 68, 122, 167])
        // A sliced view with a row stride larger than its width.
        let wide = try Tensor(shape: [3, 4], values: (0..<12).map(Float.init))
        let view = try wide.sliced(axis: 1, 1..<3)           // 3×2, strides [4, 1]
        let result = try Tensor(zeros: [2, 2])
        try GEMM.multiply(view, transposeA: true, view, into: result)
        // columns 1 and 2 of wide: [1 5 9], [2 6 10]
        let expected: [Float] = [107, 122, 122, 140]   // 1+25+81, 2+30+90, 4+36+100
        XCTAssertEqual(result.floats(), expected)
    }

    func testInvalidArgumentsAreNamed() throws {
        let x = [Float](repeating: 1, count: 16)
        var c = [Float](repeating: 0, count: 16)
        func argument(_ body: () throws -> Void) -> String? {
            do { try body(); return nil } catch let error as InvalidArgument { return error.argument } catch { return "other" }
        }
        XCTAssertEqual(argument { try GEMM.multiply(m: -1, n: 2, k: 2, a: x, lda: 2, b: x, ldb: 2, c: &c, ldc: 2) }, "m")
        XCTAssertEqual(argument { try GEMM.multiply(m: 2, n: -2, k: 2, a: x, lda: 2, b: x, ldb: 2, c: &c, ldc: 2) }, "n")
        XCTAssertEqual(argument { try GEMM.multiply(m: 2, n: 2, k: -1, a: x, lda: 2, b: x, ldb: 2, c: &c, ldc: 2) }, "k")
        XCTAssertEqual(argument { try GEMM.multiply(m: 2, n: 2, k: 3, a: x, lda: 2, b: x, ldb: 2, c: &c, ldc: 2) }, "lda")
        XCTAssertEqual(argument { try GEMM.multiply(transposeB: true, m: 2, n: 2, k: 3, a: x, lda: 3, b: x, ldb: 2, c: &c, ldc: 2) }, "ldb")
        XCTAssertEqual(argument { try GEMM.multiply(m: 2, n: 3, k: 2, a: x, lda: 2, b: x, ldb: 3, c: &c, ldc: 2) }, "ldc")
        XCTAssertEqual(argument { try GEMM.multiply(m: 2, n: 2, k: 2, a: x, lda: 2, b: x, ldb: 2, c: &c, ldc: 2, threads: 0) }, "threads")
        let matrix = try Tensor(zeros: [2, 2])
        let vector = try Tensor(zeros: [4])
        let half = try Tensor(zeros: [2, 2], elementType: .float16)
        let other = try Tensor(zeros: [3, 2])
        XCTAssertEqual(argument { try GEMM.multiply(vector, matrix, into: matrix) }, "a.rank")
        XCTAssertEqual(argument { try GEMM.multiply(matrix, half, into: matrix) }, "b.elementType")
        XCTAssertEqual(argument { try GEMM.multiply(matrix, other, into: matrix) }, "b.shape")
        XCTAssertEqual(argument { try GEMM.multiply(matrix, matrix, into: other) }, "c.shape")
        XCTAssertEqual(argument { try GEMM.multiply(matrix, try matrix.permuted([1, 0]), into: matrix) }, "b.strides[1]")
    }
}
