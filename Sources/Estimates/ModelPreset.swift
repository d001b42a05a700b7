import Transformer

/// Published model configurations whose parameter counts the estimates reproduce.
public struct ModelPreset: Sendable {
    /// Short name, as `--preset` takes it (e.g. `gpt2-small`).
    public var name: String
    /// The architecture.
    public var config: TransformerConfig
    /// The parameter count the model's authors (or its reference checkpoint) give, and where.
    public var publishedParameters: Int
    /// Where `publishedParameters` comes from.
    public var source: String

    /// GPT-2 family: learned positions, LayerNorm with bias, pre-norm, GELU, tied head,
    /// context 1024, vocabulary 50257 (Radford et al. 2019; counts of the Hugging Face checkpoints).
    static func gpt2(_ name: String, checkpoint: String, layers: Int, heads: Int, width: Int, published: Int) -> ModelPreset {
        ModelPreset(
            name: name,
            config: TransformerConfig(layers: layers, heads: heads, width: width, context: 1024, vocabularySize: 50257),
            publishedParameters: published, source: "Hugging Face \(checkpoint) checkpoint (num_parameters)")
    }

    /// LLaMA family: rotary, RMSNorm, pre-norm, SwiGLU, no biases, untied head, vocabulary 32000.
    static func llama(
        _ name: String, layers: Int, heads: Int, kvHeads: Int? = nil, width: Int, mlpWidth: Int, context: Int,
        published: Int, source: String
    ) -> ModelPreset {
        ModelPreset(
            name: name,
            config: TransformerConfig(
                layers: layers, heads: heads, kvHeads: kvHeads, width: width, mlpWidth: mlpWidth, context: context,
                vocabularySize: 32000, positionEncoding: .rotary, norm: .rmsNorm, normEpsilon: 1e-5,
                activation: .swiglu, bias: false, tiedEmbeddings: false),
            publishedParameters: published, source: source)
    }

    /// Every preset: the GPT-2 family and LLaMA-family models.
    public static let all: [ModelPreset] = [
        gpt2("gpt2-small", checkpoint: "gpt2", layers: 12, heads: 12, width: 768, published: 124_439_808),
        gpt2("gpt2-medium", checkpoint: "gpt2-medium", layers: 24, heads: 16, width: 1024, published: 354_823_168),
        gpt2("gpt2-large", checkpoint: "gpt2-large", layers: 36, heads: 20, width: 1280, published: 774_030_080),
        gpt2("gpt2-xl", checkpoint: "gpt2-xl", layers: 48, heads: 25, width: 1600, published: 1_557_611_200),
        // GPT-3 (Brown et al. 2020, Table 2.1): GPT-2's architecture at 96 layers, width 12288,
        // 96 heads, context 2048. The paper rounds to "175.0B"; the exact GPT-2-style count is
        // 174,604,259,328 (its alternating sparse attention has no parameters).
        ModelPreset(
            name: "gpt3-175b",
            config: TransformerConfig(layers: 96, heads: 96, width: 12288, context: 2048, vocabularySize: 50257),
            publishedParameters: 175_000_000_000, source: "Brown et al. 2020, Table 2.1 (rounded to 175.0B)"),
        llama("llama-7b", layers: 32, heads: 32, width: 4096, mlpWidth: 11008, context: 2048,
              published: 6_738_415_616, source: "Hugging Face LLaMA-7B checkpoint (num_parameters)"),
        llama("llama-13b", layers: 40, heads: 40, width: 5120, mlpWidth: 13824, context: 2048,
              published: 13_015_864_320, source: "Hugging Face LLaMA-13B checkpoint (num_parameters)"),
        llama("llama2-70b", layers: 80, heads: 64, kvHeads: 8, width: 8192, mlpWidth: 28672, context: 4096,
              published: 68_976_648_192, source: "Hugging Face Llama-2-70b checkpoint (num_parameters), GQA with 8 KV heads"),
        llama("mistral-7b", layers: 32, heads: 32, kvHeads: 8, width: 4096, mlpWidth: 14336, context: 8192,
              published: 7_241_732_096, source: "Hugging Face Mistral-7B-v0.1 checkpoint (num_parameters), GQA with 8 KV heads"),
    ]

    /// The preset with this name, or nil.
    public static func named(_ name: String) -> ModelPreset? {
        all.first { $0.name == name.lowercased() }
    }

    /// Whether the published figure is a rounded headline rather than an exact count.
    public var publishedIsRounded: Bool { publishedParameters % 1_000_000_000 == 0 }
}
