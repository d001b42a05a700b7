import FlashCore

/// The architecture of a decoder-only transformer language model. JSON-serialisable: it is
/// saved with every checkpoint, and the estimates module counts parameters/FLOPs/memory from it.
public struct TransformerConfig: Codable, Equatable, Sendable {
    /// How the model knows where each token is.
    public enum PositionEncoding: String, Codable, Sendable, CaseIterable {
        /// A learned absolute position embedding added to the token embedding (GPT-2).
        case learned
        /// Rotary embeddings on Q and K (LLaMA), base `ropeTheta`.
        case rotary
        /// ALiBi: a per-head linear bias on the attention logits, no embedding.
        case alibi
        /// No position information beyond the causal mask.
        case none
    }
    /// The normalisation layer.
    public enum Norm: String, Codable, Sendable, CaseIterable {
        /// LayerNorm: subtract the mean, divide by the standard deviation, scale (and shift with `bias`).
        case layerNorm
        /// RMSNorm: divide by the root mean square, scale (LLaMA).
        case rmsNorm
    }
    /// Where the norms sit relative to the residual connection.
    public enum NormPlacement: String, Codable, Sendable, CaseIterable {
        /// x + F(Norm(x)), with a final norm before the output head (GPT-2, LLaMA).
        case pre
        /// Norm(x + F(x)), as in the original transformer; no final norm.
        case post
    }
    /// The MLP's nonlinearity.
    public enum Activation: String, Codable, Sendable, CaseIterable {
        /// max(0, x).
        case relu
        /// GELU, tanh approximation (GPT-2).
        case gelu
        /// SwiGLU: (SiLU(x·W_gate) ⊙ x·W_up)·W_down, three matrices (LLaMA).
        case swiglu
    }

    /// Transformer blocks.
    public var layers: Int
    /// Query heads per block.
    public var heads: Int
    /// Key/value heads: `heads` for multi-head, 1 for multi-query, a divisor for grouped-query.
    public var kvHeads: Int
    /// Model width (d_model).
    public var width: Int
    /// Hidden width of the MLP.
    public var mlpWidth: Int
    /// Longest sequence the model is trained on (and the size of a learned position table).
    public var context: Int
    /// Tokens in the vocabulary.
    public var vocabularySize: Int
    /// How positions enter the model.
    public var positionEncoding: PositionEncoding
    /// Rotary base θ.
    public var ropeTheta: Float
    /// Linear position interpolation: positions are divided by this factor (1 = off).
    public var ropeScaling: Float
    /// LayerNorm or RMSNorm.
    public var norm: Norm
    /// Pre- or post-norm.
    public var normPlacement: NormPlacement
    /// ε added to the variance in every norm.
    public var normEpsilon: Float
    /// The MLP's nonlinearity.
    public var activation: Activation
    /// Biases on the linear layers (and LayerNorm's shift).
    public var bias: Bool
    /// Output head shares the token embedding matrix.
    public var tiedEmbeddings: Bool
    /// Dropout probability during training (embeddings, attention weights, residual branches; 0: off).
    public var dropout: Float

    /// A configuration; `kvHeads` defaults to `heads` and `mlpWidth` to 4 · `width`. Call
    /// `validate()` to check it.
    public init(
        layers: Int, heads: Int, kvHeads: Int? = nil, width: Int, mlpWidth: Int? = nil,
        context: Int, vocabularySize: Int, positionEncoding: PositionEncoding = .learned,
        ropeTheta: Float = 10_000, ropeScaling: Float = 1, norm: Norm = .layerNorm,
        normPlacement: NormPlacement = .pre, normEpsilon: Float = 1e-5, activation: Activation = .gelu,
        bias: Bool = true, tiedEmbeddings: Bool = true, dropout: Float = 0
    ) {
        self.layers = layers
        self.heads = heads
        self.kvHeads = kvHeads ?? heads
        self.width = width
        self.mlpWidth = mlpWidth ?? 4 * width
        self.context = context
        self.vocabularySize = vocabularySize
        self.positionEncoding = positionEncoding
        self.ropeTheta = ropeTheta
        self.ropeScaling = ropeScaling
        self.norm = norm
        self.normPlacement = normPlacement
        self.normEpsilon = normEpsilon
        self.activation = activation
        self.bias = bias
        self.tiedEmbeddings = tiedEmbeddings
        self.dropout = dropout
    }

    /// Width of one attention head.
    public var headDim: Int { width / heads }

    /// Throws `InvalidArgument` naming the first field that makes the configuration impossible.
    public func validate() throws {
        for (name, value) in [("layers", layers), ("heads", heads), ("kvHeads", kvHeads), ("width", width),
                              ("mlpWidth", mlpWidth), ("context", context), ("vocabularySize", vocabularySize)] {
            try InvalidArgument.require(value > 0, name, expected: "> 0", got: "\(value)")
        }
        try InvalidArgument.require(width % heads == 0, "heads", expected: "a divisor of width (\(width))", got: "\(heads)")
        try InvalidArgument.require(heads % kvHeads == 0, "kvHeads", expected: "a divisor of heads (\(heads))", got: "\(kvHeads)")
        if positionEncoding == .rotary {
            try InvalidArgument.require(headDim % 2 == 0, "width/heads", expected: "an even head dimension for rotary", got: "\(headDim)")
            try InvalidArgument.require(ropeTheta > 0, "ropeTheta", expected: "> 0", got: "\(ropeTheta)")
            try InvalidArgument.require(ropeScaling >= 1, "ropeScaling", expected: "≥ 1", got: "\(ropeScaling)")
        }
        try InvalidArgument.require(normEpsilon > 0, "normEpsilon", expected: "> 0", got: "\(normEpsilon)")
        try InvalidArgument.require(dropout >= 0 && dropout < 1, "dropout", expected: "in [0, 1)", got: "\(dropout)")
    }
}
