import XCTest
import Estimates
import Transformer

/// The estimate must equal, exactly, the parameter count of the project's own model built from
/// the same configuration (its flat parameter buffer's length).
final class ParameterCountVersusModelTests: XCTestCase {
    func testRandomConfigurationsMatchTheModel() throws {
        var rng = SplitMix(seed: 7)
        for _ in 0..<60 {
            let heads = rng.int(1...6)
            let kvDivisors = (1...heads).filter { heads % $0 == 0 }
            let config = TransformerConfig(
                layers: rng.int(1...3), heads: heads, kvHeads: kvDivisors[rng.int(0...(kvDivisors.count - 1))],
                width: heads * 2 * rng.int(1...6), mlpWidth: rng.int(1...64), context: rng.int(1...64),
                vocabularySize: rng.int(1...200),
                positionEncoding: TransformerConfig.PositionEncoding.allCases[rng.int(0...3)],
                norm: TransformerConfig.Norm.allCases[rng.int(0...1)],
                normPlacement: TransformerConfig.NormPlacement.allCases[rng.int(0...1)],
                activation: TransformerConfig.Activation.allCases[rng.int(0...2)],
                bias: rng.int(0...1) == 1, tiedEmbeddings: rng.int(0...1) == 1)
            let model = try TransformerModel(config: config)
            XCTAssertEqual(try ParameterCount(config).total, model.parameterCount, "\(config)")
        }
    }

    func testGPT2SmallPresetMatchesTheModel() throws {
        let config = try XCTUnwrap(ModelPreset.named("gpt2-small")).config
        let model = try TransformerModel(config: config)
        XCTAssertEqual(model.parameterCount, 124_439_808)
        XCTAssertEqual(try ParameterCount(config).total, model.parameterCount)
    }
}
