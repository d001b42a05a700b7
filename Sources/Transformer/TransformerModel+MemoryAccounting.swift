import FlashCore

/// The bytes a `TransformerModel` holds between training steps, by role, read from its actual
/// allocations (buffer byte counts, not a formula). `Estimates.MemoryEstimate` with the
/// `.projectTrainer` storage model predicts each field; docs/estimates.md §3 maps them.
public struct TrainingMemoryAccounting: Equatable, Sendable {
    /// Parameters, Float32.
    public var parameters: Int
    /// Parameter gradients, Float32.
    public var gradients: Int
    /// What the forward pass saves for the backward pass, summed over layers: layer inputs, norm
    /// outputs and statistics, QKV, attention outputs, MLP intermediates, and the log-sum-exp
    /// tensors the attention API returns.
    public var layerActivations: Int
    /// Saved outside the layers: the stack's output, the final norm's output and statistics,
    /// the logits (overwritten by their gradient), per-row losses, tokens and targets.
    public var outputActivations: Int
    /// Scratch shared by all layers: the residual-branch buffer, the buffer for explicit
    /// transposes, and the backward pass's activation gradients (residual stream, norm output, QKV, attention output, MLP hidden).
    public var scratch: Int

    /// All of the above.
    public var total: Int { parameters + gradients + layerActivations + outputActivations + scratch }
}

extension TransformerModel {
    /// What the model holds now. Activation fields are 0 before the first forward pass or
    /// after `releaseActivations()`; `scratch` holds the gradient buffers only after a
    /// training-mode pass. Equals `allocatedBytes` plus the log-sum-exp tensors (and their residuals).
    public var memoryAccounting: TrainingMemoryAccounting {
        var accounting = TrainingMemoryAccounting(parameters: 4 * layout.count, gradients: 4 * layout.count,
                                                  layerActivations: 0, outputActivations: 0, scratch: 0)
        guard let b = buffers else { return accounting }
        func bytes(_ storages: [TensorStorage?]) -> Int { storages.reduce(0) { $0 + ($1?.byteCount ?? 0) } }
        let layers = config.layers
        accounting.layerActivations = bytes(Array(b.layerInput[0..<layers])) + bytes(b.normA) + bytes(b.statsA) + bytes(b.qkv)
            + bytes(b.attentionOutput) + bytes(b.residual) + bytes(b.normB) + bytes(b.statsB) + bytes(b.mlpGate)
            + bytes(b.mlpUp) + bytes(b.mlpActivation) + bytes(b.logSumExp.map { $0?.storage })
            + bytes(b.logSumExpResidual.map { $0?.storage })
        // Tokens and targets are two Int32 per row, allocated outside TensorStorage.
        accounting.outputActivations = bytes([b.layerInput[layers], b.finalNorm, b.finalStats, b.logits, b.losses]) + 8 * b.rows
        accounting.scratch = bytes([b.branch, b.residualGradient, b.residualGradient2, b.normGradient, b.qkvGradient,
                                    b.attentionGradient, b.mlpGradient, b.gateGradient])
        return accounting
    }
}
