import XCTest
import Transformer

/// Every parameter gradient of the Float32 model against central finite differences of the
/// independent Float64 mirror (`ReferenceModel`), for configurations that between them use
/// every layer: LayerNorm/RMSNorm, pre/post placement, GELU/ReLU/SwiGLU, learned/rotary/ALiBi/no
/// positions, biases on/off, tied/untied heads, MHA/GQA/MQA.
final class GradientTests: XCTestCase {
    static let gpt2 = TransformerConfig(layers: 2, heads: 2, width: 8, mlpWidth: 12, context: 6, vocabularySize: 11)
    static let llama = TransformerConfig(layers: 2, heads: 4, kvHeads: 2, width: 16, mlpWidth: 12, context: 6, vocabularySize: 11,
                                         positionEncoding: .rotary, ropeTheta: 100, ropeScaling: 2, norm: .rmsNorm,
                                         activation: .swiglu, bias: false, tiedEmbeddings: false)
    static let postNorm = TransformerConfig(layers: 2, heads: 2, kvHeads: 1, width: 8, mlpWidth: 12, context: 6, vocabularySize: 11,
                                            positionEncoding: .alibi, normPlacement: .post, activation: .relu, tiedEmbeddings: false)
    static let plain = TransformerConfig(layers: 1, heads: 3, kvHeads: 3, width: 12, mlpWidth: 8, context: 6, vocabularySize: 7,
                                         positionEncoding: .none, norm: .layerNorm, activation: .gelu, bias: false)

    func check(_ config: TransformerConfig, seed: UInt64, file: StaticString = #filePath, line: UInt = #line) throws {
        let model = try TransformerModel(config: config, seed: seed)
        // Larger-than-default weights so that every path carries a gradient well above rounding.
        for i in 0..<model.parameterCount { model.parameters[i] *= 4 }
        let batch = 2, time = 5
        var random = TrainerRandom(seed: seed + 1)
        let tokens = (0..<(batch * time)).map { _ in random.nextInt(below: config.vocabularySize) }
        let targets = (0..<(batch * time)).map { _ in random.nextInt(below: config.vocabularySize) }
        model.zeroGradients()
        let loss = try model.forward(tokens: tokens.map(Int32.init), targets: targets.map(Int32.init), batch: batch, time: time,
                                     mode: .training(lossScale: 1 / Float(batch * time), dropoutSeed: 0))
        try model.backward()

        let reference = ReferenceModel(config)
        var p = (0..<model.parameterCount).map { Double(model.parameters[$0]) }
        let referenceLoss = reference.loss(p, tokens: tokens, targets: targets, batch: batch, time: time)
        XCTAssertEqual(Double(loss), referenceLoss, accuracy: 1e-5 * max(1, abs(referenceLoss)), "loss", file: file, line: line)

        let h = 1e-5
        for entry in model.layout.entries {
            var numeric = [Double](repeating: 0, count: entry.count)
            for i in 0..<entry.count {
                let k = entry.offset + i
                let saved = p[k]
                p[k] = saved + h
                let plus = reference.loss(p, tokens: tokens, targets: targets, batch: batch, time: time)
                p[k] = saved - h
                let minus = reference.loss(p, tokens: tokens, targets: targets, batch: batch, time: time)
                p[k] = saved
                numeric[i] = (plus - minus) / (2 * h)
            }
            let scale = numeric.map(abs).max()!
            XCTAssertGreaterThan(scale, 1e-6, "\(entry.name) has no gradient to test", file: file, line: line)
            var worst = 0.0
            for i in 0..<entry.count { worst = max(worst, abs(Double(model.gradients[entry.offset + i]) - numeric[i])) }
            // Float32 rounding in sums of a few dozen terms: ~1e-6 of the tensor's scale; 1e-4 leaves margin.
            XCTAssertLessThan(worst, 1e-4 * scale + 1e-7, "\(entry.name): worst |analytic − numeric| \(worst), scale \(scale)", file: file, line: line)
        }
    }

    func testGPT2StyleGradients() throws { try check(Self.gpt2, seed: 1) }
    func testLlamaStyleGradients() throws { try check(Self.llama, seed: 2) }
    func testPostNormALiBiReLUMQAGradients() throws { try check(Self.postNorm, seed: 3) }
    func testNoPositionNoBiasGradients() throws { try check(Self.plain, seed: 4) }
}
