import Estimates
import FlashAttention
import FlashCore
import Transformer
import XCTest

/// Memory against Korthikanti et al. 2022 ("Reducing Activation Recomputation in Large
/// Transformer Models", Section 4.1): per layer, s·b·h·(34 + 5·a·s/h) bytes with 16-bit
/// activations and dropout; 34·s·b·h with selective recomputation; 2·s·b·h with full.
/// (Measured peak memory of the project's own training step: to be added once the trainer lands.)
final class MemoryEstimateTests: XCTestCase {
    let gpt = TransformerConfig(layers: 4, heads: 8, width: 256, context: 512, vocabularySize: 1000, dropout: 0.1)

    func setup(_ attention: AttentionImplementation, _ recomputation: Recomputation = .none, batch: Int = 1) -> TrainingSetup {
        TrainingSetup(model: gpt, microBatch: batch, sequenceLength: 512, parameterPrecision: .bf16,
                      attention: attention, recomputation: recomputation)
    }

    func testActivationsMatchKorthikanti() throws {
        let (s, h, a) = (512.0, 256.0, 8.0)
        // Korthikanti et al. leave out LayerNorm's Float32 mean and 1/σ: 2 norms × 8 bytes per token.
        let statistics = 16 * s
        let standard = try MemoryEstimate(setup(.standard))
        XCTAssertEqual(standard.activationsPerLayerPerSequence, s * h * (34 + 5 * a * s / h) + statistics)
        XCTAssertEqual(standard.attentionScoresPerLayerPerSequence, 5 * a * s * s)
        // Selective recomputation drops exactly the 5·a·s² term.
        let selective = try MemoryEstimate(setup(.standard, .selective))
        // Embedding dropout mask, last layer's output, final norm output and statistics, Float32 logits.
        let outside = s * (h + 2 * h + (2 * h + 8) + 1000 * 4)
        XCTAssertEqual(selective.activations, 4 * (34 * s * h + statistics) + outside)
        // Flash keeps only the Float32 log-sum-exp per row and head.
        let flash = try MemoryEstimate(setup(.flash))
        XCTAssertEqual(flash.attentionScoresPerLayerPerSequence, 4 * a * s)
        XCTAssertEqual(flash.activations, 4 * (34 * s * h + statistics + 4 * a * s) + outside)
        // Backward workspace: gradients of the residual, norm output, attention output (3·C), QKV
        // (3·C) and the MLP hidden layer (4·C), bf16; standard adds one N×N dP/dS buffer per head.
        let gradients = s * 2 * (3 * h + 3 * h + 4 * h)
        XCTAssertEqual(flash.workspace, gradients)
        XCTAssertEqual(standard.workspace, gradients + a * s * s * 2)
        XCTAssertEqual(selective.workspace, gradients + 2 * a * s * s * 2)
        // Full recomputation: each layer's input, plus one layer rebuilt in the backward pass.
        let full = try MemoryEstimate(setup(.flash, .full))
        XCTAssertEqual(full.activations, 4 * 2 * s * h + (34 * s * h + statistics + 4 * a * s) + outside)
        // Activations grow linearly with the micro-batch.
        XCTAssertEqual(try MemoryEstimate(setup(.flash, batch: 3)).activations, 3 * flash.activations)
    }

    /// Against the bytes PyTorch autograd saves for the backward pass of Hugging Face GPT-2
    /// (Float32, eager attention, no dropout; scripts/make_estimates_fixtures.py): exactly equal.
    func testMatchesPyTorchSavedActivations() throws {
        XCTAssertEqual(TransformersFixtures.savedActivations.count, 2)
        for fixture in TransformersFixtures.savedActivations {
            let setup = TrainingSetup(model: fixture.config, microBatch: fixture.batch, sequenceLength: fixture.sequence,
                                      parameterPrecision: .fp32, attention: .standard)
            let estimate = try MemoryEstimate(setup)
            XCTAssertEqual(estimate.activations, Double(fixture.bytes), fixture.name)
        }
    }

