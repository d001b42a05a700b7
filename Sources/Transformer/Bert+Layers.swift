import Foundation
import FlashCore

/// The row-wise pieces of BERT's forward pass that are not matrix products: layer norm,
/// activations, and the bias/residual fill that lets each linear layer be one GEMM with β = 1.
/// All work on rows of a row-major Float32 matrix, split into contiguous row ranges per thread.
enum BertLayers {
    typealias Vector = SIMD16<Float>
    static let width = Vector.scalarCount

    /// Rows handed to one work item; small enough to balance, large enough to amortise dispatch.
    static func forEachRowBlock(_ rows: Int, width: Int, threads: Int?, _ body: (Range<Int>) -> Void) {
        let rowsPerBlock = max(1, 16_384 / max(width, 1))
        let blocks = (rows + rowsPerBlock - 1) / rowsPerBlock
        Parallel.forEach(blocks, threads: threads) { block in
            body((block * rowsPerBlock)..<min(rows, (block + 1) * rowsPerBlock))
        }
    }

    /// y = (x − mean)/√(var + ε)·γ + β over each row, in place (biased variance, as PyTorch's
    /// LayerNorm). Two passes over the row (mean, then centred squares) avoid the cancellation of
    /// E[x²] − E[x]².
    static func layerNorm(_ x: UnsafeMutablePointer<Float>, rows: Int, width: Int,
                          gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>, epsilon: Float, threads: Int?) {
        forEachRowBlock(rows, width: width, threads: threads) { range in
            for r in range {
                let row = x + r * width
                let mean = VectorMath.sum(row, count: width) / Float(width)
                var squares = Vector()
                var i = 0
                while i + Self.width <= width {
                    let d = UnsafeRawPointer(row + i).loadUnaligned(as: Vector.self) - mean
                    squares = squares.addingProduct(d, d)
                    i += Self.width
                }
                var variance = squares.sum()
                while i < width { let d = row[i] - mean; variance += d * d; i += 1 }
                let inverse = 1 / (variance / Float(width) + epsilon).squareRoot()
                i = 0
                while i + Self.width <= width {
                    let v = UnsafeRawPointer(row + i).loadUnaligned(as: Vector.self)
                    let g = UnsafeRawPointer(gamma + i).loadUnaligned(as: Vector.self)
                    let b = UnsafeRawPointer(beta + i).loadUnaligned(as: Vector.self)
                    UnsafeMutableRawPointer(row + i).storeBytes(of: (v - mean) * inverse * g + b, as: Vector.self)
                    i += Self.width
                }
                while i < width { row[i] = (row[i] - mean) * inverse * gamma[i] + beta[i]; i += 1 }
            }
        }
    }

    /// Each row of `destination` = `bias` (+ the same row of `residual`), ready for a GEMM
    /// that accumulates the product on top (β = 1).
    static func fillRows(_ destination: UnsafeMutablePointer<Float>, rows: Int, width: Int,
                         bias: UnsafePointer<Float>, residual: UnsafePointer<Float>?, threads: Int?) {
        forEachRowBlock(rows, width: width, threads: threads) { range in
            for r in range {
                let row = destination + r * width
                if let residual {
                    row.update(from: residual + r * width, count: width)
                    VectorMath.add(bias, to: row, count: width)
                } else {
                    row.update(from: bias, count: width)
                }
            }
        }
    }

    /// Applies `activation` in place to `count` values.
    static func activate(_ x: UnsafeMutablePointer<Float>, count: Int, activation: BertActivation, threads: Int?) {
        let chunk = 16_384
        Parallel.forEach((count + chunk - 1) / chunk, threads: threads) { block in
            let start = block * chunk
            let n = min(count, start + chunk) - start
            switch activation {
            case .gelu: VectorMath.map(x + start, count: n) { geluErf($0) }
            case .geluTanh: VectorMath.map(x + start, count: n) { VectorMath.geluTanh($0) }
            case .relu: VectorMath.map(x + start, count: n) { pointwiseMax($0, Vector()) }
            }
        }
    }

    /// Exact-form GELU, 0.5·x·(1 + erf(x/√2)), with erf by Abramowitz & Stegun 7.1.26
    /// (absolute error ≤ 1.5·10⁻⁷, the approximation PyTorch's vectorised CPU erf uses).
    @inlinable
    static func geluErf(_ x: Vector) -> Vector {
        0.5 * x * (1 + erf(x * 0.707_106_781_186_547_6))
    }

    /// erf(x) = sign(x)·(1 − t·P(t)·e^{−x²}), t = 1/(1 + p|x|).
    @inlinable
    static func erf(_ x: Vector) -> Vector {
        let a = pointwiseMin(pointwiseMax(x, -x), Vector(repeating: 10))
        let t = 1 / (1 + 0.327_591_1 * a)
        var p = Vector(repeating: 1.061_405_429)
        p = p * t - 1.453_152_027
        p = p * t + 1.421_413_741
        p = p * t - 0.284_496_736
        p = p * t + 0.254_829_592
        let y = 1 - p * t * VectorMath.exp(-a * a)
        var result = y
        result.replace(with: -y, where: x .< 0)
        result.replace(with: x, where: x .!= x)
        return result
    }
}
