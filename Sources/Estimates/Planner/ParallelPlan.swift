/// The pipeline schedule: one forward, one backward (Narayanan et al. 2021, PipeDream-Flush), or
/// interleaved with several model chunks per device.
public enum PipelineSchedule: Codable, Equatable, Hashable, Sendable, CustomStringConvertible {
    case oneFOneB
    /// Each device holds `chunks` non-adjacent groups of layers (Megatron's virtual stages).
    case interleaved(chunks: Int)

    /// v: the interleaving factor (1 for plain 1F1B).
    public var chunks: Int {
        switch self {
        case .oneFOneB: 1
        case .interleaved(let chunks): chunks
        }
    }

    /// "1F1B" or "interleaved ×v".
    public var description: String { chunks == 1 ? "1F1B" : "interleaved ×\(chunks)" }
}

/// One way to run a training step on G devices: the parallel degrees (dp × tp × pp × cp = G),
/// the micro-batch, recomputation, ZeRO stage and pipeline schedule.
public struct ParallelPlan: Codable, Equatable, Hashable, Sendable, CustomStringConvertible {
    /// Data-parallel degree (dp).
    public var data: Int
    /// Tensor-parallel degree (tp): heads split across devices.
    public var tensor: Int
    /// Pipeline-parallel degree (pp): stages of layers.
    public var pipeline: Int
    /// Context (sequence) parallel degree: ring attention over sequence blocks.
    public var context: Int
    /// Sequences per data-parallel rank per forward/backward pass.
    public var microBatch: Int
    /// Micro-batches per step per data-parallel rank: global batch / (data × microBatch).
    public var microBatches: Int
    /// Activation recomputation policy.
    public var recomputation: Recomputation
    /// 0 none; 1 optimizer states, 2 and gradients, 3 and weights sharded over the data-parallel
    /// (and context-parallel) ranks (Rajbhandari et al. 2020).
    public var zero: Int
    /// The pipeline schedule.
    public var schedule: PipelineSchedule

    /// A plan with every choice given.
    public init(data: Int, tensor: Int, pipeline: Int, context: Int, microBatch: Int, microBatches: Int,
                recomputation: Recomputation, zero: Int, schedule: PipelineSchedule) {
        self.data = data
        self.tensor = tensor
        self.pipeline = pipeline
        self.context = context
        self.microBatch = microBatch
        self.microBatches = microBatches
        self.recomputation = recomputation
        self.zero = zero
        self.schedule = schedule
    }

    /// dp × tp × pp × cp.
    public var devices: Int { data * tensor * pipeline * context }
    /// Ranks that hold the same weights and reduce their gradients together.
    public var replicas: Int { data * context }
    /// The (dp, tp, pp, cp) family the plan belongs to.
    public var family: ParallelFamily { ParallelFamily(data: data, tensor: tensor, pipeline: pipeline, context: context) }

    /// One line: degrees, micro-batches, recomputation, ZeRO stage, schedule.
    public var description: String {
        "dp \(data) tp \(tensor) pp \(pipeline) cp \(context), micro-batch \(microBatch) × \(microBatches), "
            + "recompute \(recomputation.rawValue), ZeRO-\(zero), \(schedule)"
    }
}

/// The parallel degrees alone, which the report ranks and rejects as a family.
public struct ParallelFamily: Codable, Equatable, Hashable, Sendable, CustomStringConvertible {
    /// Data-parallel degree (dp).
    public var data: Int
    /// Tensor-parallel degree (tp): heads split across devices.
    public var tensor: Int
    /// Pipeline-parallel degree (pp): stages of layers.
    public var pipeline: Int
    /// Context-parallel degree (cp).
    public var context: Int

    /// A family with these degrees.
    public init(data: Int, tensor: Int, pipeline: Int, context: Int) {
        self.data = data
        self.tensor = tensor
        self.pipeline = pipeline
        self.context = context
    }

    /// "dp … tp … pp … cp …".
    public var description: String { "dp \(data) tp \(tensor) pp \(pipeline) cp \(context)" }
}
