import XCTest
import Transformer

/// Dropout (embedding, attention probabilities, residual branches) must use the same masks
/// in the backward pass as in the forward pass. With a fixed seed the training loss is a
/// deterministic function of the parameters, so its gradient can be checked by finite
/// differences of the Float32 model itself (coarser than the Float64 mirror, but a mask
/// mismatch gives O(1) relative errors).
final class DropoutTests: XCTestCase {
    func testDropoutGradientsMatchFiniteDifferencesForAFixedSeed() throws {
        let config = TransformerConfig(layers: 2, heads: 2, width: 16, mlpWidth: 32, context: 8, vocabularySize: 11, dropout: 0.3)
        let model = try TransformerModel(config: config, seed: 9)
        for i in 0..<model.parameterCount { model.parameters[i] *= 4 }
        let batch = 2, time = 8
        var random = TrainerRandom(seed: 4)
        let tokens = (0..<(batch * time)).map { _ in Int32(random.nextInt(below: 11)) }
        let targets = (0..<(batch * time)).map { _ in Int32(random.nextInt(below: 11)) }
        let mode = TransformerModel.Mode.training(lossScale: 1 / Float(batch * time), dropoutSeed: 77)
        func loss() throws -> Double {
            Double(try model.forward(tokens: tokens, targets: targets, batch: batch, time: time, mode: mode))
        }
        let evaluation = try model.forward(tokens: tokens, targets: targets, batch: batch, time: time, mode: .evaluation)
        let dropped = try loss()
        XCTAssertNotEqual(Float(dropped), evaluation, "dropout changed nothing")
        XCTAssertEqual(try loss(), dropped, "the same seed must give the same masks")
        model.zeroGradients()
        _ = try loss()
        try model.backward()
        let analytic = Array(UnsafeBufferPointer(start: model.gradients, count: model.parameterCount))

        var checked = 0
        for name in ["layers.0.attention.qkv.weight", "layers.1.attention.proj.weight", "layers.0.mlp.down.weight", "token_embedding"] {
            let entry = try XCTUnwrap(model.layout.entries.first { $0.name == name })
            for i in stride(from: 0, to: entry.count, by: max(1, entry.count / 24)) {
                let k = entry.offset + i
                let saved = model.parameters[k]
                let h: Float = 1e-2
                model.parameters[k] = saved + h
                let plus = try loss()
                model.parameters[k] = saved - h
                let minus = try loss()
                model.parameters[k] = saved
                let numeric = (plus - minus) / Double(2 * h)
                // Float32 loss rounding (~1e-7·loss/h) and O(h²) curvature: ~1e-4 here.
                XCTAssertEqual(Double(analytic[k]), numeric, accuracy: 2e-3 + 0.05 * abs(numeric), "\(name)[\(i)]")
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 50)
    }
}
