import XCTest
import Foundation
import Transformer

/// Each layer's backward pass on its own, against central finite differences of a Float64
/// mirror of its forward pass (written here, independently of the kernels). The scalar
/// checked is L = Σ w ⊙ layer(x) for fixed random weights w, so that dL/dy = w.
final class LayerGradientTests: XCTestCase {
    var random = TrainerRandom(seed: 99)

    func randoms(_ n: Int, scale: Double = 1) -> [Double] { (0..<n).map { _ in random.nextNormal() * scale } }

    /// FD of L(x) = Σ w·f(x) at x, Float64.
    func numericGradient(_ x: [Double], _ w: [Double], _ f: ([Double]) -> [Double]) -> [Double] {
        let h = 1e-6
        var x = x
        return (0..<x.count).map { i in
            let saved = x[i]
            x[i] = saved + h
            let plus = zip(w, f(x)).reduce(0) { $0 + $1.0 * $1.1 }
            x[i] = saved - h
            let minus = zip(w, f(x)).reduce(0) { $0 + $1.0 * $1.1 }
            x[i] = saved
            return (plus - minus) / (2 * h)
        }
    }

    func assertClose(_ analytic: [Float], _ numeric: [Double], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        let scale = numeric.map(abs).max()!
        let worst = zip(analytic, numeric).map { abs(Double($0) - $1) }.max()!
        // Float32 kernels: a few ulp of the row's magnitudes; 1e-5 of the scale leaves margin.
        XCTAssertLessThan(worst, 1e-5 * max(scale, 1), "\(what): worst \(worst), scale \(scale)", file: file, line: line)
    }

    // MARK: mirrors

    func layerNorm(_ x: [Double], _ g: [Double], _ b: [Double], width c: Int, rms: Bool) -> [Double] {
        var y = x
        for r in 0..<(x.count / c) {
            let row = x[(r * c)..<((r + 1) * c)]
            let mean = rms ? 0 : row.reduce(0, +) / Double(c)
            let variance = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(c)
            for j in 0..<c { y[r * c + j] = (x[r * c + j] - mean) / (variance + 1e-5).squareRoot() * g[j] + (rms ? 0 : b[j]) }
        }
        return y
    }

    // MARK: tests

    func testNormsInputWeightAndBiasGradients() {
        let rows = 3, c = 20
        for rms in [false, true] {
            let x = randoms(rows * c, scale: 2).map { $0 + 0.5 }, g = randoms(c).map { 1 + 0.3 * $0 }, b = randoms(c, scale: 0.3)
            let w = randoms(rows * c)
            let xf = x.map(Float.init), gf = g.map(Float.init), bf = b.map(Float.init), wf = w.map(Float.init)
            var y = [Float](repeating: 0, count: rows * c), stats = [Float](repeating: 0, count: 2 * rows)
            var dx = [Float](repeating: 0, count: rows * c), dg = [Float](repeating: 0, count: c), db = [Float](repeating: 0, count: c)
            if rms {
                RMSNorm.forward(input: xf, weight: gf, output: &y, rstd: &stats, rows: rows, width: c, epsilon: 1e-5)
                RMSNorm.backward(input: xf, weight: gf, rstd: stats, outputGradient: wf, inputGradient: &dx, accumulate: false,
                                 weightGradient: &dg, rows: rows, width: c)
            } else {
                stats.withUnsafeMutableBufferPointer { s in
                    LayerNorm.forward(input: xf, weight: gf, bias: bf, output: &y, mean: s.baseAddress!, rstd: s.baseAddress! + rows,
                                      rows: rows, width: c, epsilon: 1e-5)
                }
                stats.withUnsafeBufferPointer { s in
                    LayerNorm.backward(input: xf, weight: gf, mean: s.baseAddress!, rstd: s.baseAddress! + rows, outputGradient: wf,
                                       inputGradient: &dx, accumulate: false, weightGradient: &dg, biasGradient: &db, rows: rows, width: c)
                }
            }
            let name = rms ? "RMSNorm" : "LayerNorm"
            assertClose(y, layerNorm(x, g, b, width: c, rms: rms).map { $0 }, "\(name) forward")  // y vs mirror, same check
            assertClose(dx, numericGradient(x, w) { layerNorm($0, g, b, width: c, rms: rms) }, "\(name) dx")
            assertClose(dg, numericGradient(g, w) { layerNorm(x, $0, b, width: c, rms: rms) }, "\(name) dweight")
            if !rms { assertClose(db, numericGradient(b, w) { layerNorm(x, g, $0, width: c, rms: rms) }, "LayerNorm dbias") }
        }
    }

