import Foundation
import FlashCore

/// Layer normalisation over the last axis: y = (x − mean)·rstd·w + b, rstd = 1/√(var + ε)
/// (biased variance, as PyTorch). Rows are batch × time.
public enum LayerNorm {
    /// input [R, C] → output [R, C]; saves mean [R] and rstd [R] for the backward pass.
    public static func forward(
        input: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        output: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>,
        rows: Int, width: Int, epsilon: Float, threads: Int? = nil
    ) {
        Parallel.forEach(rows, threads: threads) { r in
            let (m, s) = VectorMath.layerNorm(input + r * width, count: width, weight: weight, bias: bias,
                                              epsilon: epsilon, output: output + r * width)
            mean[r] = m
            rstd[r] = s
        }
    }

    /// inputGradient [R, C] = (or += when `accumulate`) ∂L/∂x; weightGradient [C] and
    /// biasGradient [C] accumulate. With x̂ = (x − mean)·rstd and g = dy·w:
    /// dx = rstd·(g − mean(g) − x̂·mean(g·x̂)).
    public static func backward(
        input: UnsafePointer<Float>, weight: UnsafePointer<Float>, mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>,
        outputGradient: UnsafePointer<Float>, inputGradient: UnsafeMutablePointer<Float>, accumulate: Bool,
        weightGradient: UnsafeMutablePointer<Float>, biasGradient: UnsafeMutablePointer<Float>?,
        rows: Int, width: Int, threads: Int? = nil
    ) {
        Parallel.forEach(rows, threads: threads) { r in
            let x = input + r * width, dy = outputGradient + r * width, dx = inputGradient + r * width
            let m = mean[r], s = rstd[r]
            var meanG: Float = 0, meanGX: Float = 0
            for c in 0..<width {
                let g = dy[c] * weight[c]
                meanG += g
                meanGX += g * (x[c] - m) * s
            }
            meanG /= Float(width)
            meanGX /= Float(width)
            for c in 0..<width {
                let xHat = (x[c] - m) * s
                let value = s * (dy[c] * weight[c] - meanG - xHat * meanGX)
                dx[c] = accumulate ? dx[c] + value : value
            }
        }
        let blocks = (width + ColumnSums.block - 1) / ColumnSums.block
        Parallel.forEach(blocks, threads: threads) { blockIndex in
            let start = blockIndex * ColumnSums.block, end = min(width, start + ColumnSums.block)
            for r in 0..<rows {
                let x = input + r * width, dy = outputGradient + r * width
                let m = mean[r], s = rstd[r]
                for c in start..<end {
                    weightGradient[c] += dy[c] * (x[c] - m) * s
                    biasGradient?[c] += dy[c]
                }
            }
        }
    }
}

/// RMS normalisation (LLaMA): y = x·rstd·w, rstd = 1/√(mean(x²) + ε). No mean, no bias.
public enum RMSNorm {
    /// input [R, C] → output [R, C]; saves rstd [R].
    public static func forward(
        input: UnsafePointer<Float>, weight: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
        rstd: UnsafeMutablePointer<Float>, rows: Int, width: Int, epsilon: Float, threads: Int? = nil
    ) {
        Parallel.forEach(rows, threads: threads) { r in
            let x = input + r * width, y = output + r * width
            let s = 1 / (VectorMath.dot(x, x, count: width) / Float(width) + epsilon).squareRoot()
            for c in 0..<width { y[c] = x[c] * s * weight[c] }
            rstd[r] = s
        }
    }

    /// With x̂ = x·rstd and g = dy·w: dx = rstd·(g − x̂·mean(g·x̂)); dw += Σ_rows dy·x̂.
    public static func backward(
        input: UnsafePointer<Float>, weight: UnsafePointer<Float>, rstd: UnsafePointer<Float>,
        outputGradient: UnsafePointer<Float>, inputGradient: UnsafeMutablePointer<Float>, accumulate: Bool,
        weightGradient: UnsafeMutablePointer<Float>, rows: Int, width: Int, threads: Int? = nil
    ) {
        Parallel.forEach(rows, threads: threads) { r in
            let x = input + r * width, dy = outputGradient + r * width, dx = inputGradient + r * width
            let s = rstd[r]
            var meanGX: Float = 0
            for c in 0..<width { meanGX += dy[c] * weight[c] * x[c] * s }
            meanGX /= Float(width)
            for c in 0..<width {
                let value = s * (dy[c] * weight[c] - x[c] * s * meanGX)
                dx[c] = accumulate ? dx[c] + value : value
            }
        }
        let blocks = (width + ColumnSums.block - 1) / ColumnSums.block
        Parallel.forEach(blocks, threads: threads) { blockIndex in
            let start = blockIndex * ColumnSums.block, end = min(width, start + ColumnSums.block)
            for r in 0..<rows {
                let x = input + r * width, dy = outputGradient + r * width, s = rstd[r]
                for c in start..<end { weightGradient[c] += dy[c] * x[c] * s }
            }
        }
    }
}
