import Foundation

/// Errors loading a BERT model directory. Each names the file or tensor and what was wrong.
public enum BertModelError: Error, CustomStringConvertible, Equatable {
    /// A file the model directory needs is not there.
    case missingFile(String)
    /// `config.json` is unreadable or describes an impossible model.
    case invalidConfig(path: String, reason: String)
    /// The weights lack a tensor the configuration needs.
    case missingTensor(String)
    /// A tensor's shape disagrees with the configuration.
    case wrongShape(tensor: String, expected: [Int], got: [Int])
    /// A tensor holds NaN or infinite values.
    case nonFiniteWeight(tensor: String)

    /// `bert: ` and what is wrong, naming the file or tensor.
    public var description: String {
        switch self {
        case .missingFile(let path): "bert: missing file \(path)"
        case .invalidConfig(let path, let reason): "bert: \(path): \(reason)"
        case .missingTensor(let name): "bert: the weights have no tensor '\(name)'"
        case .wrongShape(let name, let expected, let got): "bert: tensor '\(name)' has shape \(got), expected \(expected)"
        case .nonFiniteWeight(let name): "bert: tensor '\(name)' holds NaN or infinite values"
        }
    }
}

/// The activation between a BERT block's two feed-forward layers (`hidden_act`).
public enum BertActivation: String, Sendable, CaseIterable {
    /// Exact GELU, 0.5·x·(1 + erf(x/√2)): `"gelu"` (BERT, MiniLM).
    case gelu
    /// Tanh-approximated GELU: `"gelu_new"` / `"gelu_pytorch_tanh"`.
    case geluTanh
    /// max(0, x).
    case relu

    init?(huggingFaceName: String) {
        switch huggingFaceName {
        case "gelu": self = .gelu
        case "gelu_new", "gelu_pytorch_tanh": self = .geluTanh
        case "relu": self = .relu
        default: return nil
        }
    }
}

/// A BERT encoder's hyper-parameters, read from a Hugging Face `config.json`.
public struct BertConfiguration: Sendable, Equatable {
    /// WordPiece vocabulary size (`vocab_size`).
    public var vocabularySize: Int
    /// Width of the token states (`hidden_size`).
    public var hiddenSize: Int
    /// Encoder blocks (`num_hidden_layers`).
    public var layerCount: Int
    /// Attention heads per block (`num_attention_heads`).
    public var headCount: Int
    /// Hidden width of the feed-forward layers (`intermediate_size`).
    public var intermediateSize: Int
    /// Learned absolute positions: the longest input the model accepts.
    public var maxPositions: Int
    /// Segment (token type) embeddings (`type_vocab_size`).
    public var tokenTypeCount: Int
    /// ε of every LayerNorm (`layer_norm_eps`).
    public var layerNormEpsilon: Float
    /// The feed-forward activation (`hidden_act`).
    public var activation: BertActivation

    /// Width of one head: `hiddenSize / headCount`.
    public var headDimension: Int { hiddenSize / headCount }

    /// A configuration from explicit values, checked as `config.json` is (throws
    /// `BertModelError.invalidConfig` naming the first inconsistent value).
    public init(vocabularySize: Int, hiddenSize: Int, layerCount: Int, headCount: Int, intermediateSize: Int,
                maxPositions: Int, tokenTypeCount: Int = 2, layerNormEpsilon: Float = 1e-12,
                activation: BertActivation = .gelu) throws {
        self.vocabularySize = vocabularySize
        self.hiddenSize = hiddenSize
        self.layerCount = layerCount
        self.headCount = headCount
        self.intermediateSize = intermediateSize
        self.maxPositions = maxPositions
        self.tokenTypeCount = tokenTypeCount
        self.layerNormEpsilon = layerNormEpsilon
        self.activation = activation
        try validate(path: "configuration")
    }

    /// The fields of `config.json` this encoder reads (others are ignored).
    struct HuggingFaceConfig: Decodable {
        var model_type: String?
        var vocab_size: Int
        var hidden_size: Int
        var num_hidden_layers: Int
        var num_attention_heads: Int
        var intermediate_size: Int
        var max_position_embeddings: Int
        var type_vocab_size: Int?
        var layer_norm_eps: Double?
        var hidden_act: String?
        var position_embedding_type: String?
    }

    /// Reads and checks a Hugging Face BERT `config.json`.
    public init(contentsOf path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else { throw BertModelError.missingFile(path) }
        let config: HuggingFaceConfig
        do { config = try JSONDecoder().decode(HuggingFaceConfig.self, from: data) } catch {
            throw BertModelError.invalidConfig(path: path, reason: "not a BERT config.json (\(Self.describe(error)))")
        }
        if let type = config.model_type, type != "bert" {
            throw BertModelError.invalidConfig(path: path, reason: "model_type is \"\(type)\"; only \"bert\" is supported")
        }
        if let positions = config.position_embedding_type, positions != "absolute" {
            throw BertModelError.invalidConfig(path: path, reason: "position_embedding_type is \"\(positions)\"; only \"absolute\" is supported")
        }
        let activationName = config.hidden_act ?? "gelu"
        guard let activation = BertActivation(huggingFaceName: activationName) else {
            throw BertModelError.invalidConfig(path: path, reason: "hidden_act \"\(activationName)\" is not one of gelu, gelu_new, gelu_pytorch_tanh, relu")
        }
        vocabularySize = config.vocab_size
        hiddenSize = config.hidden_size
        layerCount = config.num_hidden_layers
        headCount = config.num_attention_heads
        intermediateSize = config.intermediate_size
        maxPositions = config.max_position_embeddings
        tokenTypeCount = config.type_vocab_size ?? 2
        layerNormEpsilon = Float(config.layer_norm_eps ?? 1e-12)
        self.activation = activation
        try validate(path: path)
    }

    func validate(path: String) throws {
        let positive: [(String, Int)] = [("vocab_size", vocabularySize), ("hidden_size", hiddenSize),
                                         ("num_hidden_layers", layerCount), ("num_attention_heads", headCount),
                                         ("intermediate_size", intermediateSize), ("max_position_embeddings", maxPositions),
                                         ("type_vocab_size", tokenTypeCount)]
        for (name, value) in positive where value < 1 || value > 1 << 24 {
            throw BertModelError.invalidConfig(path: path, reason: "\(name) is \(value); expected 1...\(1 << 24)")
        }
        if hiddenSize % headCount != 0 {
            throw BertModelError.invalidConfig(path: path, reason: "hidden_size \(hiddenSize) is not a multiple of num_attention_heads \(headCount)")
        }
        if !(layerNormEpsilon > 0) || !layerNormEpsilon.isFinite {
            throw BertModelError.invalidConfig(path: path, reason: "layer_norm_eps is \(layerNormEpsilon); expected a positive number")
        }
    }

    static func describe(_ error: Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, _): "missing \(key.stringValue)"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            "\(context.codingPath.map(\.stringValue).joined(separator: ".")): \(context.debugDescription)"
        case DecodingError.dataCorrupted(let context): context.debugDescription
        default: "\(error)"
        }
    }
}
