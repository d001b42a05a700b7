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
        typealias V = VectorMath.Vector
        let lanes = V.scalarCount
        Parallel.forEach(rows, threads: threads) { r in
            let x = input + r * width, dy = outputGradient + r * width, dx = inputGradient + r * width
            let m = mean[r], s = rstd[r]
            // 16 lanes at a time (partial vectors zero-padded): the scalar loops' serial
            // reductions and per-element optional checks made this a fifth of a width-128
            // training step (`perf record`).
            var sumG = V(), sumGX = V()
            var c = 0
            while c < width {
                let n = min(lanes, width - c)
                let g = VectorMath.load(dy + c, count: n) * VectorMath.load(weight + c, count: n)
                sumG += g
                sumGX += g * ((VectorMath.load(x + c, count: n) - m) * s)
                c += lanes
            }
            let meanG = VectorMath.sum(sumG) / Float(width), meanGX = VectorMath.sum(sumGX) / Float(width)
            c = 0
            while c < width {
                let n = min(lanes, width - c)
                let xHat = (VectorMath.load(x + c, count: n) - m) * s
                var value = s * (VectorMath.load(dy + c, count: n) * VectorMath.load(weight + c, count: n) - meanG - xHat * meanGX)
                if accumulate { value += VectorMath.load(dx + c, count: n) }
                VectorMath.store(value, to: dx + c, count: n)
                c += lanes
            }
        }
        // Weight and bias gradients: one 16-column block per work item, summed over the rows in
        // row order in registers (each column's sum is taken by one thread: thread-independent).
        let blocks = (width + lanes - 1) / lanes
        Parallel.forEach(blocks, threads: threads) { blockIndex in
            let start = blockIndex * lanes, n = min(lanes, width - start)
            var dw = VectorMath.load(weightGradient + start, count: n)
            var db = biasGradient.map { VectorMath.load($0 + start, count: n) } ?? V()
            for r in 0..<rows {
                let x = input + r * width + start, dy = VectorMath.load(outputGradient + r * width + start, count: n)
                dw += dy * ((VectorMath.load(x, count: n) - mean[r]) * rstd[r])
                db += dy
            }
            VectorMath.store(dw, to: weightGradient + start, count: n)
            if let biasGradient { VectorMath.store(db, to: biasGradient + start, count: n) }
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
