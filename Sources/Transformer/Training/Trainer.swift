import Foundation
import FlashCore
import Distributed

/// Everything about a training run except the model's architecture. Saved with checkpoints
/// so that `--resume` continues the same run.
public struct TrainingOptions: Codable, Equatable, Sendable {
    /// Optimizer steps in the run.
    public var steps: Int
    /// Sequences per micro-batch.
    public var batch: Int
    /// Micro-batches of `batch` sequences per optimizer step (gradient accumulation).
    public var accumulate: Int
    /// Peak learning rate, reached after `warmup` steps.
    public var learningRate: Float
    /// Learning rate the cosine decay ends at (default: a tenth of the peak).
    public var minimumLearningRate: Float
    /// Steps of linear warm-up.
    public var warmup: Int
    /// AdamW's hyper-parameters.
    public var optimizer: AdamW.Options
    /// Largest global gradient norm; larger gradients are scaled down (0 = no clipping).
    public var gradientClip: Float
    /// Seed of the data sampler and of dropout.
    public var seed: UInt64
    /// Fraction of the tokens held out for validation.
    public var validationFraction: Double
    /// Batches averaged for one validation loss.
    public var evaluationBatches: Int

    /// Options with these values (nanoGPT-like defaults).
    public init(steps: Int = 1000, batch: Int = 8, accumulate: Int = 1, learningRate: Float = 1e-3, minimumLearningRate: Float? = nil,
                warmup: Int = 100, optimizer: AdamW.Options = AdamW.Options(), gradientClip: Float = 1, seed: UInt64 = 1337,
                validationFraction: Double = 0.1, evaluationBatches: Int = 4) {
        self.steps = steps
        self.batch = batch
        self.accumulate = accumulate
        self.learningRate = learningRate
        self.minimumLearningRate = minimumLearningRate ?? learningRate / 10
        self.warmup = warmup
        self.optimizer = optimizer
        self.gradientClip = gradientClip
        self.seed = seed
        self.validationFraction = validationFraction
        self.evaluationBatches = evaluationBatches
    }

    /// Throws `InvalidArgument` naming the first option out of range.
    public func validate() throws {
        for (name, value) in [("steps", steps), ("batch", batch), ("accumulate", accumulate), ("evaluationBatches", evaluationBatches)] {
            try InvalidArgument.require(value > 0, name, expected: "> 0", got: "\(value)")
        }
        try InvalidArgument.require(warmup >= 0, "warmup", expected: "≥ 0", got: "\(warmup)")
        try InvalidArgument.require(learningRate > 0 && learningRate.isFinite, "learningRate", expected: "> 0", got: "\(learningRate)")
        try InvalidArgument.require(optimizer.weightDecay >= 0, "weightDecay", expected: "≥ 0", got: "\(optimizer.weightDecay)")
        try InvalidArgument.require(gradientClip >= 0, "gradientClip", expected: "≥ 0", got: "\(gradientClip)")
    }
}

/// Why a run stopped early.
public enum TrainingError: Error, CustomStringConvertible {
    /// The loss or the gradient norm became NaN or infinite; parameters were not updated.
    case nonFinite(step: Int, loss: Float, gradientNorm: Double)

    /// What diverged, and what to try.
    public var description: String {
        switch self {
        case .nonFinite(let step, let loss, let norm):
            return "training diverged at step \(step): loss \(loss), gradient norm \(norm) (not finite); the parameters were left at the last good step — try a lower --lr or more --warmup"
        }
    }
}

/// One optimizer step's numbers.
public struct StepResult: Sendable {
    /// The step's number, from 1.
    public var step: Int
    /// Mean cross-entropy of the step's tokens, in nats.
    public var loss: Float
    /// Learning rate used for the update.
    public var learningRate: Float
    /// Global gradient norm before clipping.
    public var gradientNorm: Double
    /// Tokens the step trained on.
    public var tokens: Int
}

