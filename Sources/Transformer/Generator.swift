import FlashCore

/// Autoregressive generation from a model, with or without a KV cache.
///
/// With the cache, the prompt is processed in one pass (prefill), then one token per pass
/// against the cached keys and values. Once the sequence fills the context, the model sees
/// only the last `context` tokens (a sliding window, as nanoGPT's `generate`); positions
/// then shift every step, so the window is recomputed in full each step — exactly what the
/// cacheless path computes, which keeps both paths' greedy outputs identical.
public struct Generator {
    /// The model generating.
    public let model: TransformerModel
    /// Whether the prompt is processed once and later tokens run against a `KVCache`.
    public let useCache: Bool

    /// A generator for `model`, with the KV cache unless `useCache` is false.
    public init(model: TransformerModel, useCache: Bool = true) {
        self.model = model
        self.useCache = useCache
    }

    /// Generates up to `maxTokens` tokens after `prompt`. `choose` picks the next token from
    /// the last position's logits; `emit` receives each token as soon as it is chosen and
    /// returns false to stop early. Returns the generated tokens (without the prompt).
    @discardableResult
    public func generate(prompt: [Int], maxTokens: Int,
                         choose: (UnsafeBufferPointer<Float>) -> Int,
                         emit: (Int) -> Bool = { _ in true }) throws -> [Int] {
        let config = model.config
        try InvalidArgument.require(!prompt.isEmpty, "prompt", expected: "at least one token", got: "none")
        try InvalidArgument.require(maxTokens >= 0, "maxTokens", expected: "≥ 0", got: "\(maxTokens)")
        var sequence = prompt
        var generated: [Int] = []
        let cache = useCache ? try KVCache(config: config, capacity: config.context) : nil
        var pending = Array(prompt.suffix(config.context))
        while generated.count < maxTokens {
            let time: Int
            if let cache, cache.length + pending.count <= config.context {
                time = pending.count
                try model.forward(tokens: pending.map(Int32.init), batch: 1, time: time, mode: .inference, cache: cache)
            } else {
                // No cache, or the window slid: recompute the last `context` tokens.
                let window = Array(sequence.suffix(config.context))
                time = window.count
                try model.forward(tokens: window.map(Int32.init), batch: 1, time: time, mode: .inference)
            }
            let next = choose(model.logits(row: time - 1))
            try InvalidArgument.require(next >= 0 && next < config.vocabularySize, "choose", expected: "a token in 0..<\(config.vocabularySize)", got: "\(next)")
            sequence.append(next)
            generated.append(next)
            pending = [next]
            if !emit(next) { break }
        }
        return generated
    }

    /// The index of the largest logit (ties: the lowest index).
    public static func argmax(_ logits: UnsafeBufferPointer<Float>) -> Int {
        var best = 0
        for i in 1..<logits.count where logits[i] > logits[best] { best = i }
        return best
    }
}
