import FlashAttention
import Transformer

// The cost model of docs/planner.md: step time by term, and memory per device. Every formula
// here is written out, with its source, in that document; the tests check each term by hand.

extension Planner {
    /// Bytes of one gradient bucket: the data-parallel all-reduce of the last bucket cannot
    /// overlap the backward pass (PyTorch DDP's default bucket, 25 MiB).
    public static let gradientBucketBytes = 25.0 * 1_048_576

    /// Ring all-reduce: each rank sends and receives 2(n − 1)/n of the message.
    public static func allReduceSeconds(bytes: Double, ranks: Int, bandwidth: Double) -> Double {
        ranks > 1 ? 2 * Double(ranks - 1) / Double(ranks) * bytes / bandwidth : 0
    }

    /// The pipeline bubble as a fraction of the ideal time: (p − 1)/m for 1F1B, divided by the
    /// interleaving factor v (Narayanan et al. 2021, §2.2).
    public static func bubbleFraction(stages p: Int, microBatches m: Int, chunks v: Int) -> Double {
        Double(p - 1) / Double(v) / Double(m)
    }

    /// Activations the busiest stage holds, as a multiple of "every layer of a ⌈L/p⌉·p-layer
    /// model for one micro-batch" (the estimator's figure): in 1F1B stage k keeps min(m, p − k)
    /// micro-batches of its layers; interleaving adds (p − 1)/(p·v) (Korthikanti et al. 2022, §4.2.3).
    /// With even stages this is min(m, p)/p.
    public static func inFlightFactor(layers: [Int], microBatches m: Int, chunks v: Int) -> Double {
        let p = layers.count
        guard p > 1 else { return 1 }
        let held = layers.enumerated().map { Double(min(m, p - $0.offset) * $0.element) }.max()!
        let base = held / Double(layers.max()! * p)
        return v > 1 ? base * (1 + Double(p - 1) / Double(p * v)) : base
    }

    /// Layers on each pipeline stage: L/p, or with uneven stages ⌈L/p⌉ less one layer taken
    /// from the first stage, then the last, then the second, … (Llama 3: 126 layers on 16
    /// stages are 7, 8 × 14, 7, the short ends making room for the embedding and the head).
    public static func layersPerStage(_ layers: Int, stages p: Int, uneven: Bool) -> [Int] {
        guard uneven else { return Array(repeating: layers / p, count: p) }
        var result = Array(repeating: stageLayers(layers, stages: p), count: p)
        var deficit = result[0] * p - layers, low = 0, high = p - 1, fromLow = true
        while deficit > 0 {
            result[fromLow ? low : high] -= 1
            if fromLow { low += 1 } else { high -= 1 }
            fromLow.toggle()
            deficit -= 1
        }
        return result
    }

    func layersPerStage(_ p: Int) -> [Int] {
        Self.layersPerStage(request.setup.model.layers, stages: p, uneven: request.space.unevenPipelineStages)
    }

    /// Bytes one token's forward pass reads and writes in element-wise operations, per layer,
    /// before tensor parallelism: two norms (read and write C), two residual adds with their
    /// bias and dropout fused (read 2C, write C), the activation (GELU/ReLU: read and write F;
    /// SwiGLU: read 2F, write F), rotary (read and write Q and K), residual dropout masks
    /// (1 byte each), and with standard attention the fused scale-mask-softmax (read S, write
    /// P) plus dropout on P (read P, write P′ and its 1-byte mask) over s keys per head.
    public static func elementwiseBytesPerToken(_ setup: TrainingSetup) -> (layer: Double, softmax: Double) {
        let config = setup.model, a = Double(setup.activationPrecision.bytes)
        let c = Double(config.width), f = Double(config.mlpWidth)
        let kv = Double(config.kvHeads * config.headDim)
        let dropout = config.dropout > 0
        let activation = config.activation == .swiglu ? 3 * f : 2 * f
        let rotary = config.positionEncoding == .rotary ? 2 * (c + kv) : 0
        let layer = a * (4 * c + 6 * c + activation + rotary) + (dropout ? 2 * c : 0)
        let softmax = setup.attention == .standard
            ? Double(setup.sequenceLength) * Double(config.heads) * (2 * a + (dropout ? 2 * a + 1 : 0)) : 0
        return (layer, softmax)
    }

    /// The estimator's memory for one sequence on one device of a (tp, pp, cp) layout: model
    /// states before ZeRO, activations and backward workspace per sequence.
    struct StageMemory {
        var weights: Double
        var gradients: Double
        var optimizerStates: Double
        var activationsPerSequence: Double
        var workspacePerSequence: Double
    }

    /// Layers on every stage but the last: L/p, or ⌈L/p⌉ with uneven stages (the last holds the rest).
    static func stageLayers(_ layers: Int, stages p: Int) -> Int { (layers + p - 1) / p }

