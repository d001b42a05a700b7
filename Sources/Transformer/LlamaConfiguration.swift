import ModelFormats

/// A LLaMA-family decoder's shape, as its GGUF metadata describes it (keys prefixed by
/// `general.architecture`, e.g. `llama.block_count`).
public struct LlamaConfiguration: Sendable, Equatable, Codable {
    /// Tokens in the vocabulary.
    public var vocabularySize: Int
    /// Model width (`embedding_length`).
    public var hiddenSize: Int
    /// Hidden width of the SwiGLU feed-forward (`feed_forward_length`).
    public var intermediateSize: Int
    /// Decoder blocks (`block_count`).
    public var layers: Int
    /// Query heads (`attention.head_count`).
    public var heads: Int
    /// Key/value heads (`attention.head_count_kv`; fewer than `heads` for grouped-query attention).
    public var keyValueHeads: Int
    /// Width of one head.
    public var headDimension: Int
    /// Dimensions per head that rotary embedding rotates (the rest pass through).
    public var ropeDimensions: Int
    /// Rotary base θ (`rope.freq_base`).
    public var ropeBase: Double
    /// ε of every RMSNorm (`attention.layer_norm_rms_epsilon`).
    public var rmsEpsilon: Float
    /// Longest context the model was trained for (`context_length`).
    public var contextLength: Int

    /// Reads the configuration from `file`, checking that the shapes agree with each other.
    public init(file: GGUFFile) throws {
        let arch = try file.string("general.architecture")
        func key(_ name: String) -> String { "\(arch).\(name)" }
        hiddenSize = try file.integer(key("embedding_length"))
        intermediateSize = try file.integer(key("feed_forward_length"))
        layers = try file.integer(key("block_count"))
        heads = try file.integer(key("attention.head_count"))
        keyValueHeads = (try? file.integer(key("attention.head_count_kv"))) ?? heads
        ropeBase = (try? file.number(key("rope.freq_base"))) ?? 10000
        rmsEpsilon = Float((try? file.number(key("attention.layer_norm_rms_epsilon"))) ?? 1e-5)
        contextLength = (try? file.integer(key("context_length"))) ?? 2048
        let embedding = try file.tensor("token_embd.weight")
        vocabularySize = embedding.rowCount
        guard heads > 0, keyValueHeads > 0, heads % keyValueHeads == 0, hiddenSize > 0, hiddenSize % heads == 0 else {
            throw GGUFError.wrongMetadataType(key: key("attention.head_count"),
                                              expected: "heads > 0 dividing \(hiddenSize), a multiple of head_count_kv (\(keyValueHeads))")
        }
        headDimension = hiddenSize / heads
        ropeDimensions = (try? file.integer(key("rope.dimension_count"))) ?? headDimension
        guard ropeDimensions > 0, ropeDimensions <= headDimension, ropeDimensions % 2 == 0 else {
            throw GGUFError.wrongMetadataType(key: key("rope.dimension_count"), expected: "an even number ≤ \(headDimension)")
        }
        guard layers > 0, layers <= 1024, intermediateSize > 0, contextLength > 0, embedding.rowLength == hiddenSize else {
            throw GGUFError.wrongMetadataType(key: key("block_count"), expected: "a consistent model shape")
        }
    }
}
