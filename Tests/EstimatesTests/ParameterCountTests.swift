import Estimates
import FlashCore
import Transformer
import XCTest

/// Parameter counts against published figures and against an independent count that lists every
/// weight tensor by name and shape, as nanoGPT (GPT-2) and Meta's LLaMA code define them.
/// (Cross-check against the project's own model: to be added once Transformer's model lands.)
final class ParameterCountTests: XCTestCase {
    /// Every tensor of the model, nanoGPT/LLaMA naming; the count is the sum of shape products.
    static func tensorShapes(_ c: TransformerConfig) -> [(name: String, shape: [Int])] {
        let d = c.width / c.heads
        var tensors: [(String, [Int])] = [("wte", [c.vocabularySize, c.width])]
        if c.positionEncoding == .learned { tensors.append(("wpe", [c.context, c.width])) }
        func norm(_ name: String) -> [(String, [Int])] {
            var out = [("\(name).weight", [c.width])]
            if c.norm == .layerNorm && c.bias { out.append(("\(name).bias", [c.width])) }
            return out
        }
        func linear(_ name: String, _ input: Int, _ output: Int) -> [(String, [Int])] {
            var out = [("\(name).weight", [output, input])]
            if c.bias { out.append(("\(name).bias", [output])) }
            return out
        }
        for layer in 0..<c.layers {
            let p = "h.\(layer)"
            tensors += norm("\(p).ln_1")
            tensors += linear("\(p).attn.c_attn", c.width, c.heads * d + 2 * c.kvHeads * d)
            tensors += linear("\(p).attn.c_proj", c.width, c.width)
            tensors += norm("\(p).ln_2")
            if c.activation == .swiglu {
                tensors += linear("\(p).mlp.w1", c.width, c.mlpWidth)
                tensors += linear("\(p).mlp.w3", c.width, c.mlpWidth)
                tensors += linear("\(p).mlp.w2", c.mlpWidth, c.width)
            } else {
                tensors += linear("\(p).mlp.c_fc", c.width, c.mlpWidth)
                tensors += linear("\(p).mlp.c_proj", c.mlpWidth, c.width)
            }
        }
        if c.normPlacement == .pre { tensors += norm("ln_f") }
        if !c.tiedEmbeddings { tensors.append(("lm_head.weight", [c.vocabularySize, c.width])) }
        return tensors
    }

    static func referenceCount(_ c: TransformerConfig) -> Int {
        tensorShapes(c).reduce(0) { $0 + $1.shape.reduce(1, *) }
    }

    func testPresetsReproducePublishedCounts() throws {
        for preset in ModelPreset.all {
            let count = try ParameterCount(preset.config)
            XCTAssertEqual(count.total, Self.referenceCount(preset.config), preset.name)
            if preset.publishedIsRounded {
                XCTAssertEqual(Double(count.total), Double(preset.publishedParameters), accuracy: 0.005 * Double(preset.publishedParameters), preset.name)
            } else {
                XCTAssertEqual(count.total, preset.publishedParameters, preset.name)
            }
        }
    }

    /// Against Hugging Face transformers' own models (GPT-2, LLaMA with and without biases, GQA,
    /// tied or not, Mistral), counted by scripts/make_estimates_fixtures.py.
    func testMatchesTransformersModels() throws {
        XCTAssertEqual(TransformersFixtures.models.count, 33)
        for fixture in TransformersFixtures.models {
            XCTAssertEqual(try ParameterCount(fixture.config).total, fixture.parameters, fixture.name)
            if let preset = ModelPreset.named(fixture.name) { XCTAssertEqual(preset.config, fixture.config, fixture.name) }
        }
    }

    func testIssueFiguresAreThePresetFigures() throws {
        let expected = ["gpt2-small": 124_439_808, "gpt2-medium": 354_823_168, "gpt2-large": 774_030_080,
                        "gpt2-xl": 1_557_611_200, "llama-7b": 6_738_415_616, "llama2-70b": 68_976_648_192]
        for (name, figure) in expected {
            XCTAssertEqual(try ParameterCount(XCTUnwrap(ModelPreset.named(name)).config).total, figure, name)
        }
        // GPT-3's exact GPT-2-style count behind the paper's rounded "175.0B".
        XCTAssertEqual(try ParameterCount(XCTUnwrap(ModelPreset.named("gpt3-175b")).config).total, 174_604_259_328)
    }

    func testRandomConfigurationsMatchTensorEnumeration() throws {
        var rng = SplitMix(seed: 42)
        for _ in 0..<300 {
            let heads = rng.int(1...12)
            let kvDivisors = (1...heads).filter { heads % $0 == 0 }
            let config = TransformerConfig(
                layers: rng.int(1...6), heads: heads, kvHeads: kvDivisors[rng.int(0...(kvDivisors.count - 1))],
                width: heads * 2 * rng.int(1...16), mlpWidth: rng.int(1...300), context: rng.int(1...512),
                vocabularySize: rng.int(1...1000),
                positionEncoding: TransformerConfig.PositionEncoding.allCases[rng.int(0...3)],
                norm: TransformerConfig.Norm.allCases[rng.int(0...1)],
                normPlacement: TransformerConfig.NormPlacement.allCases[rng.int(0...1)],
                activation: TransformerConfig.Activation.allCases[rng.int(0...2)],
                bias: rng.int(0...1) == 1, tiedEmbeddings: rng.int(0...1) == 1)
            let count = try ParameterCount(config)
            XCTAssertEqual(count.total, Self.referenceCount(config), "\(config)")
            XCTAssertEqual(count.components.reduce(0) { $0 + $1.count }, count.total)
            // Embedding share: token + position tables plus an untied head.
            let embeddingTensors = Self.tensorShapes(config).filter { ["wte", "wpe", "lm_head.weight"].contains($0.name) }
            XCTAssertEqual(count.embedding, embeddingTensors.reduce(0) { $0 + $1.shape.reduce(1, *) })
        }
    }

    func testGroupedQueryAttentionShrinksKeyAndValue() throws {
        let llama = try XCTUnwrap(ModelPreset.named("llama2-70b")).config
        let count = try ParameterCount(llama)
        XCTAssertEqual(count.attentionKey, 80 * 8192 * 1024)
        XCTAssertEqual(count.attentionValue, count.attentionKey)
        XCTAssertEqual(count.attentionQuery, 8 * count.attentionKey)
    }

    func testImpossibleConfigurationsNameTheField() {
        func field(_ config: TransformerConfig) -> String? {
            do { _ = try ParameterCount(config); return nil } catch let error as InvalidArgument { return error.argument } catch { return "other" }
        }
        XCTAssertEqual(field(TransformerConfig(layers: 2, heads: 5, width: 64, context: 8, vocabularySize: 10)), "heads")
        XCTAssertEqual(field(TransformerConfig(layers: 2, heads: 4, kvHeads: 3, width: 64, context: 8, vocabularySize: 10)), "kvHeads")
        XCTAssertEqual(field(TransformerConfig(layers: 0, heads: 4, width: 64, context: 8, vocabularySize: 10)), "layers")
        XCTAssertEqual(field(TransformerConfig(layers: 2, heads: 4, width: -64, context: 8, vocabularySize: 10)), "width")
        XCTAssertEqual(field(TransformerConfig(layers: 2, heads: 4, width: 64, context: 8, vocabularySize: 0)), "vocabularySize")
    }
}

/// A small deterministic generator for reproducible random configurations.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func int(_ range: ClosedRange<Int>) -> Int {
        range.lowerBound + Int(next() % UInt64(range.count))
    }
    mutating func double() -> Double { Double(next() >> 11) / Double(1 << 53) }
}