    func stageMemory(tensor: Int, pipeline: Int, context: Int, recomputation: Recomputation) throws -> StageMemory {
        var setup = request.setup
        // Uneven stages: the estimator's busiest stage of a model with ⌈L/p⌉ layers on every stage.
        setup.model.layers = Self.stageLayers(setup.model.layers, stages: pipeline) * pipeline
        setup.microBatch = 1
        setup.sequenceLength = request.setup.sequenceLength / context
        setup.recomputation = recomputation
        setup.parallelism = Parallelism(data: 1, tensor: tensor, pipeline: pipeline)
        let estimate = try MemoryEstimate(setup)
        // Model states of the busiest stage: its layers, plus the embeddings on the first stage or
        // the final norm and head on the last (the estimator's rule, here per stage so that
        // uneven stages count their real layers).
        var scale = 1.0
        if request.space.unevenPipelineStages && pipeline > 1 {
            let stages = layersPerStage(pipeline)
            let layer = Double(parameters.total - parameters.tokenEmbedding - parameters.positionEmbedding
                               - parameters.finalNorm - parameters.outputHead) / Double(request.setup.model.layers)
            let head = Double(parameters.outputHead > 0 ? parameters.outputHead : parameters.tokenEmbedding)
            let first = Double(stages[0]) * layer + Double(parameters.tokenEmbedding + parameters.positionEmbedding)
            let last = Double(stages[pipeline - 1]) * layer + Double(parameters.finalNorm) + head
            let busiest = max(first, last, Double(stages.max()!) * layer)
            scale = busiest / Double(tensor) / estimate.parametersPerDevice
        }
        return StageMemory(weights: scale * estimate.weights, gradients: scale * estimate.gradients,
                           optimizerStates: scale * estimate.optimizerStates,
                           activationsPerSequence: estimate.activations, workspacePerSequence: estimate.workspace)
    }

    /// Memory per device: ZeRO stage z shards optimizer states (z ≥ 1), gradients (z ≥ 2) and
    /// weights (z ≥ 3) over the dp × cp ranks that hold the same weights.
    func memory(_ plan: ParallelPlan, _ stage: StageMemory) -> PlanMemory {
        let n = Double(plan.replicas), b = Double(plan.microBatch)
        let inFlight = Self.inFlightFactor(layers: layersPerStage(plan.pipeline), microBatches: plan.microBatches,
                                           chunks: plan.schedule.chunks)
        return PlanMemory(
            weights: stage.weights / (plan.zero >= 3 ? n : 1),
            gradients: stage.gradients / (plan.zero >= 2 ? n : 1),
            optimizerStates: stage.optimizerStates / (plan.zero >= 1 ? n : 1),
            activations: b * stage.activationsPerSequence * inFlight,
            workspace: b * stage.workspacePerSequence)
    }

    /// The cost of `plan` with its memory, whether or not it fits.
    public func evaluate(_ plan: ParallelPlan) throws -> PlanEvaluation {
        let stage = try stageMemory(tensor: plan.tensor, pipeline: plan.pipeline, context: plan.context,
                                    recomputation: plan.recomputation)
        return evaluate(plan, stage: stage, memory: memory(plan, stage))
    }

