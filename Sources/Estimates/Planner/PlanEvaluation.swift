/// A plan with its predicted step time, broken down by cost term, and its memory per device.
public struct PlanEvaluation: Codable, Equatable, Sendable {
    /// The plan evaluated.
    public var plan: ParallelPlan
    /// Its predicted step time, by term.
    public var time: StepTime
    /// Its memory per device.
    public var memory: PlanMemory
    /// Model FLOPs of one step (forward and backward, no recomputation): what MFU counts.
    public var modelFLOPs: Double
    /// FLOPs the devices execute, recomputation included.
    public var executedFLOPs: Double
    /// Model FLOPs utilisation: model FLOPs / (devices × peak × step time).
    public var mfu: Double
    /// Executed FLOP/s per device (the "achieved TFLOP/s" of Narayanan et al. 2021, which count recomputation).
    public var executedFLOPSPerDevice: Double
    /// Model FLOP/s per device (Llama 3's "TFLOPs/GPU").
    public var modelFLOPSPerDevice: Double
}

/// The predicted seconds of one training step, by term (docs/planner.md §3). `total` is their sum.
public struct StepTime: Codable, Equatable, Sendable {
    /// Matrix products, attention and element-wise work of every micro-batch on the busiest stage.
    public var compute: Double
    /// Tensor-parallel all-reduces (not overlapped).
    public var tensorParallel: Double
    /// Ring-attention transfers not hidden behind a block's attention compute.
    public var contextParallel: Double
    /// Activations sent between pipeline stages.
    public var pipelineTransfers: Double
    /// ZeRO-3 weight gathers and gradient reduce-scatters not hidden behind compute.
    public var zeroGathers: Double
    /// The pipeline's idle time: (p − 1)/v micro-batch times.
    public var bubble: Double
    /// Data-parallel gradient synchronisation not hidden behind the last backward pass.
    public var dataParallel: Double
    /// The optimizer update (memory-bound: read and write every model state once).
    public var optimizer: Double

    /// The predicted step time: the sum of the terms.
    public var total: Double {
        compute + tensorParallel + contextParallel + pipelineTransfers + zeroGathers + bubble + dataParallel + optimizer
    }

    /// (name, seconds) in a fixed order, as the report prints them.
    public var terms: [(name: String, seconds: Double)] {
        [("compute", compute), ("tensor_parallel", tensorParallel), ("context_parallel", contextParallel),
         ("pipeline_transfers", pipelineTransfers), ("zero_gathers", zeroGathers), ("pipeline_bubble", bubble),
         ("data_parallel", dataParallel), ("optimizer", optimizer)]
    }
}

/// Memory per device on the busiest pipeline stage, bytes: the estimator's terms
/// (`MemoryEstimate`) with ZeRO sharding and the pipeline's in-flight micro-batches applied.
public struct PlanMemory: Codable, Equatable, Sendable {
    /// Weights held (after ZeRO-3 sharding).
    public var weights: Double
    /// Gradients held (after ZeRO-2 sharding).
    public var gradients: Double
    /// Optimizer states and master weights (after ZeRO-1 sharding).
    public var optimizerStates: Double
    /// Activations of the micro-batches in flight on the busiest stage.
    public var activations: Double
    /// One layer's backward workspace for the micro-batch.
    public var workspace: Double

    /// Everything the device holds.
    public var total: Double { weights + gradients + optimizerStates + activations + workspace }
}
