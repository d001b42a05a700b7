import FlashCore
import Transformer

/// The exact parameter count of a `TransformerConfig`, per component, following the tensor
/// layout of the project's model (docs/estimates.md, "Parameter conventions"):
///
/// - token embedding [V, C]; learned position embedding [context, C] only with `.learned`;
/// - per layer: fused QKV weight [C, (H + 2·Hkv)·D] (+ bias), output projection [C, C] (+ bias);
///   MLP up [C, F] and down [F, C] (+ biases), SwiGLU adds a gate [C, F] (+ bias);
///   two norms (LayerNorm: weight, and a shift when `bias`; RMSNorm: weight only);
/// - a final norm with pre-norm placement; an output head [C, V] unless tied (no bias).
public struct ParameterCount: Codable, Equatable, Sendable {
    /// The token embedding [V, C].
    public var tokenEmbedding: Int
    /// Learned position embeddings [context, C] (0 with rotary or no positions).
    public var positionEmbedding: Int
    /// Per layer, summed over layers: weights of Q, K and V (the K/V share shrinks with GQA).
    public var attentionQuery: Int
    /// K projection weights, summed over layers.
    public var attentionKey: Int
    /// V projection weights, summed over layers.
    public var attentionValue: Int
    /// Attention output projection weights, summed over layers.
    public var attentionOutput: Int
    /// MLP weight matrices (two, or three for SwiGLU), summed over layers.
    public var mlp: Int
    /// Biases of every linear layer (attention and MLP), summed over layers.
    public var linearBiases: Int
    /// The two norms of every layer.
    public var layerNorms: Int
    /// The norm after the last layer (pre-norm placement only).
    public var finalNorm: Int
    /// The output head when it is not tied to the token embedding (0 when tied).
    public var outputHead: Int

    /// Counts `config`'s parameters term by term; throws `InvalidArgument` if the configuration is
    /// invalid.
    public init(_ config: TransformerConfig) throws {
        try config.validate()
        // Guard the integer arithmetic below: a rough count in floating point first.
        let rough = Double(config.layers) * Double(config.width) * (4 * Double(config.width) + 3 * Double(config.mlpWidth))
            + 2 * Double(config.vocabularySize + config.context) * Double(config.width)
        try InvalidArgument.require(rough < 1e18, "width", expected: "a configuration with fewer than 10^18 parameters",
                                    got: "about \(rough) parameters")
        let c = config.width, l = config.layers, d = config.headDim
        let f = config.mlpWidth, v = config.vocabularySize
        let kvWidth = config.kvHeads * d
        tokenEmbedding = v * c
        positionEmbedding = config.positionEncoding == .learned ? config.context * c : 0
        attentionQuery = l * c * c
        attentionKey = l * c * kvWidth
        attentionValue = l * c * kvWidth
        attentionOutput = l * c * c
        let mlpMatrices = config.activation == .swiglu ? 3 : 2
        mlp = l * mlpMatrices * c * f
        if config.bias {
            // QKV bias (C + 2·Hkv·D), output bias C, MLP: F per up/gate matrix, C for down.
            let attentionBiases = c + 2 * kvWidth + c
            let mlpBiases = (mlpMatrices - 1) * f + c
            linearBiases = l * (attentionBiases + mlpBiases)
        } else {
            linearBiases = 0
        }
        let normSize = config.norm == .layerNorm && config.bias ? 2 * c : c
        layerNorms = l * 2 * normSize
        finalNorm = config.normPlacement == .pre ? normSize : 0
        outputHead = config.tiedEmbeddings ? 0 : c * v
    }

    /// Token and position embeddings plus an untied output head (Kaplan et al. 2020 exclude all
    /// three from "non-embedding" parameters).
    public var embedding: Int { tokenEmbedding + positionEmbedding + outputHead }
    /// All parameters except `embedding`.
    public var nonEmbedding: Int { total - embedding }
    /// All parameters.
    public var total: Int {
        tokenEmbedding + positionEmbedding + attentionQuery + attentionKey + attentionValue + attentionOutput
            + mlp + linearBiases + layerNorms + finalNorm + outputHead
    }
    /// Weights that take part in a matrix product per token: every layer's matrices and the
    /// output head (the tied embedding when tied). Embedding lookups, norms and biases are not.
    public var matmulWeights: Int {
        attentionQuery + attentionKey + attentionValue + attentionOutput + mlp
            + (outputHead > 0 ? outputHead : tokenEmbedding)
    }

    /// Components in a fixed order, named as the tables and JSON print them.
    public var components: [(name: String, count: Int)] {
        [("token_embedding", tokenEmbedding), ("position_embedding", positionEmbedding),
         ("attention_query", attentionQuery), ("attention_key", attentionKey), ("attention_value", attentionValue),
         ("attention_output", attentionOutput), ("mlp", mlp), ("linear_biases", linearBiases),
         ("layer_norms", layerNorms), ("final_norm", finalNorm), ("output_head", outputHead)]
    }
}
