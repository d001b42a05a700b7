import ArgumentParser
import Estimates
import FlashCore
import ModelFormats
import Transformer

/// The model flags `flash estimate` and `flash plan` share: a preset (published or `flash train`'s)
/// with any field overridden, or a model given in full.
struct ModelOptions: ParsableArguments {
    @Option(help: "A published model (\(ModelPreset.all.map(\.name).joined(separator: ", "))) or a flash train preset (\(Self.trainingPresetNames)).")
    var preset: String?

    @Option(help: "Transformer layers.") var layers: Int?
    @Option(help: "Attention (query) heads.") var heads: Int?
    @Option(help: "Key/value heads (grouped-query attention); default: --heads.") var kvHeads: Int?
    @Option(help: "Model width d_model.") var width: Int?
    @Option(help: "MLP hidden width; default 4·width.") var mlpWidth: Int?
    @Option(help: "Context length (size of a learned position table).") var context: Int?
    @Option(help: "Vocabulary size.") var vocab: Int?
    @Option(help: "Position encoding: learned, rotary, alibi, none.") var position: String?
    @Option(help: "Norm: layerNorm, rmsNorm.") var norm: String?
    @Option(help: "Norm placement: pre, post.") var normPlacement: String?
    @Option(help: "MLP activation: relu, gelu, swiglu.") var activation: String?
    @Flag(inversion: .prefixedNo, help: "Biases on linear layers and LayerNorm.") var bias: Bool?
    @Flag(inversion: .prefixedNo, help: "Output head tied to the token embedding.") var tied: Bool?
    @Option(help: "Dropout probability (adds dropout masks to the activations).") var dropout: Float?

    static var trainingPresetNames: String { TrainingPreset.allCases.map(\.rawValue).joined(separator: ", ") }

    /// The `flash train` preset named by --preset, if it names one.
    var trainingPreset: TrainingPreset? { preset.flatMap { TrainingPreset(rawValue: $0.lowercased()) } }

    /// The published preset named by --preset (nil for none or a training preset).
    func selectedPreset() throws -> ModelPreset? {
        guard let preset, trainingPreset == nil else { return nil }
        guard let found = ModelPreset.named(preset) else {
            throw InvalidArgument("--preset", expected: "one of " + (ModelPreset.all.map(\.name) + TrainingPreset.allCases.map(\.rawValue))
                                    .joined(separator: ", "), got: preset)
        }
        return found
    }

    /// The vocabulary `flash train` gets without --data: one token per distinct character of
    /// the built-in corpus, plus the unknown token.
    static func builtinCorpusVocabulary() throws -> Int {
        CharTokenizer(corpus: try BuiltinCorpus.text()).vocabularySize
    }

    /// The model the flags describe.
    func config() throws -> TransformerConfig {
        var config: TransformerConfig
        let base: TransformerConfig?
        if let trainingPreset {
            base = trainingPreset.config(vocabularySize: try vocab ?? Self.builtinCorpusVocabulary())
        } else {
            base = try selectedPreset()?.config
        }
        if let base {
            config = base
            // A preset's derived fields follow an override when they were at their defaults
            // (multi-head attention, a 4·width MLP); otherwise they keep the preset's value.
            if let heads {
                if config.kvHeads == config.heads { config.kvHeads = heads }
                config.heads = heads
            }
            if let width {
                if config.mlpWidth == 4 * config.width { config.mlpWidth = 4 * width }
                config.width = width
            }
            if let layers { config.layers = layers }
            if let kvHeads { config.kvHeads = kvHeads }
            if let mlpWidth { config.mlpWidth = mlpWidth }
            if let context { config.context = context }
            if let vocab { config.vocabularySize = vocab }
        } else {
            func required(_ value: Int?, _ flag: String) throws -> Int {
                guard let value else { throw InvalidArgument(flag, expected: "a value (or --preset)", got: "nothing") }
                return value
            }
            config = TransformerConfig(
                layers: try required(layers, "--layers"), heads: try required(heads, "--heads"), kvHeads: kvHeads,
                width: try required(width, "--width"), mlpWidth: mlpWidth, context: try required(context, "--context"),
                vocabularySize: try required(vocab, "--vocab"))
        }
        if let position { config.positionEncoding = try EstimateFormat.choice(position, "--position", as: TransformerConfig.PositionEncoding.self) }
        if let norm { config.norm = try EstimateFormat.choice(norm, "--norm", as: TransformerConfig.Norm.self) }
        if let normPlacement { config.normPlacement = try EstimateFormat.choice(normPlacement, "--norm-placement", as: TransformerConfig.NormPlacement.self) }
        if let activation { config.activation = try EstimateFormat.choice(activation, "--activation", as: TransformerConfig.Activation.self) }
        if let bias { config.bias = bias }
        if let tied { config.tiedEmbeddings = tied }
        if let dropout { config.dropout = dropout }
        return config
    }
}
