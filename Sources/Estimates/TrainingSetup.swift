import FlashCore
import FlashAttention
import Transformer

/// How many bytes a stored number takes.
public enum NumericPrecision: String, CaseIterable, Codable, Sendable {
    /// 32-bit float, bfloat16, IEEE half.
    case fp32, bf16, fp16

    /// Bytes per number: 4 for fp32, 2 for bf16 and fp16.
    public var bytes: Int { self == .fp32 ? 4 : 2 }
}

/// The optimizer, which decides how many numbers of state each parameter carries.
public enum Optimizer: String, CaseIterable, Codable, Sendable {
    /// Plain SGD: no state.
    case sgd
    /// SGD with momentum: one buffer.
    case sgdMomentum = "sgd-momentum"
    /// Adam: first and second moments.
    case adam
    /// AdamW: Adam's two moments (the decoupled weight decay needs no state).
    case adamw

    /// Optimizer state tensors per parameter (excluding a master copy of the weights).
    public var statesPerParameter: Int {
        switch self {
        case .sgd: 0
        case .sgdMomentum: 1
        case .adam, .adamw: 2
        }
    }
}

/// Activation recomputation (gradient checkpointing), after Korthikanti et al. 2022.
public enum Recomputation: String, CaseIterable, Codable, Sendable {
    /// Every activation the backward pass needs is stored.
    case none
    /// The attention core (QKᵀ, softmax, dropout, P·V) is recomputed in the backward pass;
    /// nothing of size N×N is stored.
    case selective
    /// Only each layer's input is stored; the whole layer's forward pass runs again in backward.
    case full
}

/// Data, tensor and pipeline parallel degrees (devices = data · tensor · pipeline).
public struct Parallelism: Codable, Equatable, Sendable {
    /// Data-parallel replicas (each holds all of the model).
    public var data: Int
    /// Tensor-parallel degree: each layer's matrices split across this many devices.
    public var tensor: Int
    /// Pipeline stages: the layers split across this many devices.
    public var pipeline: Int

    /// The given degrees (1: no parallelism of that kind).
    public init(data: Int = 1, tensor: Int = 1, pipeline: Int = 1) {
        self.data = data
        self.tensor = tensor
        self.pipeline = pipeline
    }

    /// Devices in all: data · tensor · pipeline.
    public var devices: Int { data * tensor * pipeline }
}

/// Everything the estimates need besides the model: the training run's shape and numerics.
public struct TrainingSetup: Sendable {
    /// The model architecture.
    public var model: TransformerConfig
    /// Sequences per device per forward/backward pass.
    public var microBatch: Int
    /// Tokens per sequence.
    public var sequenceLength: Int
    /// Tokens the whole run trains on.
    public var trainingTokens: Double
    /// Precision of the weights the forward pass reads.
    public var parameterPrecision: NumericPrecision
    /// Precision of the gradients.
    public var gradientPrecision: NumericPrecision
    /// Precision of the optimizer states and, when it is wider than `parameterPrecision`, of the
    /// master copy of the weights that mixed-precision training keeps.
    public var optimizerPrecision: NumericPrecision
    /// Precision of the stored activations (the compute precision).
    public var activationPrecision: NumericPrecision
    /// The optimizer (its state per parameter).
    public var optimizer: Optimizer
    /// Standard (N² score matrices stored) or flash attention.
    public var attention: AttentionImplementation
    /// Which activations the backward recomputes instead of storing.
    public var recomputation: Recomputation
    /// How the model and batch are split across devices.
    public var parallelism: Parallelism
    /// Whose buffers the memory estimate counts: the textbook minimum or this project's trainer.
    public var memoryModel: MemoryModel
    /// ZeRO stage: 0, or 1 (optimizer states sharded over the data-parallel ranks).
    public var zeroStage = 0

    /// A setup for `model`; unspecified precisions follow `parameterPrecision`, the sequence
    /// length defaults to the model's context.
    public init(
        model: TransformerConfig, microBatch: Int = 1, sequenceLength: Int? = nil, trainingTokens: Double = 0,
        parameterPrecision: NumericPrecision = .fp32, gradientPrecision: NumericPrecision? = nil,
        optimizerPrecision: NumericPrecision = .fp32, activationPrecision: NumericPrecision? = nil,
        optimizer: Optimizer = .adamw, attention: AttentionImplementation = .flash,
        recomputation: Recomputation = .none, parallelism: Parallelism = Parallelism(),
        memoryModel: MemoryModel = .textbook
    ) {
        self.model = model
        self.microBatch = microBatch
        self.sequenceLength = sequenceLength ?? model.context
        self.trainingTokens = trainingTokens
        self.parameterPrecision = parameterPrecision
        self.gradientPrecision = gradientPrecision ?? parameterPrecision
        self.optimizerPrecision = optimizerPrecision
        self.activationPrecision = activationPrecision ?? parameterPrecision
        self.optimizer = optimizer
        self.attention = attention
        self.recomputation = recomputation
        self.parallelism = parallelism
        self.memoryModel = memoryModel
    }

    /// Throws `InvalidArgument` naming the first impossible field (model fields first).
    public func validate() throws {
        try model.validate()
        for (name, value) in [("microBatch", microBatch), ("sequenceLength", sequenceLength),
                              ("parallelism.data", parallelism.data), ("parallelism.tensor", parallelism.tensor),
                              ("parallelism.pipeline", parallelism.pipeline)] {
            try InvalidArgument.require(value > 0, name, expected: "> 0", got: "\(value)")
        }
        try InvalidArgument.require(zeroStage == 0 || zeroStage == 1, "zeroStage", expected: "0 or 1", got: "\(zeroStage)")
        try InvalidArgument.require(trainingTokens >= 0 && trainingTokens.isFinite, "trainingTokens",
                                    expected: "a finite number ≥ 0", got: "\(trainingTokens)")
        if model.positionEncoding == .learned {
            try InvalidArgument.require(sequenceLength <= model.context, "sequenceLength",
                                        expected: "≤ context (\(model.context)) with a learned position table",
                                        got: "\(sequenceLength)")
        }
        try InvalidArgument.require(model.heads % parallelism.tensor == 0, "parallelism.tensor",
                                    expected: "a divisor of heads (\(model.heads))", got: "\(parallelism.tensor)")
        try InvalidArgument.require(model.layers % parallelism.pipeline == 0, "parallelism.pipeline",
                                    expected: "a divisor of layers (\(model.layers))", got: "\(parallelism.pipeline)")
        if memoryModel == .projectTrainer {
            // The trainer is Float32 AdamW on one device, without full recomputation.
            for (name, precision) in [("parameterPrecision", parameterPrecision), ("gradientPrecision", gradientPrecision),
                                      ("optimizerPrecision", optimizerPrecision), ("activationPrecision", activationPrecision)] {
                try InvalidArgument.require(precision == .fp32, name, expected: "fp32 with the project trainer's memory model",
                                            got: precision.rawValue)
            }
            try InvalidArgument.require(optimizer == .adamw, "optimizer", expected: "adamw with the project trainer's memory model",
                                        got: optimizer.rawValue)
            try InvalidArgument.require(recomputation != .full, "recomputation",
                                        expected: "none or selective with the project trainer's memory model", got: "full")
            try InvalidArgument.require(parallelism.tensor == 1 && parallelism.pipeline == 1, "parallelism.tensor",
                                        expected: "no tensor or pipeline parallelism with the project trainer's memory model",
                                        got: "tensor \(parallelism.tensor), pipeline \(parallelism.pipeline)")
        }
    }
}