/// Runs AdamW steps on a model over a token dataset. Everything random is drawn from
/// `random` (data windows) or derived from (seed, step) (dropout), so a run is repeatable
/// and a checkpointed run resumes bit for bit.
///
/// With a `communicator` of P ranks the trainer is data parallel (see Trainer+DataParallel):
/// each rank takes its B sequences of every P·B-sequence global batch, so P ranks see exactly
/// the tokens one process with batch P·B sees, and the gradients are summed across ranks.
public final class Trainer {
    /// The model being trained (updated in place).
    public let model: TransformerModel
    /// The optimizer and its moments.
    public let optimizer: AdamW
    /// Where the batches come from.
    public let data: TokenDataset
    /// The run's options.
    public let options: TrainingOptions
    /// The learning-rate schedule (settable: the demo sizes its run after timing the first steps).
    public var schedule: LearningRateSchedule
    /// Steps completed.
    public internal(set) var step = 0
    /// The data sampler's generator.
    public internal(set) var random: TrainerRandom
    /// The data-parallel group (nil: one process).
    public let communicator: Communicator?
    /// 0: every rank keeps the full AdamW state; 1: ZeRO-1, each rank keeps its shard's.
    public let zeroStage: Int
    /// Buckets, the communication thread and ZeRO staging (nil for one process).
    let parallel: DataParallelState?

    /// Ranks that split each sequence (ring attention); the world is P/C data-parallel groups
    /// of C consecutive ranks.
    public let contextParallel: Int

    /// A trainer at step 0, its schedule and sampler set from `options` (throws
    /// `InvalidArgument` for invalid options); with a `communicator` of more than one rank, data parallel (rank 0's
    /// parameters are broadcast to all ranks here, a collective call) and, with `zeroStage` 1,
    /// with AdamW's moments sharded over the ranks. With `contextParallel` C > 1 each sequence
    /// is split over C ranks (see `ContextParallelism`).
    public init(model: TransformerModel, data: TokenDataset, options: TrainingOptions,
                communicator: Communicator? = nil, zeroStage: Int = 0, contextParallel: Int = 1) throws {
        try options.validate()
        try InvalidArgument.require(zeroStage == 0 || zeroStage == 1, "zero", expected: "0 or 1", got: "\(zeroStage)")
        let size = communicator?.size ?? 1
        try InvalidArgument.require(contextParallel >= 1 && size % contextParallel == 0, "--context-parallel",
                                    expected: "a divisor of the number of ranks (\(size))", got: "\(contextParallel)")
        if contextParallel > 1 {
            // Ring attention cannot apply masks tied to a per-call diagonal or dropout
            // coordinates tied to the whole sequence (see RingAttention).
            try InvalidArgument.require(model.config.positionEncoding != .alibi, "--position",
                                        expected: "learned, rotary or none with --context-parallel", got: "alibi")
            try InvalidArgument.require(model.config.dropout == 0, "--dropout", expected: "0 with --context-parallel",
                                        got: "\(model.config.dropout)")
        }
        self.model = model
        self.data = data
        self.options = options
        self.communicator = communicator
        self.zeroStage = zeroStage
        self.contextParallel = contextParallel
        if let communicator, communicator.size > 1 {
            let state = try DataParallelState(model: model, communicator: communicator, zeroStage: zeroStage)
            if contextParallel > 1 {
                model.contextParallel = try ContextParallelism(
                    communicator: communicator, queue: state.queue, first: communicator.rank / contextParallel * contextParallel,
                    size: contextParallel, sequenceLength: model.config.context)
            }
            parallel = state
            // Dropout masks of this group's slice of the global batch, as one process draws them.
            model.dropoutSequenceOffset = communicator.rank / contextParallel * options.batch
            optimizer = AdamW(layout: model.layout, options: options.optimizer,
                              ranges: zeroStage == 1 ? state.shards.map(\.owned) : [0..<model.layout.count])
        } else {
            parallel = nil
            optimizer = AdamW(layout: model.layout, options: options.optimizer)
        }
        schedule = LearningRateSchedule(peak: options.learningRate, minimum: options.minimumLearningRate,
                                        warmup: options.warmup, total: options.steps)
        random = TrainerRandom(seed: options.seed)
    }

    /// Ranks in the job.
    public var worldSize: Int { communicator?.size ?? 1 }
    /// Data-parallel groups (P/C), each holding its own B sequences.
    public var dataParallelSize: Int { worldSize / contextParallel }
    /// Sequences per optimizer micro-batch over all ranks ((P/C)·B).
    public var globalBatch: Int { options.batch * dataParallelSize }
    /// Tokens one step consumes, over all ranks.
    public var tokensPerStep: Int { globalBatch * options.accumulate * model.config.context }

