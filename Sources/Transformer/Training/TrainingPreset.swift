/// The model sizes `flash train --preset` offers (and `flash bench train` and
/// `flash estimate --preset` reuse): GPT-2-style shapes small enough to train on a CPU.
public enum TrainingPreset: String, CaseIterable, Codable, Sendable {
    /// The preset sizes, smallest first.
    case tiny, small, nanogpt

    /// (layers, heads, width, context, batch)
    public var shape: (layers: Int, heads: Int, width: Int, context: Int, batch: Int) {
        switch self {
        case .tiny: return (2, 4, 64, 64, 8)
        case .small: return (4, 4, 128, 128, 8)
        case .nanogpt: return (6, 6, 384, 256, 8)
        }
    }

    /// The configuration `flash train --preset` builds when no architecture flag is given:
    /// learned positions, pre-LayerNorm, GELU, biases, tied embeddings, no dropout.
    public func config(vocabularySize: Int) -> TransformerConfig {
        TransformerConfig(layers: shape.layers, heads: shape.heads, width: shape.width, context: shape.context,
                          vocabularySize: vocabularySize)
    }
}
