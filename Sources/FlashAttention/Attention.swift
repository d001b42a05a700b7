import Foundation
import FlashCore

/// Public entry points of the attention kernels.
///
/// Semantics (shared by every implementation, and by flash_attn ≥ 2.1):
/// - logits s_ij = scale·q_i·k_j (scale defaults to 1/√D), then softcap cap·tanh(s/cap), then
///   + bias − slope_h·|i + Nk − Nq − j| (ALiBi);
/// - causal and sliding-window masks are aligned to the bottom-right diagonal: query i sits at
///   key position i + Nk − Nq, so causal lets it see keys j ≤ i + Nk − Nq;
/// - a row whose keys are all masked gets output 0, LSE −Inf and zero gradients (never NaN);
/// - dropout drops P entries by `AttentionDropout.keeps` (a pure function of coordinates) and
///   scales the kept ones by 1/(1 − p); the LSE is that of the undropped P.
/// - with grouped-query attention (Hq a multiple of Hkv) query head h uses key/value head
///   h / (Hq / Hkv), and the backward sums dK/dV over each group.
public enum Attention {
    /// The standard implementation refuses calls whose score matrices would need more bytes
    /// than this (default: half of physical memory) with `AttentionError.standardMemoryExceeded`.
    nonisolated(unsafe) public static var standardMemoryLimitBytes = Int(ProcessInfo.processInfo.physicalMemory / 2)

    /// `forward` uses the split-KV decode kernel when every sequence has at most this many
    /// queries (with the flash implementation). The choice depends only on shapes, never on the
    /// thread count, so results are reproducible across machines' core counts.
    public static let decodeMaximumQueries = 16

    /// O = softmax(scale·QKᵀ + masks)·V. `query` is [B, Nq, Hq, D], `key`/`value` are
    /// [B, Nk, Hkv, D] with Hq a multiple of Hkv, any strides and element types (F16/BF16 are
    /// converted to Float32 on load). Writes into `output` when given (a [B, Nq, Hq, D] Float32
    /// view, any strides), else allocates it. The LSE is [B, Hq, Nq].
    public static func forward(
        query: Tensor, key: Tensor, value: Tensor,
        descriptor: AttentionDescriptor = AttentionDescriptor(), output: Tensor? = nil
    ) throws -> AttentionOutput {
        try forward(query: query, key: key, value: value, descriptor: descriptor, output: output, traffic: nil)
    }

    /// `forward`, also returning the bytes each operand moved as counted by the kernels' tile
    /// loops (see `AttentionTraffic`). Counting costs a few locked additions per tile.
    public static func forwardCountingTraffic(
        query: Tensor, key: Tensor, value: Tensor,
        descriptor: AttentionDescriptor = AttentionDescriptor(), output: Tensor? = nil
    ) throws -> (AttentionOutput, AttentionTraffic) {
        let counter = TrafficCounter()
        let result = try forward(query: query, key: key, value: value, descriptor: descriptor, output: output, traffic: counter)
        return (result, counter.result)
    }

    /// `backward`, also returning the bytes each operand moved (see `forwardCountingTraffic`).
    public static func backwardCountingTraffic(
        query: Tensor, key: Tensor, value: Tensor, output: Tensor, logSumExp: Tensor, logSumExpResidual: Tensor? = nil,
        outputGradient: Tensor, descriptor: AttentionDescriptor = AttentionDescriptor()
    ) throws -> (AttentionGradients, AttentionTraffic) {
        let counter = TrafficCounter()
        let result = try backward(query: query, key: key, value: value, output: output, logSumExp: logSumExp,
                                  logSumExpResidual: logSumExpResidual, outputGradient: outputGradient,
                                  descriptor: descriptor, into: nil, traffic: counter)
        return (result, counter.result)
    }

    private static func forward(
        query: Tensor, key: Tensor, value: Tensor, descriptor: AttentionDescriptor, output: Tensor?,
        traffic: TrafficCounter?
    ) throws -> AttentionOutput {
        var problem = try descriptor.problem(query: query, key: key, value: value)
        problem.traffic = traffic
        let out = try prepareOutput(output, shape: query.shape)
        let lse = try Tensor(zeros: [query.shape[0], query.shape[2], query.shape[1]])
        let residual = try Tensor(zeros: lse.shape)
        let useDecode = descriptor.implementation == .flash && query.shape[1] <= decodeMaximumQueries
        try run(problem, descriptor.implementation, decode: useDecode, output: .batched(out),
                logSumExp: LogSumExpRows(value: .batched(lse, lse: true), residual: .batched(residual, lse: true)))
        return AttentionOutput(output: out, logSumExp: lse, logSumExpResidual: residual)
    }

