import FlashCore
import Transformer

/// An optimization-based automatic-parallelization planner: it finds the plan (dp × tp × pp × cp,
/// micro-batch, recomputation, ZeRO stage, pipeline schedule) with the least predicted step
/// time that fits in device memory, by an exact search over the cost model of docs/planner.md.
public struct Planner: Sendable {
    /// What is planned.
    public let request: PlanRequest
    let parameters: ParameterCount
    /// FLOPs per token for each recomputation policy (at the full sequence length).
    let flops: [Recomputation: FLOPCount]

    /// Validates the request (`InvalidArgument` naming the field) and precomputes its FLOP counts.
    public init(_ request: PlanRequest) throws {
        try request.validate()
        self.request = request
        parameters = try ParameterCount(request.setup.model)
        var flops: [Recomputation: FLOPCount] = [:]
        for policy in Recomputation.allCases {
            var setup = request.setup
            setup.recomputation = policy
            setup.memoryModel = .textbook   // the FLOPs do not depend on whose buffers are counted
            setup.parallelism = Parallelism()
            flops[policy] = try FLOPCount(setup)
        }
        self.flops = flops
    }

    /// The best plan, the best plan of every other feasible family ranked by step time, and the
    /// reason each rejected family was rejected.
    public struct Result: Sendable {
        /// The fastest feasible plan.
        public var best: PlanEvaluation
        /// The best plan of each other feasible (dp, tp, pp, cp) family, fastest first.
        public var alternatives: [PlanEvaluation]
        /// Every infeasible family, with its reason.
        public var rejected: [Rejection]
        /// Plans whose cost the search computed.
        public var plansEvaluated: Int
    }

    /// A (dp, tp, pp, cp) family none of whose plans is feasible, and why.
    public struct Rejection: Codable, Equatable, Sendable {
        /// The rejected degrees.
        public var family: ParallelFamily
        /// The constraint that rejected them.
        public var reason: PlanRejectionReason
    }
}

/// Why a family of plans is infeasible.
public enum PlanRejectionReason: Codable, Equatable, Sendable, CustomStringConvertible {
    case headsNotDivisible(heads: Int)
    case layersNotDivisible(layers: Int)
    case sequenceNotDivisible(sequence: Int)
    case contextParallelNeedsFlash
    case batchNotDivisible(globalBatch: Int)
    case notSupported(what: String)
    /// Even its smallest-memory plan needs `needed` bytes per device.
    case outOfMemory(needed: Double, available: Double)

    /// A sentence for people.
    public var description: String {
        switch self {
        case .headsNotDivisible(let heads): "heads (\(heads)) not divisible by tp"
        case .layersNotDivisible(let layers): "layers (\(layers)) not divisible by pp"
        case .sequenceNotDivisible(let sequence): "sequence (\(sequence)) not divisible by cp (2·cp in zig-zag order)"
        case .contextParallelNeedsFlash: "cp > 1 needs flash attention (ring attention)"
        case .batchNotDivisible(let batch): "global batch (\(batch)) not divisible by dp"
        case .notSupported(let what): "\(what) not supported by this trainer"
        case .outOfMemory(let needed, let available):
            "out of memory: needs ≥ \(Self.gigabytes(needed)) per device, has \(Self.gigabytes(available))"
        }
    }

    static func gigabytes(_ bytes: Double) -> String {
        bytes >= 1e9 ? "\((bytes / 1e9 * 100).rounded() / 100) GB" : "\((bytes / 1e6 * 100).rounded() / 100) MB"
    }
}

/// No plan exists; each case names the reason and what would work.
public enum PlanError: Error, Equatable, CustomStringConvertible {
    /// No (dp, tp, pp, cp) divides the devices and the model: tp must divide the heads, pp the
    /// layers, cp the sequence and dp the global batch. `nearest` lists device counts that can.
    case cannotSplit(devices: Int, nearest: [Int])
    /// Every split is out of memory. `smallestMemory`: the least per-device memory some plan on
    /// these devices needs; `smallestDevices`: the fewest devices of this memory that some plan
    /// fits (nil when none up to the model's finest split does).
    case outOfMemory(devices: Int, deviceMemory: Double, smallestMemory: Double, smallestDevices: Int?)

    /// A sentence for people.
    public var description: String {
        switch self {
        case .cannotSplit(let devices, let nearest):
            "cannot split the model over \(devices) devices: no dp × tp × pp × cp = \(devices) with tp dividing the heads, "
                + "pp the layers, cp the sequence and dp the global batch"
                + (nearest.isEmpty ? "" : "; device counts that can: " + nearest.map(String.init).joined(separator: ", "))
        case .outOfMemory(let devices, let memory, let smallestMemory, let smallestDevices):
            "no plan fits in \(PlanRejectionReason.gigabytes(memory)) per device on \(devices) devices; "
                + "the smallest plan needs \(PlanRejectionReason.gigabytes(smallestMemory)) per device"
                + (smallestDevices.map { ", or \($0) devices of this memory" } ?? ", and no device count fits this memory")
        }
    }
}
