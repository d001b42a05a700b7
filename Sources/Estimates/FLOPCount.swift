import FlashAttention
import Transformer

/// Floating-point operations of one training step, per token, counted exactly for matrix
/// products (2 FLOPs per multiply-add; norms, activations, softmax and optimizer updates are
/// left out: they are O(width) per token against O(width²), see docs/estimates.md).
///
/// The model is a causal decoder. Attention scores per sequence of length s: FlashAttention
/// skips the masked half, computing s(s+1)/2 query-key pairs; standard attention materialises
/// and then masks all s² pairs.
public struct FLOPCount: Codable, Equatable, Sendable {
    /// Per token, forward: matrix products with weights (every layer and the output head).
    public var forwardMatmul: Double
    /// Per token, forward: QKᵀ and P·V of every layer.
    public var forwardAttention: Double
    /// Per token, backward: gradients of inputs and weights of every matrix product (2× forward).
    public var backwardMatmul: Double
    /// Per token, backward attention: dV, dP, dQ, dK (2× forward); FlashAttention also recomputes
    /// S = QKᵀ from the saved log-sum-exp (2.5× forward).
    public var backwardAttention: Double
    /// Per token: the extra forward work activation recomputation does in the backward pass.
    public var recomputation: Double
    /// Per token: 6·N with N all parameters (Kaplan et al. 2020 use non-embedding N).
    public var sixN: Double
    /// Per token: 6·N with N the non-embedding parameters (Kaplan et al.'s convention).
    public var sixNNonEmbedding: Double
    /// Query-key pairs one sequence computes per head and layer.
    public var attentionPairsPerSequence: Double

    /// Counts the FLOPs of `setup`'s model at its sequence length, attention implementation and
    /// recomputation; throws `InvalidArgument` if the setup is invalid.
    public init(_ setup: TrainingSetup) throws {
        try setup.validate()
        let config = setup.model
        let parameters = try ParameterCount(config)
        let s = Double(setup.sequenceLength)
        attentionPairsPerSequence = setup.attention == .flash ? s * (s + 1) / 2 : s * s
        forwardMatmul = 2 * Double(parameters.matmulWeights)
        // QKᵀ and P·V: 2·D FLOPs each per pair, per query head.
        let attentionPerSequence = 4 * Double(config.layers * config.heads * config.headDim) * attentionPairsPerSequence
        forwardAttention = attentionPerSequence / s
        backwardMatmul = 2 * forwardMatmul
        backwardAttention = (setup.attention == .flash ? 2.5 : 2) * forwardAttention
        switch setup.recomputation {
        case .none:
            recomputation = 0
        case .selective:
            // Standard attention recomputes S = QKᵀ (half of its forward); flash stores nothing of
            // size N² in the first place, so there is nothing extra to recompute.
            recomputation = setup.attention == .flash ? 0 : forwardAttention / 2
        case .full:
            // Every layer's forward runs again; the output head does not.
            let headWeights = parameters.outputHead > 0 ? parameters.outputHead : parameters.tokenEmbedding
            recomputation = forwardMatmul - 2 * Double(headWeights) + forwardAttention
        }
        sixN = 6 * Double(parameters.total)
        sixNNonEmbedding = 6 * Double(parameters.nonEmbedding)
    }

    /// Per token: the forward pass (matrix products and attention).
    public var forward: Double { forwardMatmul + forwardAttention }
    /// Per token: the backward pass as the chosen attention implementation runs it.
    public var backward: Double { backwardMatmul + backwardAttention }
    /// Forward plus backward per token, as the chosen attention implementation executes them.
    public var perTokenTraining: Double { forward + backward }
    /// `perTokenTraining` plus activation recomputation: everything the hardware executes.
    public var perTokenExecuted: Double { perTokenTraining + recomputation }
}