    /// The split-KV decode kernel directly (see `FlashAttentionKernel.decode`): the same result
    /// as `forward` for any number of queries, fastest for a few queries against a long cache.
    public static func decode(
        query: Tensor, key: Tensor, value: Tensor,
        descriptor: AttentionDescriptor = AttentionDescriptor(), output: Tensor? = nil
    ) throws -> AttentionOutput {
        let problem = try descriptor.problem(query: query, key: key, value: value)
        let out = try prepareOutput(output, shape: query.shape)
        let lse = try Tensor(zeros: [query.shape[0], query.shape[2], query.shape[1]])
        let residual = try Tensor(zeros: lse.shape)
        FlashAttentionKernel.decode(problem, output: .batched(out),
                                    logSumExp: LogSumExpRows(value: .batched(lse, lse: true), residual: .batched(residual, lse: true)))
        return AttentionOutput(output: out, logSumExp: lse, logSumExpResidual: residual)
    }

    /// Packed variable-length batch (like flash_attn_varlen_func): `query` is [totalQ, Hq, D]
    /// holding sequence s in rows cumulativeQueryLengths[s]..<cumulativeQueryLengths[s+1];
    /// `key`/`value` are [totalK, Hkv, D] likewise. Masks are aligned per sequence. The LSE is
    /// [Hq, totalQ]; dropout coordinates are (sequence, head, i, j) counted within the sequence.
    /// `bias`, `keepMask` and `keyLengths` are not supported here.
    public static func forwardVariableLength(
        query: Tensor, key: Tensor, value: Tensor, cumulativeQueryLengths: [Int], cumulativeKeyLengths: [Int],
        descriptor: AttentionDescriptor = AttentionDescriptor(), output: Tensor? = nil
    ) throws -> AttentionOutput {
        let problem = try descriptor.variableLengthProblem(
            query: query, key: key, value: value,
            cumulativeQueryLengths: cumulativeQueryLengths, cumulativeKeyLengths: cumulativeKeyLengths)
        let out = try prepareOutput(output, shape: query.shape)
        let lse = try Tensor(zeros: [query.shape[1], query.shape[0]])
        let residual = try Tensor(zeros: lse.shape)
        let useDecode = descriptor.implementation == .flash && (problem.queryLengths.max() ?? 0) <= decodeMaximumQueries
        try run(problem, descriptor.implementation, decode: useDecode, output: .packed(out),
                logSumExp: LogSumExpRows(value: .packed(lse, lse: true), residual: .packed(residual, lse: true)))
        return AttentionOutput(output: out, logSumExp: lse, logSumExpResidual: residual)
    }

    /// dQ, dK, dV given dO (`outputGradient`, shaped like O) and the forward's O, LSE and LSE
    /// residual. Gradients are contiguous Float32 tensors shaped like query, key and value.
    ///
    /// Pass the forward's `logSumExpResidual`: P is recomputed as e^((s − LSE) − residual),
    /// which keeps Float32 accuracy when the logits are large (~10³). Without it (nil) the
    /// residual is taken as 0, as from an LSE saved by another program; P then loses up to
    /// half the LSE's spacing, relative (~3·10⁻⁵ at logits of 10³).
    public static func backward(
        query: Tensor, key: Tensor, value: Tensor, output: Tensor, logSumExp: Tensor, logSumExpResidual: Tensor? = nil,
        outputGradient: Tensor, descriptor: AttentionDescriptor = AttentionDescriptor()
    ) throws -> AttentionGradients {
        try backward(query: query, key: key, value: value, output: output, logSumExp: logSumExp,
                     logSumExpResidual: logSumExpResidual, outputGradient: outputGradient,
                     descriptor: descriptor, into: nil, traffic: nil)
    }

    /// `backward` writing the gradients into caller-provided Float32 views (any strides; e.g.
    /// the dQ/dK/dV slices of a fused dQKV buffer), which are fully overwritten.
    @discardableResult
    public static func backward(
        query: Tensor, key: Tensor, value: Tensor, output: Tensor, logSumExp: Tensor, logSumExpResidual: Tensor? = nil,
        outputGradient: Tensor, descriptor: AttentionDescriptor = AttentionDescriptor(), into gradients: AttentionGradients
    ) throws -> AttentionGradients {
        try AttentionDescriptor.checkShape(gradients.query, "gradients.query", expected: query.shape, float32: true)
        try AttentionDescriptor.checkShape(gradients.key, "gradients.key", expected: key.shape, float32: true)
        try AttentionDescriptor.checkShape(gradients.value, "gradients.value", expected: value.shape, float32: true)
        return try backward(query: query, key: key, value: value, output: output, logSumExp: logSumExp,
                            logSumExpResidual: logSumExpResidual, outputGradient: outputGradient,
                            descriptor: descriptor, into: gradients, traffic: nil)
    }

