import Foundation
import FlashCore
import ModelFormats

/// How token states become one sentence vector (sentence-transformers' `Pooling` module).
/// Several modes concatenate their vectors in sentence-transformers' order: cls, max, mean,
/// mean·√length.
public struct BertPooling: Sendable, Equatable {
    /// Use the [CLS] token's state (`pooling_mode_cls_token`).
    public var classToken: Bool
    /// Element-wise maximum over the real tokens (`pooling_mode_max_tokens`).
    public var max: Bool
    /// Mean over the real tokens (`pooling_mode_mean_tokens`).
    public var mean: Bool
    /// Sum over the real tokens divided by √length (`pooling_mode_mean_sqrt_len_tokens`).
    public var meanSqrtLength: Bool

    /// The given modes; mean pooling alone by default.
    public init(classToken: Bool = false, max: Bool = false, mean: Bool = true, meanSqrtLength: Bool = false) {
        self.classToken = classToken
        self.max = max
        self.mean = mean
        self.meanSqrtLength = meanSqrtLength
    }

    var modeCount: Int { [classToken, max, mean, meanSqrtLength].filter { $0 }.count }

    struct Config: Decodable {
        var pooling_mode_cls_token: Bool?
        var pooling_mode_max_tokens: Bool?
        var pooling_mode_mean_tokens: Bool?
        var pooling_mode_mean_sqrt_len_tokens: Bool?
        var pooling_mode_weightedmean_tokens: Bool?
        var pooling_mode_lasttoken: Bool?
    }

    /// Reads `1_Pooling/config.json`.
    init(contentsOf path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else { throw BertModelError.missingFile(path) }
        let config: Config
        do { config = try JSONDecoder().decode(Config.self, from: data) } catch {
            throw BertModelError.invalidConfig(path: path, reason: "not a pooling config (\(BertConfiguration.describe(error)))")
        }
        if config.pooling_mode_weightedmean_tokens == true || config.pooling_mode_lasttoken == true {
            throw BertModelError.invalidConfig(path: path, reason: "weighted-mean and last-token pooling are not supported")
        }
        self.init(classToken: config.pooling_mode_cls_token ?? false, max: config.pooling_mode_max_tokens ?? false,
                  mean: config.pooling_mode_mean_tokens ?? false, meanSqrtLength: config.pooling_mode_mean_sqrt_len_tokens ?? false)
        if modeCount == 0 { throw BertModelError.invalidConfig(path: path, reason: "no pooling mode is enabled") }
    }

    /// Pools the first `length` rows of `states` (each `width` long) into `output`
    /// (`modeCount`·`width` values).
    func pool(_ states: UnsafePointer<Float>, length: Int, width: Int, into output: UnsafeMutablePointer<Float>) {
        var out = output
        if classToken {
            out.update(from: states, count: width)
            out += width
        }
        if max {
            out.update(from: states, count: width)
            for t in 1..<Swift.max(length, 1) {
                for j in 0..<width { out[j] = Swift.max(out[j], states[t * width + j]) }
            }
            out += width
        }
        if mean || meanSqrtLength {
            var sum = [Float](repeating: 0, count: width)
            for t in 0..<length { VectorMath.add(states + t * width, to: &sum, count: width) }
            if mean {
                for j in 0..<width { out[j] = sum[j] / Float(length) }
                out += width
            }
            if meanSqrtLength {
                for j in 0..<width { out[j] = sum[j] / Float(length).squareRoot() }
            }
        }
    }
}

/// A sentence-transformers model built on BERT: WordPiece tokenizer, encoder, pooling over the
/// real (unpadded) tokens and, when the model has a `Normalize` module, L2 normalisation.
public final class BertSentenceEncoder: Sendable {
    /// The model's WordPiece tokenizer.
    public let tokenizer: WordPieceTokenizer
    /// The BERT encoder.
    public let model: BertModel
    /// How token states become one vector.
    public let pooling: BertPooling
    /// Whether embeddings are scaled to unit length (x / max(‖x‖, 10⁻¹²), as PyTorch's normalize).
    public let normalizes: Bool
    /// Longest token sequence, [CLS] and [SEP] included; longer texts are truncated.
    public let maxSequenceLength: Int
    /// sentence-transformers' `do_lower_case`: lower-case the text before tokenising.
    public let lowercasesInput: Bool

    /// Length of each embedding.
    public var dimension: Int { pooling.modeCount * model.configuration.hiddenSize }

