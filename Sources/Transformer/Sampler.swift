import Foundation
import FlashCore

/// Picks the next token from a row of logits: greedy, or a draw from softmax(logits / T)
/// restricted by top-k and top-p (nucleus), using a seeded generator so that the same seed and
/// the same logits give the same tokens on every machine.
///
/// The generator is xoshiro256** (Blackman & Vigna), its 256-bit state filled from `seed` by
/// SplitMix64 (the seeding its authors recommend); a uniform draw in [0, 1) takes the top 53
/// bits of one output. It is not cryptographic; it is fast, well distributed, and reproducible.
public struct Sampler {
    /// Divides the logits; 0 means greedy (argmax, ties to the lowest index).
    public let temperature: Float
    /// Keep only the k highest logits (ties: lower index first); `nil` keeps all.
    public let topK: Int?
    /// Keep the smallest set of most likely tokens whose probability (after top-k) reaches
    /// `topP`; 1 keeps all.
    public let topP: Float
    /// The seed the generator started from.
    public let seed: UInt64
    private var state: (UInt64, UInt64, UInt64, UInt64)

    /// Throws `InvalidArgument` for a negative or non-finite temperature, a top-k below 1, or a
    /// top-p outside (0, 1].
    public init(temperature: Float = 1, topK: Int? = nil, topP: Float = 1, seed: UInt64 = 0) throws {
        try InvalidArgument.require(temperature.isFinite && temperature >= 0, "temperature",
                                    expected: "a finite value ≥ 0 (0 = greedy)", got: "\(temperature)")
        if let topK { try InvalidArgument.require(topK >= 1, "topK", expected: "≥ 1", got: "\(topK)") }
        try InvalidArgument.require(topP > 0 && topP <= 1, "topP", expected: "in (0, 1]", got: "\(topP)")
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.seed = seed
        var splitMix = seed
        func nextSplitMix() -> UInt64 {
            splitMix &+= 0x9E37_79B9_7F4A_7C15
            var z = splitMix
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        state = (nextSplitMix(), nextSplitMix(), nextSplitMix(), nextSplitMix())
    }

    /// The next 64 random bits (xoshiro256**).
    private mutating func nextBits() -> UInt64 {
        let result = ((state.1 &* 5) << 7 | (state.1 &* 5) >> 57) &* 9
        let t = state.1 << 17
        state.2 ^= state.0
        state.3 ^= state.1
        state.1 ^= state.2
        state.0 ^= state.3
        state.2 ^= t
        state.3 = state.3 << 45 | state.3 >> 19
        return result
    }

    /// A uniform draw in [0, 1).
    private mutating func nextUniform() -> Double { Double(nextBits() >> 11) * 0x1p-53 }

    /// The index of the chosen token among `count` logits (`count` ≥ 1).
    ///
    /// NaN logits are never chosen. If the largest logit is +∞, the draw is uniform over the +∞
    /// entries; if every logit is −∞ or NaN there is nothing to weigh and the result is the
    /// greedy choice (the lowest index that is not NaN, or 0).
    public mutating func sample(logits: UnsafePointer<Float>, count: Int) -> Int {
        precondition(count >= 1, "Sampler.sample needs at least one logit")
        var best = -1
        for index in 0..<count where !logits[index].isNaN && (best < 0 || logits[index] > logits[best]) { best = index }
        if best < 0 { return 0 }
        let maximum = logits[best]
        if temperature == 0 || maximum == -.infinity { return best }

        // Candidates, most likely first when a cut needs that order.
        var candidates = (0..<count).filter { !logits[$0].isNaN && logits[$0] > -.infinity }
        if maximum == .infinity { candidates = candidates.filter { logits[$0] == .infinity } }
        if let topK, topK < candidates.count {
            candidates = Self.largest(topK, of: candidates, logits: logits)
        } else if topP < 1 {
            candidates.sort { logits[$0] != logits[$1] ? logits[$0] > logits[$1] : $0 < $1 }
        }
        // Weights exp((l − max)/T) in Double: the largest is exactly 1, none overflow.
        var weights = candidates.map { maximum == .infinity ? 1 : Foundation.exp(Double(logits[$0] - maximum) / Double(temperature)) }
        if topP < 1 {
            let total = weights.reduce(0, +)
            var running = 0.0
            var keep = 0
            while keep < weights.count {
                running += weights[keep]
                keep += 1
                if running >= Double(topP) * total { break }
            }
            weights.removeSubrange(keep...)
        }
        let threshold = nextUniform() * weights.reduce(0, +)
        var running = 0.0
        for (position, weight) in weights.enumerated() {
            running += weight
            if threshold < running { return candidates[position] }
        }
        return candidates[weights.count - 1]  // rounding left the threshold at the very top
    }

    /// The `k` candidates (given in increasing index order) with the largest logits, largest
    /// first, ties to the lower index: the order a full sort gives, in one pass over a small
    /// sorted list. Most logits fall below the k-th and cost one comparison, where sorting a
    /// 50k-token vocabulary per token costs milliseconds.
    private static func largest(_ k: Int, of candidates: [Int], logits: UnsafePointer<Float>) -> [Int] {
        var top: [Int] = []
        top.reserveCapacity(k + 1)
        for index in candidates {
            if top.count == k && !(logits[index] > logits[top[k - 1]]) { continue }
            var position = top.count
            while position > 0 && logits[index] > logits[top[position - 1]] { position -= 1 }
            top.insert(index, at: position)
            if top.count > k { top.removeLast() }
        }
        return top
    }

    /// `sample(logits:count:)` on an array.
    public mutating func sample(_ logits: [Float]) -> Int {
        logits.withUnsafeBufferPointer { sample(logits: $0.baseAddress!, count: $0.count) }
    }
}
