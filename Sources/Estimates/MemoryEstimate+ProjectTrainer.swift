import FlashAttention
import Transformer

extension MemoryEstimate {
    /// `MemoryModel.projectTrainer`: the buffers `Transformer.ActivationBuffers`, the attention
    /// API and the flash kernels allocate, per sequence, all Float32 (a = 4 bytes). Stored and
    /// scratch bytes equal `TransformerModel.memoryAccounting` exactly (MemoryVersusTrainerTests);
    /// the attention workspace is the kernels' largest allocation during a backward call.
    static func projectTrainerPerSequence(_ setup: TrainingSetup) -> PerSequence {
        let config = setup.model
        let s = Double(setup.sequenceLength), a = 4.0
        let c = Double(config.width), f = Double(config.mlpWidth), h = Double(config.heads), v = Double(config.vocabularySize)
        let qkv = Double((config.heads + 2 * config.kvHeads) * config.headDim)
        let swiglu = config.activation == .swiglu
        // Per layer and token: layer input, norm A, QKV, attention output, mid-block residual,
        // norm B (4·C + QKV + C); MLP up and activation, plus the gate for SwiGLU (ReLU keeps its
        // pre-activation too); two norm statistics of 2 floats each, also for RMSNorm; the
        // attention API's Float32 log-sum-exp per head and its rounding error (the residual that
        // keeps the backward's P accurate; returned by standard attention as well).
        let statistics = 2 * 2 * a
        let logSumExp = 2 * h * a
        let perToken = a * (5 * c + qkv + (swiglu ? 3 : 2) * f) + statistics + logSumExp
        let layer = s * perToken
        // Outside the layers: the stack's output, the final norm's output and statistics (allocated
        // with post-norm as well), the logits, one loss per row, and the Int32 tokens and targets.
        let outside = s * (a * (2 * c + 2 + v + 1) + 2 * 4)
        let stored = Double(config.layers) * layer + outside
        // Shared scratch: the residual-branch buffer and the backward pass's gradients of the
        // residual stream (twice with post-norm), the norm output, QKV, the attention output and
        // the MLP hidden layer (twice for SwiGLU).
        let scratch = s * a * (c + c + (config.normPlacement == .post ? c : 0) + c + qkv + c + (swiglu ? 2 : 1) * f)
        // During one layer's attention backward: the dQ, dK, dV tensors the API returns, and
        // the kernel's own buffers. Standard: P and dP for every (sequence, head), N² each, all
        // allocated at once (masked entries included). Flash: Q, Qᵀ, dO, dOᵀ and dQ packed per
        // query head at the padded head width, rows padded to whole query tiles, plus LSE (two
        // floats: value and residual) and D = rowsum(dO∘O). Per-thread tile scratch (kilobytes) is left out.
        let apiGradients = s * a * qkv
        let kernel: Double
        switch setup.attention {
        case .standard:
            kernel = 2 * h * s * s * a
        case .flash:
            let tiles = AttentionTiles.forHeadDimension(config.headDim)
            let rows = Double((setup.sequenceLength + tiles.queryRows - 1) / tiles.queryRows * tiles.queryRows)
            let width = Double(AttentionTiles.paddedHeadDimension(config.headDim))
            kernel = h * rows * (5 * width + 3) * a
        }
        return (layer, s * logSumExp, stored, scratch, apiGradients + kernel)
    }
}
