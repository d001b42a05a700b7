import FlashCore
import Transformer

/// What to plan: a model and its numerics, a global batch, a cluster of `devices`, choices the
/// user fixed, and the choices the trainer supports.
public struct PlanRequest: Sendable {
    /// The model, sequence length, precisions, optimizer, attention implementation and memory
    /// model; its micro-batch, recomputation and parallelism are what the planner chooses.
    public var setup: TrainingSetup
    /// Sequences per optimizer step, over all data-parallel ranks.
    public var globalBatch: Int
    /// G: the devices to split the job over.
    public var devices: Int
    /// The devices, their links and efficiencies.
    public var cluster: Cluster
    /// Choices the user fixed.
    public var fixed: PlanConstraints
    /// The choices the trainer supports.
    public var space: PlanSpace

    /// A request; `fixed` defaults to nothing fixed, `space` to Megatron-LM's.
    public init(setup: TrainingSetup, globalBatch: Int, devices: Int, cluster: Cluster,
                fixed: PlanConstraints = PlanConstraints(), space: PlanSpace = .megatron) {
        self.setup = setup
        self.globalBatch = globalBatch
        self.devices = devices
        self.cluster = cluster
        self.fixed = fixed
        self.space = space
    }

    /// Throws `InvalidArgument` naming the first impossible field.
    public func validate() throws {
        var base = setup
        base.microBatch = 1
        base.parallelism = Parallelism()
        try base.validate()
        try InvalidArgument.require(devices > 0, "devices", expected: "at least 1 device", got: "\(devices)")
        try InvalidArgument.require(globalBatch > 0, "globalBatch", expected: "at least 1 sequence", got: "\(globalBatch)")
        for (name, value) in [("deviceMemory", cluster.deviceMemory), ("peakFLOPS", cluster.peakFLOPS),
                              ("memoryBandwidth", cluster.memoryBandwidth), ("intraNodeBandwidth", cluster.intraNodeBandwidth),
                              ("interNodeBandwidth", cluster.interNodeBandwidth)] {
            try InvalidArgument.require(value > 0 && value.isFinite, name, expected: "a finite number > 0", got: "\(value)")
        }
        try InvalidArgument.require(cluster.devicesPerNode > 0, "devicesPerNode", expected: "> 0", got: "\(cluster.devicesPerNode)")
        for (name, value) in [("fixed.data", fixed.data), ("fixed.tensor", fixed.tensor), ("fixed.pipeline", fixed.pipeline),
                              ("fixed.context", fixed.context), ("fixed.microBatch", fixed.microBatch),
                              ("fixed.chunks", fixed.chunks)] {
            if let value { try InvalidArgument.require(value > 0, name, expected: "> 0", got: "\(value)") }
        }
        // A fixed degree must divide what it splits, and the fixed degrees the devices.
        let config = setup.model
        if let t = fixed.tensor {
            try InvalidArgument.require(config.heads % t == 0, "fixed.tensor", expected: "a divisor of heads (\(config.heads))", got: "\(t)")
        }
        if let p = fixed.pipeline, !space.unevenPipelineStages {
            try InvalidArgument.require(config.layers % p == 0, "fixed.pipeline", expected: "a divisor of layers (\(config.layers))", got: "\(p)")
        }
        if let c = fixed.context {
            try InvalidArgument.require(setup.sequenceLength % (space.zigzagContext && c > 1 ? 2 * c : c) == 0, "fixed.context",
                                        expected: "a divisor of the sequence (\(setup.sequenceLength))", got: "\(c)")
        }
        if let d = fixed.data {
            try InvalidArgument.require(globalBatch % d == 0, "fixed.data", expected: "a divisor of the global batch (\(globalBatch))", got: "\(d)")
        }
        let product = (fixed.data ?? 1) * (fixed.tensor ?? 1) * (fixed.pipeline ?? 1) * (fixed.context ?? 1)
        try InvalidArgument.require(devices % product == 0, "fixed.degrees",
                                    expected: "fixed degrees whose product divides the devices (\(devices))", got: "a product of \(product)")
        if let zero = fixed.zero {
            try InvalidArgument.require((0...space.maxZero).contains(zero), "fixed.zero",
                                        expected: "a ZeRO stage in 0...\(space.maxZero)", got: "\(zero)")
        }
        if let recomputation = fixed.recomputation {
            try InvalidArgument.require(space.recomputations.contains(recomputation), "fixed.recomputation",
                                        expected: "one of " + space.recomputations.map(\.rawValue).joined(separator: ", "),
                                        got: recomputation.rawValue)
        }
    }
}