    /// One optimizer step: `accumulate` micro-batches forward and backward, clipping, AdamW.
    /// Throws `TrainingError.nonFinite` (before touching the parameters) if the loss or the
    /// gradient is not finite.
    @discardableResult
    public func trainStep() throws -> StepResult {
        let context = model.config.context, batch = options.batch, micro = options.accumulate
        model.zeroGradients()
        var lossSum = 0.0
        for m in 0..<micro {
            let (inputs, targets) = sampleLocalBatch()
            let dropoutSeed = Dropout.mix(options.seed ^ Dropout.mix(UInt64(step) << 20 | UInt64(m)))
            // The loss is the mean over the global batch: gradients summed over ranks are then
            // exactly the single-process gradient of batch P·B.
            let loss = try model.forward(tokens: inputs, targets: targets, batch: batch, time: context / contextParallel,
                                         mode: .training(lossScale: 1 / Float(globalBatch * context * micro), dropoutSeed: dropoutSeed))
            lossSum += Double(loss)
            if let parallel, m == micro - 1 {
                // Last micro-batch: each block's gradients start their reduction as soon as its
                // backward is done, overlapping the backward of the blocks below.
                try model.backward { l in parallel.reduce(bucket: parallel.layerBucket[l]) }
                for bucket in parallel.outerBuckets { parallel.reduce(bucket: bucket) }
            } else {
                try model.backward()
            }
        }
        var loss = Float(lossSum / Double(micro))
        let norm: Double
        if let parallel {
            try parallel.queue.wait()
            loss = Float(try parallel.communicator.average(Double(loss)))
            norm = try parallel.clipGradients(maxNorm: Double(options.gradientClip), threads: model.threads)
        } else {
            norm = options.gradientClip > 0
                ? GradientClipping.clip(model.gradients, count: model.parameterCount, maxNorm: Double(options.gradientClip), threads: model.threads)
                : GradientClipping.norm(model.gradients, count: model.parameterCount, threads: model.threads)
        }
        guard loss.isFinite, norm.isFinite else { throw TrainingError.nonFinite(step: step, loss: loss, gradientNorm: norm) }
        let rate = schedule.rate(step: step)
        optimizer.update(parameters: model.parameters, gradients: model.gradients, learningRate: rate, threads: model.threads)
        if let parallel, zeroStage == 1 { try parallel.gatherParameters() }
        step += 1
        return StepResult(step: step, loss: loss, learningRate: rate, gradientNorm: norm, tokens: tokensPerStep)
    }

    /// Mean loss over `evaluationBatches` validation windows (the same windows every time, so
    /// successive values are comparable; the training stream is not disturbed). Nil when the
    /// validation split is shorter than one window.
    public func evaluate() throws -> Float? {
        let context = model.config.context, batch = options.batch
        guard data.hasValidation(context: context) else { return nil }
        var evaluationRandom = TrainerRandom(seed: options.seed ^ 0x5EED_0F_E7A1)
        // Every rank evaluates the same windows. Under context parallelism each rank takes its
        // shard of them through the ring (a collective: activations of T/C tokens, as in
        // training), and the shards' loss sums add up over the ranks.
        let positions = model.contextParallel?.positions
        var total = 0.0
        for _ in 0..<options.evaluationBatches {
            let (inputs, targets) = data.sample(.validation, batch: batch, context: context, random: &evaluationRandom)
            if let positions {
                let local = Self.shard(inputs, targets, windows: 0..<batch, context: context, positions: positions)
                let mean = try model.forward(tokens: local.inputs, targets: local.targets, batch: batch, time: positions.count, mode: .evaluation)
                total += Double(mean) * Double(batch * positions.count)
            } else {
                total += Double(try model.forward(tokens: inputs, targets: targets, batch: batch, time: context, mode: .evaluation))
            }
        }
        if positions != nil, let communicator {
            try communicator.allReduceSum(&total, count: 1)  // every group adds the same sums
            return Float(total / Double(dataParallelSize * batch * context * options.evaluationBatches))
        }
        return Float(total / Double(options.evaluationBatches))
    }
}
