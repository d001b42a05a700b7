import Foundation
import FlashCore

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

    /// A trainer at step 0, its schedule and sampler set from `options`; throws
    /// `InvalidArgument` for invalid options.
    public init(model: TransformerModel, data: TokenDataset, options: TrainingOptions) throws {
        try options.validate()
        self.model = model
        self.data = data
        self.options = options
        optimizer = AdamW(layout: model.layout, options: options.optimizer)
        schedule = LearningRateSchedule(peak: options.learningRate, minimum: options.minimumLearningRate,
                                        warmup: options.warmup, total: options.steps)
        random = TrainerRandom(seed: options.seed)
    }

    /// Tokens one step consumes.
    public var tokensPerStep: Int { options.batch * options.accumulate * model.config.context }

    /// One optimizer step: `accumulate` micro-batches forward and backward, clipping, AdamW.
    /// Throws `TrainingError.nonFinite` (before touching the parameters) if the loss or the
    /// gradient is not finite.
    @discardableResult
    public func trainStep() throws -> StepResult {
        let context = model.config.context, batch = options.batch, micro = options.accumulate
        model.zeroGradients()
        var lossSum = 0.0
        for m in 0..<micro {
            let (inputs, targets) = data.sample(.training, batch: batch, context: context, random: &random)
            let dropoutSeed = Dropout.mix(options.seed ^ Dropout.mix(UInt64(step) << 20 | UInt64(m)))
            let loss = try model.forward(tokens: inputs, targets: targets, batch: batch, time: context,
                                         mode: .training(lossScale: 1 / Float(batch * context * micro), dropoutSeed: dropoutSeed))
            lossSum += Double(loss)
            try model.backward()
        }
        let loss = Float(lossSum / Double(micro))
        let norm = options.gradientClip > 0
            ? GradientClipping.clip(model.gradients, count: model.parameterCount, maxNorm: Double(options.gradientClip), threads: model.threads)
            : GradientClipping.norm(model.gradients, count: model.parameterCount, threads: model.threads)
        guard loss.isFinite, norm.isFinite else { throw TrainingError.nonFinite(step: step, loss: loss, gradientNorm: norm) }
        let rate = schedule.rate(step: step)
        optimizer.update(parameters: model.parameters, gradients: model.gradients, learningRate: rate, threads: model.threads)
        step += 1
        return StepResult(step: step, loss: loss, learningRate: rate, gradientNorm: norm, tokens: tokensPerStep)
    }

    /// Mean loss over `evaluationBatches` validation windows (the same windows every time, so
    /// successive values are comparable; the training stream is not disturbed). Nil when the
    /// validation split is shorter than one window.
    public func evaluate() throws -> Float? {
        let context = model.config.context
        guard data.hasValidation(context: context) else { return nil }
        var evaluationRandom = TrainerRandom(seed: options.seed ^ 0x5EED_0F_E7A1)
        var total = 0.0
        for _ in 0..<options.evaluationBatches {
            let (inputs, targets) = data.sample(.validation, batch: options.batch, context: context, random: &evaluationRandom)
            total += Double(try model.forward(tokens: inputs, targets: targets, batch: options.batch, time: context, mode: .evaluation))
        }
        return Float(total / Double(options.evaluationBatches))
    }
}
