import XCTest
import Transformer

final class GenerationTests: XCTestCase {
    /// Greedy decoding with the KV cache equals recomputing the whole context every step, and
    /// every step's logits agree, past the prompt and past the context (where the window slides).
    func check(_ config: TransformerConfig) throws {
        let model = try TransformerModel(config: config, seed: 21)
        // Larger weights make the logits peaky, so greedy choices are not near-ties.
        for i in 0..<model.parameterCount { model.parameters[i] *= 5 }
        let prompt = [3, 1, 4]
        var cachedLogits: [[Float]] = [], fullLogits: [[Float]] = []
        let cached = try Generator(model: model, useCache: true).generate(prompt: prompt, maxTokens: 2 * config.context) {
            cachedLogits.append(Array($0)); return Generator.argmax($0)
        }
        let full = try Generator(model: model, useCache: false).generate(prompt: prompt, maxTokens: 2 * config.context) {
            fullLogits.append(Array($0)); return Generator.argmax($0)
        }
        XCTAssertEqual(cached, full)
        XCTAssertEqual(cached.count, 2 * config.context)
        for (a, b) in zip(cachedLogits, fullLogits) {
            for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: 1e-4 * max(1, abs(y))) }
        }
        XCTAssertGreaterThan(Set(cached).count, 1, "degenerate model: it always picks the same token")
    }

    func testCacheMatchesRecomputeWithRotaryGQA() throws {
        try check(TransformerConfig(layers: 2, heads: 4, kvHeads: 2, width: 16, context: 10, vocabularySize: 13,
                                    positionEncoding: .rotary, norm: .rmsNorm, activation: .swiglu, bias: false, tiedEmbeddings: false))
    }

    func testCacheMatchesRecomputeWithLearnedPositions() throws {
        try check(TransformerConfig(layers: 2, heads: 2, width: 16, context: 10, vocabularySize: 13))
    }

    func testCacheMatchesRecomputeWithALiBiPostNormMQA() throws {
        try check(TransformerConfig(layers: 2, heads: 2, kvHeads: 1, width: 16, context: 10, vocabularySize: 13,
                                    positionEncoding: .alibi, normPlacement: .post, tiedEmbeddings: false))
    }

    func testEarlyStopAndEmptyPrompt() throws {
        let model = try TransformerModel(config: TransformerConfig(layers: 1, heads: 2, width: 8, context: 8, vocabularySize: 5))
        var emitted: [Int] = []
        let out = try Generator(model: model).generate(prompt: [1], maxTokens: 5, choose: Generator.argmax) { emitted.append($0); return emitted.count < 2 }
        XCTAssertEqual(out, emitted)
        XCTAssertEqual(out.count, 2)
        XCTAssertThrowsError(try Generator(model: model).generate(prompt: [], maxTokens: 3, choose: Generator.argmax))
    }
}
