import Foundation
import FlashCore

/// The row-wise pieces of BERT's forward pass that are not matrix products: layer norm,
/// activations, and the bias/residual fill that lets each linear layer be one GEMM with β = 1.
/// All work on rows of a row-major Float32 matrix, split into contiguous row ranges per thread.
enum BertLayers {
    typealias Vector = SIMD16<Float>

    /// Rows handed to one work item; small enough to balance, large enough to amortise dispatch.
    static func forEachRowBlock(_ rows: Int, width: Int, threads: Int?, _ body: (Range<Int>) -> Void) {
        let rowsPerBlock = max(1, 16_384 / max(width, 1))
        let blocks = (rows + rowsPerBlock - 1) / rowsPerBlock
        Parallel.forEach(blocks, threads: threads) { block in
            body((block * rowsPerBlock)..<min(rows, (block + 1) * rowsPerBlock))
        }
    }

    /// y = (x − mean)/√(var + ε)·γ + β over each row, in place (FlashCore's row layer norm:
    /// biased variance, as PyTorch's LayerNorm).
    static func layerNorm(_ x: UnsafeMutablePointer<Float>, rows: Int, width: Int,
                          gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>, epsilon: Float, threads: Int?) {
        forEachRowBlock(rows, width: width, threads: threads) { range in
            for r in range {
                let row = x + r * width
                VectorMath.layerNorm(row, count: width, weight: gamma, bias: beta, epsilon: epsilon, output: row)
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
            case .relu: VectorMath.map(x + start, count: n) { VectorMath.maximum($0, Vector()) }
            }
        }
    }

    /// Exact-form GELU, 0.5·x·(1 + erf(x/√2)).
    static func geluErf(_ x: Vector) -> Vector {
        0.5 * x * (1 + erf(x * 0.707_106_781_186_547_6))
    }

    /// erf(x) as an odd rational function x·P(x²)/Q(x²) on [−4, 4] (±1 beyond, where erf rounds
    /// to ±1 in Float32): Eigen's and XLA's single-precision erf, absolute error ≤ 5·10⁻⁷.
    /// No exp, so it costs a dozen FMAs and one division per 16 values.
    static func erf(_ x: Vector) -> Vector {
        let raised = x.replacing(with: -4, where: x .< -4)
        let clamped = raised.replacing(with: 4, where: raised .> 4)
        let x2 = clamped * clamped
        var p = Vector(repeating: -2.726_142_258_013_06e-10)
        p = p * x2 + 2.770_681_424_959_02e-08
        p = p * x2 - 2.101_024_020_825_08e-06
        p = p * x2 - 5.692_506_394_623_46e-05
        p = p * x2 - 7.349_906_303_268_55e-04
        p = p * x2 - 2.954_599_808_540_25e-03
        p = p * x2 - 1.609_603_332_624_15e-02
        var q = Vector(repeating: -1.456_607_184_649_96e-05)
        q = q * x2 - 2.133_740_552_789_05e-04
        q = q * x2 - 1.682_826_974_382_03e-03
        q = q * x2 - 7.373_329_167_204_68e-03
        q = q * x2 - 1.426_473_905_141_89e-02
        var result = clamped * p / q
        result.replace(with: x, where: x .!= x)
        return result
    }
}
