import FlashAttention
import FlashCore
import Transformer

/// Memory one device needs to train, in bytes: model states (weights, gradients, optimizer
/// states) and activations, after Rajbhandari et al. 2020 (ZeRO) and Korthikanti et al. 2022.
/// Derivation and approximations: docs/estimates.md, "Memory".
public struct MemoryEstimate: Codable, Equatable, Sendable {
    /// Parameters held by the busiest device (tensor and pipeline sharding applied).
    public var parametersPerDevice: Double
    /// Bytes of the weights at `parameterPrecision`.
    public var weights: Double
    /// Bytes of the gradients at `gradientPrecision`.
    public var gradients: Double
    /// Optimizer states plus the master copy of the weights mixed precision keeps.
    public var optimizerStates: Double
    /// Activations stored for the backward pass, all layers, for the micro-batch.
    public var activations: Double
    /// Activations of one layer for one sequence (before recomputation choices).
    public var activationsPerLayerPerSequence: Double
    /// Of those, the part that grows with N² (standard attention's P and dropout mask).
    public var attentionScoresPerLayerPerSequence: Double
    /// Transient buffers alive during one layer's backward pass: its activation gradients, and
    /// standard attention's N×N dP/dS. The sum of the next two fields.
    public var workspace: Double
    /// Of the workspace, the activation-gradient buffers of one layer's backward pass (with the
    /// project trainer's model: all of its shared scratch).
    public var backwardBuffers: Double
    /// Of the workspace, what the attention backward allocates: standard attention's N×N
    /// matrices (textbook and trainer); with the project trainer's model also the dQ, dK, dV
    /// tensors the attention API returns and the flash kernel's packed Q, dO, dQ (linear in N).
    public var attentionWorkspace: Double

    /// The memory one device needs to train `setup`; throws `InvalidArgument` if the setup is invalid.
    public init(_ setup: TrainingSetup) throws {
        try setup.validate()
        let config = setup.model
        let parameters = try ParameterCount(config)
        let t = Double(setup.parallelism.tensor), p = setup.parallelism.pipeline

        // Model states: the busiest pipeline stage, split t ways by tensor parallelism.
        let layerParameters = Double(parameters.total - parameters.tokenEmbedding - parameters.positionEmbedding
                                     - parameters.finalNorm - parameters.outputHead) / Double(config.layers)
        let stageLayers = Double(config.layers / p) * layerParameters
        let head = Double(parameters.outputHead > 0 ? parameters.outputHead : parameters.tokenEmbedding)
        let embeddings = Double(parameters.tokenEmbedding + parameters.positionEmbedding)
        let stageParameters: Double
        if p == 1 {
            stageParameters = Double(parameters.total)
        } else {
            // The last stage holds the head (a copy of the embedding when tied, as Megatron does).
            stageParameters = max(stageLayers + embeddings, stageLayers + Double(parameters.finalNorm) + head)
        }
        parametersPerDevice = stageParameters / t
        weights = parametersPerDevice * Double(setup.parameterPrecision.bytes)
        gradients = parametersPerDevice * Double(setup.gradientPrecision.bytes)
        let master = setup.optimizerPrecision.bytes > setup.parameterPrecision.bytes ? setup.optimizerPrecision.bytes : 0
        optimizerStates = parametersPerDevice * Double(setup.optimizer.statesPerParameter * setup.optimizerPrecision.bytes + master)
        let dp = setup.parallelism.data
        if setup.zeroStage == 1 && dp > 1 {
            if setup.memoryModel == .projectTrainer {
                // What the busiest rank (rank 0) allocates: its piece of every gradient bucket
                // (Trainer+DataParallel), two Float32 moments each.
                let owned = ParameterLayout(config).zeroShards(rank: 0, ranks: dp).reduce(0) { $0 + $1.owned.count }
                optimizerStates = Double(2 * 4 * owned)
            } else {
                optimizerStates /= Double(dp)
            }
        }

        let perSequence = setup.memoryModel == .projectTrainer
            ? MemoryEstimate.projectTrainerPerSequence(setup)
            : try MemoryEstimate.activationsPerSequence(setup)
        activationsPerLayerPerSequence = perSequence.layer
        attentionScoresPerLayerPerSequence = perSequence.scores
        let sequences = Double(setup.microBatch)
        activations = sequences * perSequence.stored / t
        backwardBuffers = sequences * perSequence.backwardBuffers / t
        attentionWorkspace = sequences * perSequence.attentionWorkspace / t
        workspace = backwardBuffers + attentionWorkspace
    }

