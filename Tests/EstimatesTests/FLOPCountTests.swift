import Estimates
import FlashAttention
import FlashCore
import Transformer
import XCTest

/// FLOPs against counts derived by hand: every matrix product listed with its (m, k, n) and every
/// query-key pair enumerated under the causal mask.
final class FLOPCountTests: XCTestCase {
    /// Multiply-adds per token of each weight product of `c`, written out product by product.
    static func weightProductsPerToken(_ c: TransformerConfig) -> Int {
        let d = c.width / c.heads
        let qkv = c.width * (c.heads + 2 * c.kvHeads) * d
        let projection = c.width * c.width
        let mlp = (c.activation == .swiglu ? 3 : 2) * c.width * c.mlpWidth
        let head = c.width * c.vocabularySize
        return c.layers * (qkv + projection + mlp) + head
    }

    /// Query-key pairs of a causal sequence of length s, by enumeration.
    static func causalPairs(_ s: Int) -> Int {
        var pairs = 0
        for i in 0..<s { for j in 0..<s where j <= i { pairs += 1 } }
        return pairs
    }

    let small = TransformerConfig(layers: 3, heads: 4, kvHeads: 2, width: 16, mlpWidth: 40, context: 7,
                                  vocabularySize: 11, positionEncoding: .rotary, norm: .rmsNorm,
                                  activation: .swiglu, bias: false, tiedEmbeddings: false)

    func testSmallModelForwardAndBackward() throws {
        for attention in AttentionImplementation.allCases {
            let setup = TrainingSetup(model: small, sequenceLength: 7, attention: attention)
            let flops = try FLOPCount(setup)
            let products = Self.weightProductsPerToken(small)
            XCTAssertEqual(flops.forwardMatmul, Double(2 * products))
            XCTAssertEqual(flops.backwardMatmul, Double(4 * products))
            // QKᵀ and P·V: 2 multiply-adds of length d per pair and head, averaged over 7 tokens.
            let pairs = attention == .flash ? Self.causalPairs(7) : 49
            let attentionPerSequence = 3 * 4 * 2 * 2 * 4 * pairs   // layers·heads·2 products·2 FLOPs·d·pairs
            XCTAssertEqual(flops.forwardAttention, Double(attentionPerSequence) / 7, accuracy: 1e-9)
            XCTAssertEqual(flops.backwardAttention, (attention == .flash ? 2.5 : 2) * flops.forwardAttention, accuracy: 1e-9)
            XCTAssertEqual(flops.perTokenTraining, flops.forward + flops.backward)
            XCTAssertEqual(flops.recomputation, 0)
        }
    }

    /// Against PyTorch's FlopCounterMode on Hugging Face GPT-2 and LLaMA models (eager attention:
    /// all s² scores computed, as `.standard`), one forward and backward step of batch × sequence
    /// tokens; fixtures from scripts/make_estimates_fixtures.py.
    func testMatchesPyTorchFlopCounter() throws {
        XCTAssertEqual(TransformersFixtures.flops.count, 4)
        for fixture in TransformersFixtures.flops {
            let setup = TrainingSetup(model: fixture.config, microBatch: fixture.batch, sequenceLength: fixture.sequence,
                                      attention: .standard)
            let flops = try FLOPCount(setup)
            let tokens = Double(fixture.batch * fixture.sequence)
            XCTAssertEqual(flops.forward * tokens, Double(fixture.forward), fixture.name)
            XCTAssertEqual(flops.backward * tokens, Double(fixture.backward), fixture.name)
        }
    }

    func testTiedHeadStillCostsAMatmul() throws {
        var tied = small
        tied.tiedEmbeddings = true
        let flops = try FLOPCount(TrainingSetup(model: tied))
        XCTAssertEqual(flops.forwardMatmul, Double(2 * Self.weightProductsPerToken(tied)))
        XCTAssertEqual(flops.sixN, Double(6 * (try ParameterCount(tied).total)))
    }

    func testRecomputation() throws {
        var setup = TrainingSetup(model: small, attention: .standard, recomputation: .full)
        let full = try FLOPCount(setup)
        let headProducts = small.width * small.vocabularySize
        XCTAssertEqual(full.recomputation, full.forward - Double(2 * headProducts), accuracy: 1e-9)
        setup.recomputation = .selective
        XCTAssertEqual(try FLOPCount(setup).recomputation, full.forwardAttention / 2, accuracy: 1e-9)
        setup.attention = .flash
        XCTAssertEqual(try FLOPCount(setup).recomputation, 0)
    }

    /// Long sequences: attention grows with s, the matmul part does not; the 6·N rule holds for
    /// LLaMA-7B at 2048 within the attention share (Kaplan et al.: C ≈ 6N + 6·L·s·C per token).
    func testSixNApproximation() throws {
        let llama = try XCTUnwrap(ModelPreset.named("llama-7b")).config
        let flops = try FLOPCount(TrainingSetup(model: llama, attention: .flash))
        XCTAssertEqual(flops.perTokenTraining / flops.sixN, 1.027, accuracy: 0.005)
        let longer = try FLOPCount(TrainingSetup(model: llama, sequenceLength: 4096, attention: .flash))
        XCTAssertEqual(longer.forwardMatmul, flops.forwardMatmul)
        XCTAssertEqual(longer.forwardAttention / flops.forwardAttention, 4097.0 / 2049.0, accuracy: 1e-12)
    }

    func testTrainingTimeFollowsFromThroughput() throws {
        let gpt2 = try XCTUnwrap(ModelPreset.named("gpt2-small")).config
        let setup = TrainingSetup(model: gpt2, trainingTokens: 1e9, parallelism: Parallelism(data: 4))
        let estimate = try TrainingEstimate(setup, peakFLOPS: 100e12, utilisation: 0.5)
        XCTAssertEqual(estimate.trainingFLOPs, 1e9 * estimate.flops.perTokenTraining)
        XCTAssertEqual(estimate.trainingSeconds, estimate.trainingFLOPs / (4 * 100e12 * 0.5), accuracy: 1e-9)
        XCTAssertThrowsError(try TrainingEstimate(setup, peakFLOPS: 100e12, utilisation: 0)) {
            XCTAssertEqual(($0 as? InvalidArgument)?.argument, "utilisation")
        }
    }
}