    private static func backward(
        query: Tensor, key: Tensor, value: Tensor, output: Tensor, logSumExp: Tensor, logSumExpResidual: Tensor?,
        outputGradient: Tensor, descriptor: AttentionDescriptor, into destination: AttentionGradients?,
        traffic: TrafficCounter?
    ) throws -> AttentionGradients {
        var problem = try descriptor.problem(query: query, key: key, value: value)
        problem.traffic = traffic
        try AttentionDescriptor.checkShape(output, "output", expected: query.shape, float32: false)
        try AttentionDescriptor.checkShape(outputGradient, "outputGradient", expected: query.shape, float32: false)
        try AttentionDescriptor.checkShape(logSumExp, "logSumExp", expected: [query.shape[0], query.shape[2], query.shape[1]], float32: false)
        if let logSumExpResidual {
            try AttentionDescriptor.checkShape(logSumExpResidual, "logSumExpResidual", expected: logSumExp.shape, float32: false)
        }
        let gradients = try destination
            ?? AttentionGradients(query: Tensor(zeros: query.shape), key: Tensor(zeros: key.shape), value: Tensor(zeros: value.shape))
        let saved = LogSumExpRows(value: .batched(logSumExp, lse: true), residual: logSumExpResidual.map { .batched($0, lse: true) })
        try runBackward(problem, descriptor.implementation, output: .batched(output), logSumExp: saved,
                        outputGradient: .batched(outputGradient), gradients: gradients, layout: HeadRows.batched)
        return gradients
    }

    /// The backward of `forwardVariableLength` (LSE and its residual [Hq, totalQ]; see `backward`).
    public static func backwardVariableLength(
        query: Tensor, key: Tensor, value: Tensor, output: Tensor, logSumExp: Tensor, logSumExpResidual: Tensor? = nil,
        outputGradient: Tensor,
        cumulativeQueryLengths: [Int], cumulativeKeyLengths: [Int],
        descriptor: AttentionDescriptor = AttentionDescriptor()
    ) throws -> AttentionGradients {
        let problem = try descriptor.variableLengthProblem(
            query: query, key: key, value: value,
            cumulativeQueryLengths: cumulativeQueryLengths, cumulativeKeyLengths: cumulativeKeyLengths)
        try AttentionDescriptor.checkShape(output, "output", expected: query.shape, float32: false)
        try AttentionDescriptor.checkShape(outputGradient, "outputGradient", expected: query.shape, float32: false)
        try AttentionDescriptor.checkShape(logSumExp, "logSumExp", expected: [query.shape[1], query.shape[0]], float32: false)
        if let logSumExpResidual {
            try AttentionDescriptor.checkShape(logSumExpResidual, "logSumExpResidual", expected: logSumExp.shape, float32: false)
        }
        let gradients = try AttentionGradients(query: Tensor(zeros: query.shape), key: Tensor(zeros: key.shape), value: Tensor(zeros: value.shape))
        let saved = LogSumExpRows(value: .packed(logSumExp, lse: true), residual: logSumExpResidual.map { .packed($0, lse: true) })
        try runBackward(problem, descriptor.implementation, output: .packed(output), logSumExp: saved,
                        outputGradient: .packed(outputGradient), gradients: gradients, layout: HeadRows.packed)
        return gradients
    }

    private static func prepareOutput(_ output: Tensor?, shape: [Int]) throws -> Tensor {
        guard let output else { return try Tensor(zeros: shape) }
        try AttentionDescriptor.checkShape(output, "output", expected: shape, float32: true)
        return output
    }

    private static func run(
        _ problem: AttentionProblem, _ implementation: AttentionImplementation, decode: Bool,
        output: HeadRows, logSumExp: LogSumExpRows
    ) throws {
        switch implementation {
        case .standard: try StandardAttention.forward(problem, output: output, logSumExp: logSumExp)
        case .flash where decode: FlashAttentionKernel.decode(problem, output: output, logSumExp: logSumExp)
        case .flash: FlashAttentionKernel.forward(problem, output: output, logSumExp: logSumExp)
        }
    }

    private static func runBackward(
        _ problem: AttentionProblem, _ implementation: AttentionImplementation,
        output: HeadRows, logSumExp: LogSumExpRows, outputGradient: HeadRows,
        gradients: AttentionGradients, layout: (Tensor, Bool) -> HeadRows
    ) throws {
        let (dq, dk, dv) = (layout(gradients.query, false), layout(gradients.key, false), layout(gradients.value, false))
        switch implementation {
        case .standard:
            try StandardAttention.backward(problem, output: output, logSumExp: logSumExp, outputGradient: outputGradient,
                                           queryGradient: dq, keyGradient: dk, valueGradient: dv)
        case .flash:
            FlashAttentionKernel.backward(problem, output: output, logSumExp: logSumExp, outputGradient: outputGradient,
                                          queryGradient: dq, keyGradient: dk, valueGradient: dv)
        }
    }
}
