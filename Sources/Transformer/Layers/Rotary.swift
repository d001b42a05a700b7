import Foundation
import FlashCore

/// Rotary position embeddings (RoFormer; LLaMA), "rotate half" convention (GPT-NeoX and
/// Hugging Face LLaMA): within each head, element i pairs with element i + D/2, and the pair
/// at position p is rotated by the angle (p / scaling)·θ^(−2i/D). Linear position
/// interpolation divides positions by `scaling`.
public struct RotaryTable: Sendable {
    /// Width of one head (the table covers its D/2 pairs).
    public let headDim: Int
    /// Positions the table covers.
    public let positions: Int
    /// cos and sin, [positions, headDim/2] each.
    let cosines: [Float]
    let sines: [Float]

    /// The cosines and sines for `positions` positions of heads `headDim` wide, base `theta`,
    /// positions divided by `scaling`.
    public init(headDim: Int, positions: Int, theta: Float, scaling: Float) {
        self.headDim = headDim
        self.positions = positions
        let half = headDim / 2
        var cosines = [Float](repeating: 0, count: positions * half), sines = cosines
        for p in 0..<positions {
            for i in 0..<half {
                // Angles in Float64 so that large positions keep their accuracy.
                let frequency = Foundation.pow(Double(theta), -2 * Double(i) / Double(headDim))
                let angle = Double(p) / Double(scaling) * frequency
                cosines[p * half + i] = Float(Foundation.cos(angle))
                sines[p * half + i] = Float(Foundation.sin(angle))
            }
        }
        self.cosines = cosines
        self.sines = sines
    }

    /// Rotates, in place, `heads` heads of width D in each row of `buffer` ([batch·time, rowStride],
    /// heads starting at column `column`), row b·time + t at position `positionOffset + t`.
    /// `inverse` rotates by the negative angle: the backward pass (a rotation's transpose).
    public func apply(_ buffer: UnsafeMutablePointer<Float>, rowStride: Int, column: Int, heads: Int,
                      batch: Int, time: Int, positionOffset: Int, positions: [Int]? = nil, inverse: Bool, threads: Int? = nil) {
        let half = headDim / 2
        let sign: Float = inverse ? -1 : 1
        cosines.withUnsafeBufferPointer { cosBuffer in
            sines.withUnsafeBufferPointer { sinBuffer in
                let cosBase = cosBuffer.baseAddress!, sinBase = sinBuffer.baseAddress!
                Parallel.forEach(batch * time, threads: threads) { row in
                    let p = positions?[row % time] ?? positionOffset + row % time
                    let c = cosBase + p * half, s = sinBase + p * half
                    for h in 0..<heads {
                        let x = buffer + row * rowStride + column + h * headDim
                        for i in 0..<half {
                            let a = x[i], b = x[i + half], sn = sign * s[i]
                            x[i] = a * c[i] - b * sn
                            x[i + half] = b * c[i] + a * sn
                        }
                    }
                }
            }
        }
    }
}

/// ALiBi (Press et al.): head h adds −slope_h·(distance) to its logits. For n a power of two,
/// slope_h = 2^(−8(h+1)/n); otherwise the slopes of the nearest lower power of two followed by
/// every other slope of twice that many (the reference implementation's rule).
public enum ALiBi {
    /// The slope of each of `heads` heads, by the rule above.
    public static func slopes(heads: Int) -> [Float] {
        func powerOfTwoSlopes(_ n: Int) -> [Float] {
            (0..<n).map { Float(Foundation.pow(2.0, -8.0 * Double($0 + 1) / Double(n))) }
        }
        var closest = 1
        while closest * 2 <= heads { closest *= 2 }
        if closest == heads { return powerOfTwoSlopes(heads) }
        let extra = powerOfTwoSlopes(2 * closest)
        return powerOfTwoSlopes(closest) + stride(from: 0, to: 2 * closest, by: 2).prefix(heads - closest).map { extra[$0] }
    }
}