    func testModelStatesPerParameter() throws {
        let parameters = Double(try ParameterCount(gpt).total)
        func bytesPerParameter(_ p: NumericPrecision, _ o: NumericPrecision, _ optimizer: Optimizer) throws -> Double {
            let estimate = try MemoryEstimate(TrainingSetup(model: gpt, parameterPrecision: p, optimizerPrecision: o, optimizer: optimizer))
            XCTAssertEqual(estimate.parametersPerDevice, parameters)
            return estimate.modelStates / parameters
        }
        XCTAssertEqual(try bytesPerParameter(.bf16, .fp32, .adamw), 16)   // 2 + 2 + 4 master + 4 + 4
        XCTAssertEqual(try bytesPerParameter(.fp32, .fp32, .adam), 16)    // 4 + 4 + 4 + 4
        XCTAssertEqual(try bytesPerParameter(.fp32, .fp32, .sgd), 8)
        XCTAssertEqual(try bytesPerParameter(.fp32, .fp32, .sgdMomentum), 12)
        XCTAssertEqual(try bytesPerParameter(.bf16, .fp32, .sgd), 8)      // 2 + 2 + 4 master
        XCTAssertEqual(try bytesPerParameter(.bf16, .bf16, .adamw), 8)    // no master copy
    }

    func testParallelismShardsModelStates() throws {
        var base = setup(.flash)
        let single = try MemoryEstimate(base)
        base.parallelism = Parallelism(data: 8, tensor: 2)
        let sharded = try MemoryEstimate(base)
        XCTAssertEqual(sharded.modelStates, single.modelStates / 2)
        XCTAssertEqual(sharded.activations, single.activations / 2)
        base.parallelism = Parallelism(tensor: 3)
        XCTAssertThrowsError(try MemoryEstimate(base)) { XCTAssertEqual(($0 as? InvalidArgument)?.argument, "parallelism.tensor") }
        // Two pipeline stages: the busiest holds two layers plus the (tied) embedding table.
        base.parallelism = Parallelism(pipeline: 2)
        let counts = try ParameterCount(gpt)
        let layer = Double(counts.total - counts.tokenEmbedding - counts.positionEmbedding - counts.finalNorm) / 4
        XCTAssertEqual(try MemoryEstimate(base).parametersPerDevice,
                       2 * layer + Double(counts.tokenEmbedding + counts.positionEmbedding))
    }

    func testLargestMicroBatchIsTheLastThatFits() throws {
        let budget = 3.0 * 1_073_741_824
        for attention in AttentionImplementation.allCases {
            var candidate = setup(attention)
            let largest = try MemoryEstimate.largestMicroBatch(fitting: budget, setup: candidate)
            XCTAssertGreaterThan(largest, 0)
            candidate.microBatch = largest
            XCTAssertLessThanOrEqual(try MemoryEstimate(candidate).total, budget)
            candidate.microBatch = largest + 1
            XCTAssertGreaterThan(try MemoryEstimate(candidate).total, budget)
        }
        let standard = try MemoryEstimate.largestMicroBatch(fitting: budget, setup: setup(.standard))
        let flash = try MemoryEstimate.largestMicroBatch(fitting: budget, setup: setup(.flash))
        XCTAssertGreaterThan(flash, standard)
        XCTAssertEqual(try MemoryEstimate.largestMicroBatch(fitting: 1000, setup: setup(.flash)), 0)
    }
}

/// The communication estimate against its formulas, worked by hand for one configuration.
final class CommunicationEstimateTests: XCTestCase {
    func testBytesPerRank() {
        // 2 layers, width 16, 2 heads of 8, 1 KV head, vocabulary 10, context 16, tied, biases.
        let config = TransformerConfig(layers: 2, heads: 2, kvHeads: 1, width: 16, mlpWidth: 32, context: 16, vocabularySize: 10)
        let count = ParameterLayout(config).count
        let dp = CommunicationEstimate(config: config, ranks: 4, microBatch: 3, sequenceLength: 16, bandwidth: 1e9)
        XCTAssertEqual(dp.gradientBytes, 2 * 3.0 / 4 * 4 * Double(count))
        XCTAssertEqual(dp.ringBytes, 0)
        XCTAssertEqual(dp.seconds, dp.gradientBytes / 1e9)
        // C = 2: forward 1 hop of K,V (8 tokens × 8 floats each), backward 1 hop of K,V and 1 of
        // the dK/dV accumulators: (2 + 2 + 2)·8·8·4 bytes per layer and sequence, × 2 layers × 3 sequences.
        let ring = CommunicationEstimate(config: config, ranks: 2, contextParallel: 2, microBatch: 3, sequenceLength: 16, bandwidth: 1e9)
        XCTAssertEqual(ring.ringBytes, Double((2 + 2 + 2) * 8 * 8 * 4 * 2 * 3))
        XCTAssertEqual(CommunicationEstimate(config: config, ranks: 1, microBatch: 1, sequenceLength: 16, bandwidth: 1).seconds, 0)
    }
}
