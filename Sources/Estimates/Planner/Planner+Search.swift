import FlashAttention
import Transformer

// The search: every (tp, pp, cp, dp) that divides the devices, every micro-batch that divides
// the batch, every interleaving factor, every recomputation policy and ZeRO stage, with one
// pruning that cannot lose the optimum (docs/planner.md §4): memory grows with the micro-batch
// (b × min(m, p) never decreases as b grows), so once a micro-batch fits with no schedule and no
// ZeRO stage, no larger one does. (ZeRO is not pruned by dominance: a higher stage needs less
// memory but is not always slower, since each rank then updates only its shard of the states.)

extension Planner {
    /// The divisors of n, ascending.
    static func divisors(_ n: Int) -> [Int] {
        guard n > 0 else { return [] }
        var small: [Int] = [], large: [Int] = []
        var i = 1
        while i * i <= n {
            if n % i == 0 {
                small.append(i)
                if i * i != n { large.append(n / i) }
            }
            i += 1
        }
        return small + large.reversed()
    }

    /// Why the family cannot run at all (before memory), or nil.
    func divisibilityReason(_ family: ParallelFamily) -> PlanRejectionReason? {
        let config = request.setup.model, space = request.space
        if family.tensor > 1 && !space.tensorParallel { return .notSupported(what: "tensor parallelism") }
        if family.pipeline > 1 && !space.pipelineParallel { return .notSupported(what: "pipeline parallelism") }
        if family.context > 1 && !space.contextParallel { return .notSupported(what: "context parallelism") }
        if config.heads % family.tensor != 0 { return .headsNotDivisible(heads: config.heads) }
        if request.space.unevenPipelineStages {
            if layersPerStage(family.pipeline).min()! < 1 { return .layersNotDivisible(layers: config.layers) }
        } else if config.layers % family.pipeline != 0 {
            return .layersNotDivisible(layers: config.layers)
        }
        let blocks = request.space.zigzagContext && family.context > 1 ? 2 * family.context : family.context
        if request.setup.sequenceLength % blocks != 0 { return .sequenceNotDivisible(sequence: request.setup.sequenceLength) }
        if family.context > 1 && request.setup.attention != .flash { return .contextParallelNeedsFlash }
        if request.globalBatch % family.data != 0 { return .batchNotDivisible(globalBatch: request.globalBatch) }
        return nil
    }

    func matchesFixed(_ family: ParallelFamily) -> Bool {
        let fixed = request.fixed
        return (fixed.data ?? family.data) == family.data && (fixed.tensor ?? family.tensor) == family.tensor
            && (fixed.pipeline ?? family.pipeline) == family.pipeline && (fixed.context ?? family.context) == family.context
    }

    /// Every (dp, tp, pp, cp) with dp × tp × pp × cp = devices that the fixed choices allow.
    func families(devices: Int) -> [ParallelFamily] {
        var result: [ParallelFamily] = []
        for t in Self.divisors(devices) {
            for p in Self.divisors(devices / t) {
                for c in Self.divisors(devices / (t * p)) {
                    let family = ParallelFamily(data: devices / (t * p * c), tensor: t, pipeline: p, context: c)
                    if matchesFixed(family) { result.append(family) }
                }
            }
        }
        return result
    }

    var recomputations: [Recomputation] { request.fixed.recomputation.map { [$0] } ?? request.space.recomputations }

    /// Interleaving factors for p stages and m micro-batches: v divides the layers per stage and
    /// Megatron's schedule needs m to be a multiple of p.
    func chunkChoices(stages p: Int, microBatches m: Int) -> [Int] {
        let candidates: [Int]
        if p > 1 && request.space.interleaving && m % p == 0 {
            candidates = Self.divisors(Self.stageLayers(request.setup.model.layers, stages: p))
        } else {
            candidates = [1]
        }
        guard let fixed = request.fixed.chunks else { return candidates }
        return candidates.contains(fixed) ? [fixed] : []
    }

    /// Less predicted time; on a tie (the model's time does not depend on the micro-batch when p = 1),
    /// the larger micro-batch, which real kernels run at least as fast.
    static func isBetter(_ a: PlanEvaluation, than b: PlanEvaluation) -> Bool {
        let tolerance = 1e-9 * b.time.total
        if a.time.total < b.time.total - tolerance { return true }
        return a.time.total <= b.time.total + tolerance && a.plan.microBatch > b.plan.microBatch
    }