    func evaluate(_ plan: ParallelPlan, stage: StageMemory, memory: PlanMemory) -> PlanEvaluation {
        let setup = request.setup, config = setup.model, cluster = request.cluster, eff = cluster.efficiency
        let f = flops[plan.recomputation]!
        let t = plan.tensor, p = plan.pipeline, c = plan.context, v = plan.schedule.chunks
        let layers = Double(config.layers), stageLayers = Double(Self.stageLayers(config.layers, stages: p))
        let s = Double(setup.sequenceLength), a = Double(setup.activationPrecision.bytes)
        let width = Double(config.width), b = Double(plan.microBatch)

        // Per token, per layer, forward.
        let headWeights = Double(parameters.outputHead > 0 ? parameters.outputHead : parameters.tokenEmbedding)
        let headForward = 2 * headWeights
        let layerMatmul = (f.forwardMatmul - headForward) / layers
        let layerAttention = f.forwardAttention / layers
        let attentionBackward = f.forwardAttention > 0 ? f.backwardAttention / f.forwardAttention : 0
        let elementwise = Self.elementwiseBytesPerToken(setup)
        let layerElementwise = elementwise.layer + elementwise.softmax

        // Tokens of one micro-batch on one device: cp splits the sequence, tp every operation.
        let tokens = b * s / Double(c) / Double(t)
        let matmulRate = eff.matmul * cluster.peakFLOPS, attentionRate = eff.attention * cluster.peakFLOPS
        let memoryRate = eff.memory * cluster.memoryBandwidth
        /// One micro-batch's compute on a stage of `n` layers (with the output head or not), and
        /// its backward pass alone (what the gradient all-reduce can overlap with).
        func stageCompute(_ n: Double, head: Bool) -> (all: Double, backward: Double) {
            let headFLOPs = head ? headForward : 0
            var matmul = 3 * (n * layerMatmul + headFLOPs)
            var attention = (1 + attentionBackward) * n * layerAttention
            var bytes = 3 * n * layerElementwise
            switch plan.recomputation {
            case .none: break
            case .selective:
                attention += n * f.recomputation / layers
                bytes += n * elementwise.softmax
            case .full:
                matmul += n * layerMatmul
                attention += n * layerAttention
                bytes += n * layerElementwise
            }
            let all = tokens * (matmul / matmulRate + attention / attentionRate + bytes / memoryRate)
            let backward = tokens * (2 * (n * layerMatmul + headFLOPs) / matmulRate
                                     + attentionBackward * n * layerAttention / attentionRate
                                     + 2 * n * layerElementwise / memoryRate)
            return (all, backward)
        }
        // The busiest stage: a full stage, or the last one with the head.
        let lastStage = stageCompute(Double(layersPerStage(p).last!), head: true)
        let fullStage = p > 1 ? stageCompute(stageLayers, head: false) : lastStage
        let (compute, backward) = fullStage.all > lastStage.all ? fullStage : lastStage

        // Tensor parallel: 2 all-reduces forward and 2 backward per layer (Megatron), 2 more when
        // full recomputation reruns the forward; each moves the micro-batch's activations.
        let activationBytes = b * s / Double(c) * width * a
        let tensorLink = eff.link * cluster.bandwidth(groupSize: t, stride: 1)
        let allReduces = stageLayers * (4 + (plan.recomputation == .full ? 2 : 0))
        let tensorParallel = allReduces * Self.allReduceSeconds(bytes: activationBytes, ranks: t, bandwidth: tensorLink)

        // Context parallel (ring attention): c − 1 steps per layer, each passing a K/V block on
        // while the block in hand is computed; backward passes K, V and their gradients.
        var contextParallel = 0.0
        if c > 1 {
            let kvPerRank = Double(config.kvHeads >= t ? config.kvHeads / t : 1) * Double(config.headDim)
            let kvBytes = 2 * b * s / Double(c) * kvPerRank * a
            let link = eff.link * cluster.bandwidth(groupSize: c, stride: t)
            let blockForward = tokens * layerAttention / Double(c) / attentionRate
            let forward = Double(c - 1) * max(0, kvBytes / link - blockForward)
            let backwardExposed = Double(c - 1) * max(0, 2 * kvBytes / link - attentionBackward * blockForward)
            contextParallel = stageLayers * (forward * (plan.recomputation == .full ? 2 : 1) + backwardExposed)
        }

        // Pipeline: each micro-batch's activations cross each of the v chunk boundaries forward
        // and back (scatter/gather: 1/t of them per tensor rank).
        var pipelineTransfers = 0.0
        if p > 1 {
            let link = eff.link * cluster.bandwidth(groupSize: 2, stride: t * c * plan.data)
            pipelineTransfers = 2 * Double(v) * activationBytes / Double(t) / link
        }

        // ZeRO-3: weights gathered before each micro-batch's forward and backward, gradients
        // reduce-scattered after it, prefetched behind that micro-batch's compute.
        let replicas = plan.replicas
        let dataLink = eff.link * cluster.bandwidth(groupSize: replicas, stride: t)
        var zeroGathers = 0.0
        if plan.zero >= 3 && replicas > 1 {
            let gathers = 3 * Double(replicas - 1) / Double(replicas) * stage.weights / dataLink
            zeroGathers = max(0, gathers - compute)
        }

        let perMicroBatch = compute + tensorParallel + contextParallel + pipelineTransfers + zeroGathers
        let m = Double(plan.microBatches)
        let bubble = Self.bubbleFraction(stages: p, microBatches: plan.microBatches, chunks: v) * m * perMicroBatch

        // Data parallel (ZeRO 0–2: all-reduce, or reduce-scatter + all-gather of the same volume),
        // overlapped with the last micro-batch's backward except for the last bucket.
        var dataParallel = 0.0
        if replicas > 1 && plan.zero < 3 {
            let sync = Self.allReduceSeconds(bytes: stage.gradients, ranks: replicas, bandwidth: dataLink)
            let lastBucket = sync * min(1, Self.gradientBucketBytes / stage.gradients)
            dataParallel = max(lastBucket, sync - backward)
        }
        // The optimizer reads and writes every model state it holds once.
        let optimizer = 2 * (memory.weights + memory.gradients + memory.optimizerStates) / memoryRate

        let time = StepTime(compute: m * compute, tensorParallel: m * tensorParallel, contextParallel: m * contextParallel,
                            pipelineTransfers: m * pipelineTransfers, zeroGathers: m * zeroGathers, bubble: bubble,
                            dataParallel: dataParallel, optimizer: optimizer)
        let tokensPerStep = Double(request.globalBatch) * s
        let modelFLOPs = tokensPerStep * f.perTokenTraining, executedFLOPs = tokensPerStep * f.perTokenExecuted
        let devices = Double(plan.devices), seconds = time.total
        return PlanEvaluation(plan: plan, time: time, memory: memory, modelFLOPs: modelFLOPs, executedFLOPs: executedFLOPs,
                              mfu: modelFLOPs / (devices * cluster.peakFLOPS * seconds),
                              executedFLOPSPerDevice: executedFLOPs / (devices * seconds),
                              modelFLOPSPerDevice: modelFLOPs / (devices * seconds))
    }
}
