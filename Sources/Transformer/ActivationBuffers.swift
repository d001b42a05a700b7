import FlashCore

/// Every activation the forward pass saves for the backward pass, and the backward pass's
/// scratch, preallocated for up to `rows` = batch × time rows (llm.c style: nothing is
/// allocated inside a training step except what the attention API returns).
final class ActivationBuffers {
    let rows: Int
    let hasGradients: Bool
    private(set) var bytes = 0

    // Per layer (layerInput has layers + 1 entries: the last is the stack's output).
    var layerInput: [TensorStorage] = []
    /// Pre-norm: norm1's output. Post-norm: x + attention (norm1's input).
    var normA: [TensorStorage] = []
    /// Norm statistics, [2, rows]: mean then rstd (RMSNorm uses only rstd).
    var statsA: [TensorStorage] = []
    var qkv: [TensorStorage] = []
    var attentionOutput: [TensorStorage] = []
    /// Pre-norm: x + attention (the mid-block residual). Post-norm: norm1's output.
    var residual: [TensorStorage] = []
    /// Pre-norm: norm2's output. Post-norm: residual + MLP (norm2's input).
    var normB: [TensorStorage] = []
    var statsB: [TensorStorage] = []
    var mlpGate: [TensorStorage] = []
    var mlpUp: [TensorStorage] = []
    var mlpActivation: [TensorStorage] = []
    var logSumExp: [Tensor?] = []
    /// The LSE's rounding error per row (`AttentionOutput.logSumExpResidual`), for an accurate P.
    var logSumExpResidual: [Tensor?] = []

    let finalNorm: TensorStorage
    let finalStats: TensorStorage
    let logits: TensorStorage
    let losses: TensorStorage
    let tokens: UnsafeMutablePointer<Int32>
    let targets: UnsafeMutablePointer<Int32>

    // Scratch, shared by all layers.
    let branch: TensorStorage
    var residualGradient: TensorStorage!
    var residualGradient2: TensorStorage!
    var normGradient: TensorStorage!
    var qkvGradient: TensorStorage!
    var attentionGradient: TensorStorage!
    var mlpGradient: TensorStorage!
    var gateGradient: TensorStorage!

    init(config: TransformerConfig, rows: Int, gradients: Bool) {
        self.rows = rows
        hasGradients = gradients
        let c = config.width, f = config.mlpWidth
        let qkvWidth = (config.heads + 2 * config.kvHeads) * config.headDim
        let swiglu = config.activation == .swiglu
        var total = 0
        func allocate(_ floats: Int) -> TensorStorage {
            total += floats * 4
            return TensorStorage(byteCount: floats * 4)
        }
        for _ in 0..<config.layers {
            layerInput.append(allocate(rows * c))
            normA.append(allocate(rows * c))
            statsA.append(allocate(2 * rows))
            qkv.append(allocate(rows * qkvWidth))
            attentionOutput.append(allocate(rows * c))
            residual.append(allocate(rows * c))
            normB.append(allocate(rows * c))
            statsB.append(allocate(2 * rows))
            mlpGate.append(allocate(swiglu ? rows * f : 0))
            mlpUp.append(allocate(rows * f))
            mlpActivation.append(allocate(rows * f))
            logSumExp.append(nil)
            logSumExpResidual.append(nil)
        }
        layerInput.append(allocate(rows * c))
        finalNorm = allocate(rows * c)
        finalStats = allocate(2 * rows)
        logits = allocate(rows * config.vocabularySize)
        losses = allocate(rows)
        branch = allocate(rows * c)
        tokens = .allocate(capacity: rows)
        targets = .allocate(capacity: rows)
        total += 8 * rows
        if gradients {
            residualGradient = allocate(rows * c)
            residualGradient2 = config.normPlacement == .post ? allocate(rows * c) : allocate(0)
            normGradient = allocate(rows * c)
            qkvGradient = allocate(rows * qkvWidth)
            attentionGradient = allocate(rows * c)
            mlpGradient = allocate(rows * f)
            gateGradient = allocate(swiglu ? rows * f : 0)
        }
        bytes = total
    }

    /// What `init(config:rows:gradients:)` allocates, in bytes, computed without allocating.
    static func byteCount(config: TransformerConfig, rows: Int, gradients: Bool) -> Int {
        let c = config.width, f = config.mlpWidth, v = config.vocabularySize
        let qkvWidth = (config.heads + 2 * config.kvHeads) * config.headDim
        let gate = config.activation == .swiglu ? f : 0
        let perLayer = 5 * c + 4 + qkvWidth + gate + 2 * f
        var floats = rows * (config.layers * perLayer + 3 * c + 2 + v + 1)
        if gradients {
            floats += rows * (3 * c + (config.normPlacement == .post ? c : 0) + qkvWidth + f + gate)
        }
        return 4 * floats + 8 * rows
    }

    deinit {
        tokens.deallocate()
        targets.deallocate()
    }
}

extension TensorStorage {
    /// The storage as Float32 elements.
    var floats: UnsafeMutablePointer<Float> { pointer.assumingMemoryBound(to: Float.self) }
}