    /// The fastest feasible plan, the best of every other feasible family, and every rejection.
    public func plan(alternatives count: Int = 5) throws -> Result {
        let budget = request.cluster.deviceMemory, batch = request.globalBatch
        var bestPerFamily: [PlanEvaluation] = []
        var rejected: [Rejection] = []
        var evaluated = 0
        var smallestMemory = Double.infinity
        for family in families(devices: request.devices) {
            if let reason = divisibilityReason(family) {
                rejected.append(Rejection(family: family, reason: reason))
                continue
            }
            var best: PlanEvaluation?
            var familyMemory = Double.infinity
            let zeros = request.fixed.zero.map { [$0] } ?? Array(0...(family.data * family.context > 1 ? request.space.maxZero : 0))
            for recomputation in recomputations {
                let stage = try stageMemory(tensor: family.tensor, pipeline: family.pipeline, context: family.context,
                                            recomputation: recomputation)
                let microBatches = request.fixed.microBatch.map { batch / family.data % $0 == 0 ? [$0] : [] }
                    ?? Self.divisors(batch / family.data)
                for b in microBatches {
                    let m = batch / (family.data * b)
                    var fitted = false
                    for v in chunkChoices(stages: family.pipeline, microBatches: m) {
                        for zero in zeros {
                            let plan = ParallelPlan(data: family.data, tensor: family.tensor, pipeline: family.pipeline,
                                                    context: family.context, microBatch: b, microBatches: m,
                                                    recomputation: recomputation, zero: zero,
                                                    schedule: v == 1 ? .oneFOneB : .interleaved(chunks: v))
                            let memory = memory(plan, stage)
                            familyMemory = min(familyMemory, memory.total)
                            guard memory.total <= budget else { continue }
                            fitted = true
                            evaluated += 1
                            let evaluation = evaluate(plan, stage: stage, memory: memory)
                            if best.map({ Self.isBetter(evaluation, than: $0) }) ?? true { best = evaluation }
                        }
                    }
                    if !fitted { break }   // nor does any larger micro-batch fit
                }
            }
            if let best {
                bestPerFamily.append(best)
            } else if familyMemory.isFinite {
                smallestMemory = min(smallestMemory, familyMemory)
                rejected.append(Rejection(family: family, reason: .outOfMemory(needed: familyMemory, available: budget)))
            } else {
                rejected.append(Rejection(family: family, reason: .notSupported(what: "the fixed micro-batch or interleaving")))
            }
        }
        bestPerFamily.sort { Self.isBetter($0, than: $1) }
        guard let best = bestPerFamily.first else {
            if smallestMemory.isFinite {
                throw PlanError.outOfMemory(devices: request.devices, deviceMemory: budget, smallestMemory: smallestMemory,
                                            smallestDevices: try smallestDeviceCount())
            }
            throw PlanError.cannotSplit(devices: request.devices, nearest: nearestSplittable())
        }
        return Result(best: best, alternatives: Array(bestPerFamily.dropFirst().prefix(count)),
                      rejected: rejected, plansEvaluated: evaluated)
    }

    /// The fewest devices on which some plan fits this memory: every tp | heads, pp | layers,
    /// cp | sequence, dp | batch, at the smallest-memory choices (micro-batch 1, the most
    /// recomputation, the highest ZeRO stage, 1F1B).
    func smallestDeviceCount() throws -> Int? {
        let config = request.setup.model, batch = request.globalBatch, budget = request.cluster.deviceMemory
        guard let recomputation = recomputations.last else { return nil }
        var smallest: Int?
        let zero = request.fixed.zero ?? request.space.maxZero
        for t in Self.divisors(config.heads) {
            for p in Self.divisors(config.layers) {
                for c in Self.divisors(request.setup.sequenceLength) {
                    var stage: StageMemory?
                    for d in Self.divisors(batch) {
                        let family = ParallelFamily(data: d, tensor: t, pipeline: p, context: c)
                        let devices = t * p * c * d
                        guard smallest.map({ devices < $0 }) ?? true, divisibilityReason(family) == nil, matchesFixed(family)
                        else { continue }
                        if stage == nil { stage = try stageMemory(tensor: t, pipeline: p, context: c, recomputation: recomputation) }
                        let plan = ParallelPlan(data: d, tensor: t, pipeline: p, context: c, microBatch: 1,
                                                microBatches: batch / d, recomputation: recomputation, zero: zero, schedule: .oneFOneB)
                        if memory(plan, stage!).total <= budget { smallest = devices }
                    }
                }
            }
        }
        return smallest
    }

    /// Device counts within 64 of the request's that the model can be split over, nearest first (at most 4).
    func nearestSplittable() -> [Int] {
        let target = request.devices
        var found: [Int] = []
        for distance in 1...64 {
            for candidate in [target - distance, target + distance] where candidate > 0 {
                if families(devices: candidate).contains(where: { divisibilityReason($0) == nil }) { found.append(candidate) }
            }
            if found.count >= 4 { break }
        }
        return Array(found.prefix(4))
    }
}
