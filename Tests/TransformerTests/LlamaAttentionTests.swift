import XCTest
import FlashCore
import FlashAttention
import Transformer

/// The KV-cache attention of the LLaMA decoder against the project's `Attention.forward`
/// (causal, bottom-right aligned, grouped-query) on the same cached keys and values.
final class LlamaAttentionTests: XCTestCase {
    func testMatchesAttentionForwardOverTheCachePrefix() throws {
        let (heads, kvHeads, d) = (6, 2, 16)
        for (start, tokens) in [(0, 5), (7, 1), (3, 4)] {
            let positions = start + tokens
            var rng = SystemRandomNumberGenerator()
            let q = (0..<(tokens * heads * d)).map { _ in Float.random(in: -1...1, using: &rng) }
            let k = (0..<(positions * kvHeads * d)).map { _ in Float.random(in: -1...1, using: &rng) }
            let v = (0..<(positions * kvHeads * d)).map { _ in Float.random(in: -1...1, using: &rng) }
            var out = [Float](repeating: .nan, count: tokens * heads * d)
            LlamaAttention.causal(query: q, tokens: tokens, start: start, keys: k, values: v, heads: heads,
                                  keyValueHeads: kvHeads, headDimension: d, into: &out, threads: 2)
            let reference = try Attention.forward(
                query: Tensor(shape: [1, tokens, heads, d], values: q),
                key: Tensor(shape: [1, positions, kvHeads, d], values: k),
                value: Tensor(shape: [1, positions, kvHeads, d], values: v),
                descriptor: AttentionDescriptor(causal: true)).output.floats()
            for i in out.indices { XCTAssertEqual(out[i], reference[i], accuracy: 1e-5, "start \(start) element \(i)") }
        }
    }
}
