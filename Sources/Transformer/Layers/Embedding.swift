import Foundation
import FlashCore

/// Token embedding lookup plus, for learned absolute positions, a position embedding.
public enum Embedding {
    /// output[b·T + t, :] = tokenTable[tokens[b·T + t], :] + positionTable[positionOffset + t, :]
    /// (or positionTable[positions[t], :] when `positions` gives each of the T rows' position,
    /// as for a context-parallel shard of a sequence).
    public static func forward(
        tokens: UnsafePointer<Int32>, tokenTable: UnsafePointer<Float>, positionTable: UnsafePointer<Float>?,
        output: UnsafeMutablePointer<Float>, batch: Int, time: Int, width: Int, positionOffset: Int = 0,
        positions: [Int]? = nil, threads: Int? = nil
    ) {
        Parallel.forEach(batch * time, threads: threads) { row in
            let y = output + row * width
            y.update(from: tokenTable + Int(tokens[row]) * width, count: width)
            if let positionTable {
                let position = positions?[row % time] ?? positionOffset + row % time
                VectorMath.add(positionTable + position * width, to: y, count: width)
            }
        }
    }

    /// tokenGradient[tokens[r], :] += outputGradient[r, :], positionGradient[t, :] likewise.
    /// Parallel over column blocks, rows in order, so repeated tokens sum deterministically.
    public static func backward(
        tokens: UnsafePointer<Int32>, outputGradient: UnsafePointer<Float>,
        tokenGradient: UnsafeMutablePointer<Float>, positionGradient: UnsafeMutablePointer<Float>?,
        batch: Int, time: Int, width: Int, positions: [Int]? = nil, threads: Int? = nil
    ) {
        let block = 64
        Parallel.forEach((width + block - 1) / block, threads: threads) { blockIndex in
            let start = blockIndex * block, end = min(width, start + block)
            for row in 0..<(batch * time) {
                let dy = outputGradient + row * width
                let dToken = tokenGradient + Int(tokens[row]) * width
                for c in start..<end { dToken[c] += dy[c] }
                if let positionGradient {
                    let dPosition = positionGradient + (positions?[row % time] ?? row % time) * width
                    for c in start..<end { dPosition[c] += dy[c] }
                }
            }
        }
    }
}

/// Cross-entropy over every position in parallel, softmax and its gradient fused.
public enum CrossEntropy {
    /// losses[r] = logsumexp(logits[r, :]) − logits[r, targets[r]] for every row. When
    /// `gradientScale` is given, overwrites the logits with ∂(gradientScale·Σ losses)/∂logits =
    /// gradientScale·(softmax − one-hot), so the logits buffer doubles as its gradient.
    /// Returns Σ losses, summed in row order in Float64.
    @discardableResult
    public static func forward(
        logits: UnsafeMutablePointer<Float>, targets: UnsafePointer<Int32>, losses: UnsafeMutablePointer<Float>,
        rows: Int, vocabulary: Int, gradientScale: Float?, threads: Int? = nil
    ) -> Double {
        Parallel.forEach(rows, threads: threads) { r in
            let row = logits + r * vocabulary
            let target = Int(targets[r])
            let targetLogit = row[target]
            let m = VectorMath.max(row, count: vocabulary)
            // Σ e^(z − m), 16 lanes at a time; with a gradient, e^(z − m) is stored in place.
            var sums = Activations.Vector()
            var i = 0
            while i < vocabulary {
                let lanes = min(Activations.Vector.scalarCount, vocabulary - i)
                var e = VectorMath.exp(VectorMath.load(row + i, count: lanes) - m)
                if lanes < Activations.Vector.scalarCount {
                    for j in lanes..<Activations.Vector.scalarCount { e[j] = 0 }
                }
                sums += e
                if gradientScale != nil { VectorMath.store(e, to: row + i, count: lanes) }
                i += Activations.Vector.scalarCount
            }
            let total = VectorMath.sum(sums)
            losses[r] = m + Foundation.log(total) - targetLogit
            if let gradientScale {
                // softmax − one-hot, scaled: logits now hold the gradient.
                VectorMath.scale(row, count: vocabulary, by: gradientScale / total)
                row[target] -= gradientScale
            }
        }
        var total = 0.0
        for r in 0..<rows { total += Double(losses[r]) }
        return total
    }
}

/// Inverted dropout with a counter-based mask: element i is kept iff a hash of (seed, i) is
/// at least p, and kept values are scaled by 1/(1 − p). The mask is recomputed in the
/// backward pass instead of stored.
public enum Dropout {
    /// SplitMix64's finaliser: a bijective 64-bit mix.
    @inlinable
    public static func mix(_ value: UInt64) -> UInt64 {
        var z = value &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// y[i] = x[i]·mask(firstIndex + i)/(1 − p) (in place allowed). Use for both directions: the
    /// backward pass applies the same mask to the gradient. `firstIndex` places these elements in
    /// a larger tensor's mask (a data-parallel rank's rows of the global batch).
    public static func apply(_ input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, count: Int,
                             probability: Float, seed: UInt64, firstIndex: Int = 0, threads: Int? = nil) {
        let threshold = UInt64(Double(probability) * 16_777_216)
        let scale = 1 / (1 - probability)
        Activations.chunked(count, threads: threads) { start, n in
            for i in start..<(start + n) {
                let keep = (mix(seed ^ mix(UInt64(firstIndex + i))) >> 40) >= threshold
                output[i] = keep ? input[i] * scale : 0
            }
        }
    }
}
