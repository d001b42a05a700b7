import FlashCore
import Transformer

/// Parameters, FLOPs, memory and run time of one training setup, with the answers to "how
/// large a micro-batch fits" for both attention implementations.
public struct TrainingEstimate: Sendable {
    /// What is being trained, and how.
    public var setup: TrainingSetup
    /// The model's parameters.
    public var parameters: ParameterCount
    /// Training FLOPs per token.
    public var flops: FLOPCount
    /// Per-device memory at the setup's micro-batch.
    public var memory: MemoryEstimate
    /// Per-device peak FLOP/s and the model FLOPs utilisation the time assumes.
    public var peakFLOPS: Double
    /// Model FLOPs utilisation: the fraction of `peakFLOPS` the time assumes.
    public var utilisation: Double
    /// Per-device memory budget for the micro-batch search; nil skips it.
    public var memoryBudget: Double?

    /// Estimates `setup` on devices of `peakFLOPS` at `utilisation`; with `memoryBudget`, also
    /// searches the largest micro-batch that fits. Throws `InvalidArgument` for invalid input.
    public init(_ setup: TrainingSetup, peakFLOPS: Double, utilisation: Double, memoryBudget: Double? = nil) throws {
        try setup.validate()
        try InvalidArgument.require(peakFLOPS > 0 && peakFLOPS.isFinite, "peakFLOPS", expected: "> 0", got: "\(peakFLOPS)")
        try InvalidArgument.require(utilisation > 0 && utilisation <= 1, "utilisation", expected: "in (0, 1]", got: "\(utilisation)")
        if let memoryBudget {
            try InvalidArgument.require(memoryBudget > 0 && memoryBudget.isFinite, "memoryBudget", expected: "> 0", got: "\(memoryBudget)")
        }
        self.setup = setup
        parameters = try ParameterCount(setup.model)
        flops = try FLOPCount(setup)
        memory = try MemoryEstimate(setup)
        self.peakFLOPS = peakFLOPS
        self.utilisation = utilisation
        self.memoryBudget = memoryBudget
    }

    /// FLOPs of the whole run: tokens × (forward + backward) per token, as executed without
    /// activation recomputation (the model FLOPs MFU is defined on).
    public var trainingFLOPs: Double { setup.trainingTokens * flops.perTokenTraining }
    /// FLOPs including activation recomputation.
    public var executedFLOPs: Double { setup.trainingTokens * flops.perTokenExecuted }
    /// The 6·N·D approximation for the same run.
    public var sixNDFLOPs: Double { setup.trainingTokens * flops.sixN }
    /// Wall-clock seconds on `parallelism.devices` devices running model FLOPs at `utilisation` of peak.
    public var trainingSeconds: Double {
        trainingFLOPs / (Double(setup.parallelism.devices) * peakFLOPS * utilisation)
    }

    /// The largest micro-batch that fits `memoryBudget` with each attention implementation.
    public func largestMicroBatches() throws -> (standard: Int, flash: Int)? {
        guard let memoryBudget else { return nil }
        var standard = setup, flash = setup
        standard.attention = .standard
        flash.attention = .flash
        return (try MemoryEstimate.largestMicroBatch(fitting: memoryBudget, setup: standard),
                try MemoryEstimate.largestMicroBatch(fitting: memoryBudget, setup: flash))
    }
}