/// Choices the user fixed; nil leaves a choice to the planner.
public struct PlanConstraints: Codable, Equatable, Sendable {
    /// Data-parallel degree.
    public var data: Int?
    /// Tensor-parallel degree.
    public var tensor: Int?
    /// Pipeline-parallel degree.
    public var pipeline: Int?
    /// Context-parallel degree.
    public var context: Int?
    /// Sequences per data-parallel rank per pass.
    public var microBatch: Int?
    /// Recomputation policy.
    public var recomputation: Recomputation?
    /// ZeRO stage.
    public var zero: Int?
    /// The interleaving factor v (1 = plain 1F1B).
    public var chunks: Int?

    /// Constraints; nil leaves the choice to the planner.
    public init(data: Int? = nil, tensor: Int? = nil, pipeline: Int? = nil, context: Int? = nil, microBatch: Int? = nil,
                recomputation: Recomputation? = nil, zero: Int? = nil, chunks: Int? = nil) {
        self.data = data
        self.tensor = tensor
        self.pipeline = pipeline
        self.context = context
        self.microBatch = microBatch
        self.recomputation = recomputation
        self.zero = zero
        self.chunks = chunks
    }
}

/// The choices a trainer supports.
public struct PlanSpace: Codable, Equatable, Sendable {
    /// Whether tp > 1 is supported.
    public var tensorParallel: Bool
    /// Whether pp > 1 is supported.
    public var pipelineParallel: Bool
    /// Whether cp > 1 is supported.
    public var contextParallel: Bool
    /// The highest ZeRO stage supported.
    public var maxZero: Int
    /// The recomputation policies supported.
    public var recomputations: [Recomputation]
    /// Whether interleaved pipeline schedules are supported.
    public var interleaving: Bool
    /// Pipeline stages of ⌈L/p⌉ layers with the last one shorter (as Llama 3 balanced 126 layers
    /// over 16 stages), instead of requiring p to divide the layers.
    public var unevenPipelineStages: Bool
    /// Context parallelism in zig-zag order (two sequence blocks per rank, for causal balance):
    /// the sequence must divide into 2·cp blocks.
    public var zigzagContext: Bool

    /// A space with these capabilities.
    public init(tensorParallel: Bool, pipelineParallel: Bool, contextParallel: Bool, maxZero: Int,
                recomputations: [Recomputation], interleaving: Bool, unevenPipelineStages: Bool = false,
                zigzagContext: Bool = false) {
        self.tensorParallel = tensorParallel
        self.pipelineParallel = pipelineParallel
        self.contextParallel = contextParallel
        self.maxZero = maxZero
        self.recomputations = recomputations
        self.interleaving = interleaving
        self.unevenPipelineStages = unevenPipelineStages
        self.zigzagContext = zigzagContext
    }

    /// Megatron-LM and its descendants: every degree, ZeRO 0–3, every recomputation, interleaving.
    public static let megatron = PlanSpace(tensorParallel: true, pipelineParallel: true, contextParallel: true, maxZero: 3,
                                           recomputations: Recomputation.allCases, interleaving: true)

    /// This project's trainer under `mpirun`: data and context parallel (zig-zag ring attention),
    /// ZeRO 0 or 1, no full recomputation (its attention never stores P, so none and selective
    /// are the same run).
    public static let projectTrainer = PlanSpace(tensorParallel: false, pipelineParallel: false, contextParallel: true, maxZero: 1,
                                                 recomputations: [.none], interleaving: false, zigzagContext: true)
}
