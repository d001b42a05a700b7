extension VectorMath {
    /// Layer normalisation of one row of `count` values: output[i] = (x[i] − mean)·rstd·weight[i]
    /// + bias[i] with rstd = 1/√(var + ε) and the biased variance (PyTorch's `LayerNorm`); no
    /// bias means 0. Two passes (the mean, then the centred squares) avoid the cancellation of
    /// E[x²] − E[x]². `output` may be `input` (in place). Returns the mean and rstd, which a
    /// backward pass keeps.
    @inlinable
    @discardableResult
    public static func layerNorm(
        _ input: UnsafePointer<Float>, count: Int, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        epsilon: Float, output: UnsafeMutablePointer<Float>
    ) -> (mean: Float, rstd: Float) {
        @inline(__always) func load(_ p: UnsafePointer<Float>, _ i: Int) -> Vector {
            UnsafeRawPointer(p + i).loadUnaligned(as: Vector.self)
        }
        let mean = sum(input, count: count) / Float(count)
        var squares = Vector()
        var i = 0
        while i + width <= count {
            let d = load(input, i) - mean
            squares = squares.addingProduct(d, d)
            i += width
        }
        var variance = sum(squares)
        while i < count { let d = input[i] - mean; variance += d * d; i += 1 }
        let rstd = 1 / (variance / Float(count) + epsilon).squareRoot()
        i = 0
        while i + width <= count {
            let scaled = (load(input, i) - mean) * rstd * load(weight, i)
            let shifted = bias.map { scaled + load($0, i) } ?? scaled
            UnsafeMutableRawPointer(output + i).storeBytes(of: shifted, as: Vector.self)
            i += width
        }
        while i < count { output[i] = (input[i] - mean) * rstd * weight[i] + (bias?[i] ?? 0); i += 1 }
        return (mean, rstd)
    }
}
