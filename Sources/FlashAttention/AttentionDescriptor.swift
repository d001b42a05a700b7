import FlashCore

/// Which algorithm computes attention.
public enum AttentionImplementation: String, Sendable, CaseIterable, Codable {
    /// FlashAttention: tiled, online softmax, O(N) extra memory.
    case flash
    /// The textbook algorithm: materialises S = scale·QKᵀ and P = softmax(S).
    case standard
}

/// What to compute: O = softmax(scale·QKᵀ + bias/masks)·V, with every option attention
/// variants need. Tensors are laid out [batch, seqLen, heads, headDim] (any strides).
public struct AttentionDescriptor: Sendable {
    /// Multiplies QKᵀ; `nil` means 1/√headDim.
    public var scale: Float?
    /// Causal mask aligned bottom-right: query i sees keys j ≤ i + Nk − Nq (FlashAttention ≥ 2.1).
    public var causal: Bool
    /// Sliding window: query i sees keys in [i + Nk − Nq − left, i + Nk − Nq + right];
    /// `nil` on a side means unbounded on that side. Both must be ≥ 0. With `causal`, the
    /// right side is clipped to 0.
    public var windowLeft: Int?
    /// The right side of the sliding window (see `windowLeft`).
    public var windowRight: Int?
    /// Logit soft-capping: s ← cap·tanh(s/cap), applied after scaling, before bias/ALiBi.
    public var softcap: Float?
    /// ALiBi: adds −slope[h]·|i + Nk − Nq − j| to the logits of query head h.
    public var alibiSlopes: [Float]?
    /// Additive bias, shape broadcastable over [batch|1, heads|1, Nq, Nk].
    public var bias: Tensor?
    /// Boolean keep-mask (nonzero keeps a logit), broadcastable over [batch|1, heads|1, Nq, Nk].
    public var keepMask: Tensor?
    /// Valid keys per batch entry (padding): keys at j ≥ keyLengths[b] are masked. The causal
    /// and window diagonal stays aligned to the tensor's Nk (slice the keys instead to align
    /// it to a shorter valid length, e.g. a partly filled KV cache).
    public var keyLengths: [Int]?
    /// Dropout probability on P, in [0, 1) (0 for inference). The mask is
    /// `AttentionDropout.keeps(seed:batch:head:query:key:probability:)`.
    public var dropoutProbability: Float
    /// Seed of the dropout mask; the backward must get the same seed as the forward.
    public var dropoutSeed: UInt64
    /// The dropout mask's batch coordinate of this call's first sequence (sequence s draws the
    /// mask of batch `dropoutSequenceOffset + s`), so a data-parallel rank holding sequences
    /// r·B..<(r+1)·B of a global batch draws the masks one process with the whole batch draws.
    public var dropoutSequenceOffset: Int = 0
    /// Which algorithm runs.
    public var implementation: AttentionImplementation
    /// Threads to use; `nil` means `Parallel.defaultThreads`.
    public var threads: Int?

    /// A descriptor with every option off: plain softmax attention, flash implementation.
    public init(
        scale: Float? = nil, causal: Bool = false, windowLeft: Int? = nil, windowRight: Int? = nil,
        softcap: Float? = nil, alibiSlopes: [Float]? = nil, bias: Tensor? = nil, keepMask: Tensor? = nil,
        keyLengths: [Int]? = nil, dropoutProbability: Float = 0, dropoutSeed: UInt64 = 0,
        implementation: AttentionImplementation = .flash, threads: Int? = nil
    ) {
        self.scale = scale
        self.causal = causal
        self.windowLeft = windowLeft
        self.windowRight = windowRight
        self.softcap = softcap
        self.alibiSlopes = alibiSlopes
        self.bias = bias
        self.keepMask = keepMask
        self.keyLengths = keyLengths
        self.dropoutProbability = dropoutProbability
        self.dropoutSeed = dropoutSeed
        self.implementation = implementation
        self.threads = threads
    }
}

/// The forward pass's results.
public struct AttentionOutput: Sendable {
    /// O, shape [batch, Nq, heads, headDim], Float32.
    public var output: Tensor
    /// Per-row log-sum-exp of the (scaled, masked) logits, shape [batch, heads, Nq], Float32;
    /// −Inf for a row whose keys are all masked.
    public var logSumExp: Tensor
    /// The rounding error of `logSumExp`, same shape: the row's m + log l (row max m, sum
    /// l = Σ e^(s − m)) equals `logSumExp` + `logSumExpResidual` exactly in Float32 (0 for
    /// masked rows). Pass it to `backward`: with logits of magnitude ~10³, `logSumExp` alone
    /// (spacing ~6·10⁻⁵ there) would shift every recomputed P = e^(s − LSE) of the row by up to
    /// that much, relative; with the residual P keeps Float32 accuracy, at one float per row.
    public var logSumExpResidual: Tensor
}

/// The backward pass's results, each shaped and typed like the Float32 version of its input.
public struct AttentionGradients: Sendable {
    /// dQ, shaped like the query.
    public var query: Tensor
    /// dK, shaped like the key (summed over the query heads of each group).
    public var key: Tensor
    /// dV, shaped like the value (summed over the query heads of each group).
    public var value: Tensor

    /// Gradients from their three tensors (e.g. views to write into).
    public init(query: Tensor, key: Tensor, value: Tensor) {
        self.query = query
        self.key = key
        self.value = value
    }
}
