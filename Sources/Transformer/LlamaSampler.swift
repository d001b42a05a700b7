import Foundation
import FlashCore

/// Picks the next token from logits: greedy at temperature 0, else softmax(logits/T) restricted
/// to the `topK` most likely tokens and then to the smallest set whose probability reaches
/// `topP`, sampled with a seeded generator (same seed, same text).
public struct LlamaSampler {
    public var temperature: Float
    public var topK: Int
    public var topP: Float
    private var state: UInt64

    /// `temperature` ≥ 0, `topK` ≥ 0 (0: no limit), `topP` in (0, 1].
    public init(temperature: Float, topK: Int = 40, topP: Float = 0.95, seed: UInt64 = 0) throws {
        try InvalidArgument.require(temperature >= 0 && temperature.isFinite, "temperature", expected: "a finite value ≥ 0", got: "\(temperature)")
        try InvalidArgument.require(topK >= 0, "top-k", expected: "≥ 0 (0 = all tokens)", got: "\(topK)")
        try InvalidArgument.require(topP > 0 && topP <= 1, "top-p", expected: "in (0, 1]", got: "\(topP)")
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        state = seed
    }

    /// SplitMix64: a uniform Double in [0, 1).
    private mutating func uniform() -> Double {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return Double((z ^ (z >> 31)) >> 11) / Double(1 << 53)
    }

    /// The index of the largest logit (the first on ties).
    public static func argmax(_ logits: [Float]) -> Int {
        var best = 0
        for i in logits.indices where logits[i] > logits[best] { best = i }
        return best
    }

    public mutating func sample(_ logits: [Float]) -> Int {
        if temperature == 0 { return Self.argmax(logits) }
        let order = topK > 0 && topK < logits.count
            ? Self.largest(topK, of: logits)
            : logits.indices.sorted { logits[$0] > logits[$1] }
        let maxLogit = logits[order[0]]
        var probabilities = order.map { Foundation.exp(Double((logits[$0] - maxLogit) / temperature)) }
        let total = probabilities.reduce(0, +)
        for i in probabilities.indices { probabilities[i] /= total }
        var kept = probabilities.count
        var cumulative = 0.0
        for (i, p) in probabilities.enumerated() {
            cumulative += p
            if cumulative >= Double(topP) { kept = i + 1; break }
        }
        let mass = probabilities.prefix(kept).reduce(0, +)
        var target = uniform() * mass
        for i in 0..<kept {
            target -= probabilities[i]
            if target < 0 { return order[i] }
        }
        return order[kept - 1]
    }

    /// Indices of the `k` largest logits, largest first (earlier index first on ties), in one
    /// pass with a small sorted list: most logits fall below the k-th and cost one comparison,
    /// where sorting the whole vocabulary costs milliseconds per token.
    public static func largest(_ k: Int, of logits: [Float]) -> [Int] {
        var top: [Int] = []
        top.reserveCapacity(k + 1)
        for i in logits.indices {
            if top.count == k && !(logits[i] > logits[top[k - 1]]) { continue }
            var position = top.count
            while position > 0 && logits[i] > logits[top[position - 1]] { position -= 1 }
            top.insert(i, at: position)
            if top.count > k { top.removeLast() }
        }
        return top
    }
}