    func testActivationGradients() {
        let n = 37
        let x = randoms(n, scale: 2), u = randoms(n, scale: 2), w = randoms(n)
        let xf = x.map(Float.init), uf = u.map(Float.init), wf = w.map(Float.init)
        func gelu(_ v: [Double]) -> [Double] { v.map { 0.5 * $0 * (1 + Foundation.tanh((2 / Double.pi).squareRoot() * ($0 + 0.044715 * $0 * $0 * $0))) } }
        var y = [Float](repeating: 0, count: n), dx = y, du = y
        Activations.geluForward(input: xf, output: &y, count: n)
        assertClose(y, gelu(x), "GELU forward")
        Activations.geluBackward(input: xf, outputGradient: wf, inputGradient: &dx, count: n)
        assertClose(dx, numericGradient(x, w, gelu), "GELU dx")

        func swiglu(_ g: [Double], _ up: [Double]) -> [Double] { zip(g, up).map { $0 / (1 + Foundation.exp(-$0)) * $1 } }
        Activations.swigluForward(gate: xf, up: uf, output: &y, count: n)
        assertClose(y, swiglu(x, u), "SwiGLU forward")
        Activations.swigluBackward(gate: xf, up: uf, outputGradient: wf, gateGradient: &dx, upGradient: &du, count: n)
        assertClose(dx, numericGradient(x, w) { swiglu($0, u) }, "SwiGLU dgate")
        assertClose(du, numericGradient(u, w) { swiglu(x, $0) }, "SwiGLU dup")
    }

    func testRotaryBackwardIsTheTransposedRotation() {
        let d = 8, time = 5, heads = 2, offset = 3
        let table = RotaryTable(headDim: d, positions: 16, theta: 100, scaling: 2)
        func rotate(_ x: [Double]) -> [Double] {
            var y = x
            for t in 0..<time {
                let p = Double(t + offset) / 2
                for h in 0..<heads {
                    for i in 0..<(d / 2) {
                        let angle = p * Foundation.pow(100, -2 * Double(i) / Double(d))
                        let a = x[(t * heads + h) * d + i], b = x[(t * heads + h) * d + i + d / 2]
                        y[(t * heads + h) * d + i] = a * Foundation.cos(angle) - b * Foundation.sin(angle)
                        y[(t * heads + h) * d + i + d / 2] = b * Foundation.cos(angle) + a * Foundation.sin(angle)
                    }
                }
            }
            return y
        }
        let x = randoms(time * heads * d), w = randoms(time * heads * d)
        var y = x.map(Float.init)
        table.apply(&y, rowStride: heads * d, column: 0, heads: heads, batch: 1, time: time, positionOffset: offset, inverse: false)
        assertClose(y, rotate(x), "rotary forward")
        var dx = w.map(Float.init)
        table.apply(&dx, rowStride: heads * d, column: 0, heads: heads, batch: 1, time: time, positionOffset: offset, inverse: true)
        assertClose(dx, numericGradient(x, w, rotate), "rotary dx")
    }

    /// `Transpose.copy` (8 × 8 register blocks inside 32 × 32 tiles, element copies at the
    /// ragged edges) against the index definition, on shapes with every kind of edge.
    func testTransposeCopyMatchesTheDefinition() {
        for (rows, columns) in [(1, 1), (1, 13), (7, 9), (8, 8), (37, 45), (64, 96), (100, 33), (768, 128)] {
            let source = (0..<rows * columns).map { Float($0) }
            for threads in [1, 2] {
                var destination = [Float](repeating: -1, count: rows * columns)
                source.withUnsafeBufferPointer { s in
                    destination.withUnsafeMutableBufferPointer { d in
                        Transpose.copy(s.baseAddress!, rows: rows, columns: columns, into: d.baseAddress!, threads: threads)
                    }
                }
                let expected = (0..<rows * columns).map { i in source[(i % rows) * columns + i / rows] }
                XCTAssertEqual(destination, expected, "\(rows) × \(columns), \(threads) threads")
            }
        }
    }

    func testCrossEntropyFusedGradient() {
        let rows = 4, v = 9
        let logits = randoms(rows * v, scale: 3), targets: [Int32] = [0, 8, 3, 3]
        func loss(_ z: [Double]) -> [Double] {
            [(0..<rows).reduce(0.0) { total, r in
                let row = Array(z[(r * v)..<((r + 1) * v)])
                let m = row.max()!
                return total + m + Foundation.log(row.reduce(0) { $0 + Foundation.exp($1 - m) }) - row[Int(targets[r])]
            } / Double(rows)]
        }
        var buffer = logits.map(Float.init), losses = [Float](repeating: 0, count: rows)
        let total = CrossEntropy.forward(logits: &buffer, targets: targets, losses: &losses, rows: rows, vocabulary: v, gradientScale: 1 / Float(rows))
        XCTAssertEqual(total / Double(rows), loss(logits)[0], accuracy: 1e-5)
        assertClose(buffer, numericGradient(logits, [1], loss), "cross-entropy dlogits")
    }
}
