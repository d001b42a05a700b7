import Foundation

/// SplitMix64: a small, fast, seedable generator whose whole state is one UInt64, so a run's
/// random stream can be saved in a checkpoint and resumed exactly.
public struct TrainerRandom: RandomNumberGenerator, Codable, Equatable, Sendable {
    /// The whole state: advanced by a constant each draw, then mixed.
    public var state: UInt64

    /// A generator whose stream is determined by `seed`.
    public init(seed: UInt64) { state = seed }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 53 random bits.
    public mutating func nextUniform() -> Double { Double(next() >> 11) * 0x1p-53 }

    /// A standard normal sample (Box–Muller).
    public mutating func nextNormal() -> Double {
        let u1 = max(nextUniform(), 0x1p-60), u2 = nextUniform()
        return (-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * Double.pi * u2)
    }

    /// Uniform integer in 0..<bound (bound > 0), by rejection so there is no modulo bias.
    public mutating func nextInt(below bound: Int) -> Int {
        Int(truncatingIfNeeded: next(upperBound: UInt64(bound)))
    }
}