    /// Weights, gradients and optimizer states.
    public var modelStates: Double { weights + gradients + optimizerStates }
    /// Everything: model states, stored activations and the backward workspace.
    public var total: Double { modelStates + activations + workspace }
    /// Bytes per parameter for the model states (16 for mixed-precision Adam).
    public var bytesPerParameter: Double { modelStates / parametersPerDevice }

    /// Per sequence, before tensor parallelism: one layer's stored activations, its N² part,
    /// what the whole model stores under the recomputation policy, and the transient workspace.
    typealias PerSequence = (layer: Double, scores: Double, stored: Double, backwardBuffers: Double, attentionWorkspace: Double)

    /// The textbook memory model (`MemoryModel.textbook`).
    static func activationsPerSequence(_ setup: TrainingSetup) throws -> PerSequence {
        let config = setup.model
        let s = Double(setup.sequenceLength), a = Double(setup.activationPrecision.bytes)
        let c = Double(config.width), f = Double(config.mlpWidth), h = Double(config.heads)
        let kv = Double(config.kvHeads * config.headDim)
        let dropout = config.dropout > 0
        // Float32 statistics of one norm per token: LayerNorm's mean and 1/σ, RMSNorm's 1/rms.
        let normStatistics = config.norm == .layerNorm ? 8.0 : 4.0
        // Per token: each sublayer keeps its input and its norm's output (2·C each, two sublayers)
        // and the norm's statistics; Q, K, V; the attention output (the projection's input); one
        // byte per element of each residual dropout mask.
        var perToken = 4 * c * a + 2 * normStatistics + (c + 2 * kv) * a + c * a + (dropout ? 2 * c : 0)
        switch config.activation {
        case .relu: perToken += f * a            // the output serves as the down input and the mask
        case .gelu: perToken += 2 * f * a        // pre-activation and output
        case .swiglu: perToken += 3 * f * a      // gate, up, and their product
        }
        let standardScores = s * s * h * (a + (dropout ? 1 + a : 0))   // P, dropout mask, dropped P
        let flashStatistics = s * h * 4                                  // LSE, Float32
        let scores: Double
        switch (setup.attention, setup.recomputation) {
        case (.standard, .none): scores = standardScores
        case (.standard, _): scores = 0
        case (.flash, _): scores = flashStatistics
        }
        let layer = s * perToken + scores
        // Outside the layers: the embedding dropout's mask, the last layer's output (the final
        // norm's input), the final norm's output and statistics, and Float32 logits for the loss.
        let finalNorm = config.normPlacement == .pre ? c * a + normStatistics : 0
        let outside = s * ((dropout ? c : 0) + c * a + finalNorm + Double(config.vocabularySize) * 4)
        let layers = Double(config.layers)
        let stored: Double
        switch setup.recomputation {
        case .none, .selective: stored = layers * layer + outside
        // Layer inputs only, plus one layer's activations rebuilt during its backward pass.
        case .full: stored = layers * s * c * a + (s * perToken + (setup.attention == .flash ? flashStatistics : 0)) + outside
        }
        // One layer's backward holds the gradients of the residual stream, the norm output, QKV,
        // the attention output and the MLP hidden layer (two for SwiGLU). Standard attention's
        // backward also materialises dP/dS (N² per head), and P as well when it was not stored;
        // FlashAttention works in cache-sized tiles.
        let gradients = s * a * (3 * c + c + 2 * kv + (config.activation == .swiglu ? 2 : 1) * f)
        let attentionWorkspace = setup.attention == .standard ? s * s * h * a * (setup.recomputation == .none ? 1 : 2) : 0
        return (layer, scores, stored, gradients, attentionWorkspace)
    }

    /// The largest micro-batch whose training step fits in `budget` bytes per device (0 when
    /// not even one sequence fits).
    public static func largestMicroBatch(fitting budget: Double, setup: TrainingSetup) throws -> Int {
        var one = setup
        one.microBatch = 1
        let estimate = try MemoryEstimate(one)
        let perSequence = estimate.activations + estimate.workspace
        let room = budget - estimate.modelStates
        guard room >= perSequence, perSequence > 0 else { return 0 }
        let sequences = (room / perSequence).rounded(.down)
        try InvalidArgument.require(sequences < 1e15, "memoryBudget", expected: "a budget for fewer than 10^15 sequences",
                                    got: "\(budget) bytes")
        return Int(sequences)
    }
}