    /// An encoder from its parts; throws `InvalidArgument` when `maxSequenceLength` is below 2
    /// or above the model's position table.
    public init(tokenizer: WordPieceTokenizer, model: BertModel, pooling: BertPooling = BertPooling(),
                normalizes: Bool = true, maxSequenceLength: Int? = nil, lowercasesInput: Bool = false) throws {
        let limit = maxSequenceLength ?? model.configuration.maxPositions
        try InvalidArgument.require(limit >= 2 && limit <= model.configuration.maxPositions, "maxSequenceLength",
                                    expected: "2...\(model.configuration.maxPositions) (the model's positions)", got: "\(limit)")
        try InvalidArgument.require(tokenizer.tokens.count <= model.configuration.vocabularySize, "tokenizer",
                                    expected: "a vocabulary of at most \(model.configuration.vocabularySize) tokens (the model's)",
                                    got: "\(tokenizer.tokens.count) tokens")
        self.tokenizer = tokenizer
        self.model = model
        self.pooling = pooling
        self.normalizes = normalizes
        self.maxSequenceLength = limit
        self.lowercasesInput = lowercasesInput
    }

    struct ModuleEntry: Decodable { var path: String; var type: String }
    struct SentenceBertConfig: Decodable { var max_seq_length: Int?; var do_lower_case: Bool? }

    /// Loads a sentence-transformers directory: `config.json`, `model.safetensors`, `vocab.txt`
    /// (+ `tokenizer_config.json`), `modules.json` with its Pooling and Normalize modules, and
    /// `sentence_bert_config.json` (max_seq_length). Without `modules.json`: mean pooling, no
    /// normalisation, as sentence-transformers does for a plain BERT directory.
    public convenience init(directory: String) throws {
        func path(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }
        func decode<T: Decodable>(_ type: T.Type, _ file: String) throws -> T? {
            guard let data = FileManager.default.contents(atPath: file) else { return nil }
            do { return try JSONDecoder().decode(type, from: data) } catch {
                throw BertModelError.invalidConfig(path: file, reason: BertConfiguration.describe(error))
            }
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw BertModelError.missingFile(directory)
        }
        let model = try BertModel(directory: directory)
        let tokenizer = try WordPieceTokenizer(directory: directory)
        var pooling = BertPooling()
        var normalizes = false
        if let modules = try decode([ModuleEntry].self, path("modules.json")) {
            for module in modules {
                switch module.type {
                case "sentence_transformers.models.Pooling":
                    pooling = try BertPooling(contentsOf: (path(module.path) as NSString).appendingPathComponent("config.json"))
                case "sentence_transformers.models.Normalize": normalizes = true
                case "sentence_transformers.models.Transformer": break
                default:
                    throw BertModelError.invalidConfig(path: path("modules.json"), reason: "module \(module.type) is not supported")
                }
            }
        }
        let sentenceConfig = try decode(SentenceBertConfig.self, path("sentence_bert_config.json"))
        try self.init(tokenizer: tokenizer, model: model, pooling: pooling, normalizes: normalizes,
                      maxSequenceLength: sentenceConfig?.max_seq_length.map { min($0, model.configuration.maxPositions) },
                      lowercasesInput: sentenceConfig?.do_lower_case ?? false)
    }

    /// Token ids as the encoder sees them: [CLS] … [SEP], truncated to `maxSequenceLength`.
    public func tokenize(_ text: String) throws -> [Int] {
        try tokenizer.encode(lowercasesInput ? text.lowercased() : text, maxLength: maxSequenceLength)
    }

    /// One embedding per text, in order. Texts are sorted by length and run `batchSize` at a
    /// time, so each batch pads little.
    public func embed(_ texts: [String], batchSize: Int = 32, threads: Int? = nil) throws -> [[Float]] {
        try embed(tokenIDs: texts.map { try tokenize($0) }, batchSize: batchSize, threads: threads)
    }

    /// Embeddings of already-tokenised sequences (each with its [CLS]/[SEP]).
    public func embed(tokenIDs: [[Int]], batchSize: Int = 32, threads: Int? = nil) throws -> [[Float]] {
        try InvalidArgument.require(batchSize >= 1, "batchSize", expected: "≥ 1", got: "\(batchSize)")
        let order = tokenIDs.indices.sorted { tokenIDs[$0].count > tokenIDs[$1].count }
        var result = [[Float]](repeating: [], count: tokenIDs.count)
        let width = model.configuration.hiddenSize
        for start in stride(from: 0, to: order.count, by: batchSize) {
            let members = Array(order[start..<min(order.count, start + batchSize)])
            let batch = members.map { tokenIDs[$0] }
            try model.withHiddenStates(tokenIDs: batch, threads: threads) { states in
                var row = 0
                for (b, index) in members.enumerated() {
                    var vector = [Float](repeating: 0, count: dimension)
                    vector.withUnsafeMutableBufferPointer { out in
                        // Only the sequence's own rows: padding never enters the pooling.
                        pooling.pool(states.floatPointer + row * width, length: batch[b].count, width: width, into: out.baseAddress!)
                        if normalizes {
                            let norm = VectorMath.dot(out.baseAddress!, out.baseAddress!, count: out.count).squareRoot()
                            VectorMath.scale(out.baseAddress!, count: out.count, by: 1 / Swift.max(norm, 1e-12))
                        }
                    }
                    result[index] = vector
                    row += batch[b].count
                }
            }
        }
        return result
    }
}
