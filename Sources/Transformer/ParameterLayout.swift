import FlashCore

/// Where every parameter tensor lives in the model's one contiguous buffer.
///
/// Order and shapes (the estimates module counts parameters with exactly these):
/// - `token_embedding` [V, C]
/// - `position_embedding` [context, C], only with learned positions
/// - per layer `layers.{l}.`: `norm1.weight` [C] (+ `norm1.bias` [C] for LayerNorm with biases),
///   `attention.qkv.weight` [C, (H + 2·Hkv)·D] (+ `.bias`), `attention.proj.weight` [C, C] (+ `.bias`),
///   `norm2.*`, then the MLP: `mlp.up.weight` [C, F] (+bias [F]), `mlp.down.weight` [F, C] (+bias [C])
///   for ReLU/GELU; `mlp.gate.weight` [C, F], `mlp.up.weight` [C, F], `mlp.down.weight` [F, C]
///   (+ biases) for SwiGLU
/// - `final_norm.weight` [C] (+ `.bias`), only with pre-norm placement
/// - `head.weight` [C, V], unless the embeddings are tied (no bias)
///
/// Linear weights are stored [in, out] (y = x·W). The fused QKV output columns are the query
/// heads, then the key heads, then the value heads, each head D wide.
public struct ParameterLayout: Sendable {
    /// What a tensor is, which decides weight decay (only matrices, and embeddings on request).
    public enum Kind: String, Sendable {
        /// Token/position embeddings, linear weights, norm weights, and biases (norm shifts included).
        case embedding, matrix, norm, bias
    }

    /// One named tensor in the flat buffer.
    public struct Entry: Sendable {
        /// The tensor's name, e.g. `layers.0.attention.qkv.weight`.
        public let name: String
        /// Its shape ([in, out] for linear weights).
        public let shape: [Int]
        /// Index of its first value in the parameter buffer.
        public let offset: Int
        /// Embedding, matrix, norm or bias.
        public let kind: Kind
        /// Number of values.
        public var count: Int { shape.reduce(1, *) }
    }

    /// Offsets of one layer's tensors (nil when absent).
    public struct LayerOffsets: Sendable {
        /// The first norm's weight and bias.
        public var norm1Weight = 0, norm1Bias: Int? = nil
        /// The fused Q, K, V projection.
        public var qkvWeight = 0, qkvBias: Int? = nil
        /// The attention output projection.
        public var projWeight = 0, projBias: Int? = nil
        /// The second norm's weight and bias.
        public var norm2Weight = 0, norm2Bias: Int? = nil
        /// SwiGLU's gate projection (nil for ReLU/GELU).
        public var gateWeight: Int? = nil, gateBias: Int? = nil
        /// The MLP's up projection.
        public var upWeight = 0, upBias: Int? = nil
        /// The MLP's down projection.
        public var downWeight = 0, downBias: Int? = nil
    }

    /// Every tensor, in buffer order.
    public private(set) var entries: [Entry] = []
    /// Total parameters: the buffer's length in floats.
    public private(set) var count = 0
    /// Offset of the token embedding [V, C].
    public private(set) var tokenEmbedding = 0
    /// Offset of the learned position embedding [context, C]; nil with other position encodings.
    public private(set) var positionEmbedding: Int?
    /// Offsets of each layer's tensors.
    public private(set) var layers: [LayerOffsets] = []
    /// Offset of the final norm's weight; nil with post-norm placement.
    public private(set) var finalNormWeight: Int?
    /// Offset of the final norm's bias; nil without biases or a final norm.
    public private(set) var finalNormBias: Int?
    /// The output head [C, V]; nil when tied (the head is then token_embedding transposed).
    public private(set) var head: Int?

    /// The layout of a model shaped like `config`.
    public init(_ config: TransformerConfig) {
        let c = config.width, f = config.mlpWidth, v = config.vocabularySize
        let qkvWidth = (config.heads + 2 * config.kvHeads) * config.headDim
        let normBias = config.norm == .layerNorm && config.bias
        tokenEmbedding = add("token_embedding", [v, c], .embedding)
        if config.positionEncoding == .learned { positionEmbedding = add("position_embedding", [config.context, c], .embedding) }
        for l in 0..<config.layers {
            let p = "layers.\(l)."
            var o = LayerOffsets()
            o.norm1Weight = add(p + "norm1.weight", [c], .norm)
            if normBias { o.norm1Bias = add(p + "norm1.bias", [c], .bias) }
            o.qkvWeight = add(p + "attention.qkv.weight", [c, qkvWidth], .matrix)
            if config.bias { o.qkvBias = add(p + "attention.qkv.bias", [qkvWidth], .bias) }
            o.projWeight = add(p + "attention.proj.weight", [c, c], .matrix)
            if config.bias { o.projBias = add(p + "attention.proj.bias", [c], .bias) }
            o.norm2Weight = add(p + "norm2.weight", [c], .norm)
            if normBias { o.norm2Bias = add(p + "norm2.bias", [c], .bias) }
            if config.activation == .swiglu {
                o.gateWeight = add(p + "mlp.gate.weight", [c, f], .matrix)
                if config.bias { o.gateBias = add(p + "mlp.gate.bias", [f], .bias) }
            }
            o.upWeight = add(p + "mlp.up.weight", [c, f], .matrix)
            if config.bias { o.upBias = add(p + "mlp.up.bias", [f], .bias) }
            o.downWeight = add(p + "mlp.down.weight", [f, c], .matrix)
            if config.bias { o.downBias = add(p + "mlp.down.bias", [c], .bias) }
            layers.append(o)
        }
        if config.normPlacement == .pre {
            finalNormWeight = add("final_norm.weight", [c], .norm)
            if normBias { finalNormBias = add("final_norm.bias", [c], .bias) }
        }
        if !config.tiedEmbeddings { head = add("head.weight", [c, v], .matrix) }
    }

    private mutating func add(_ name: String, _ shape: [Int], _ kind: Kind) -> Int {
        let offset = count
        entries.append(Entry(name: name, shape: shape, offset: offset, kind: kind))
        count += shape.reduce(1, *)
        return offset
    }
}
