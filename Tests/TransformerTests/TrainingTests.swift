import XCTest
import Foundation
import FlashCore
import Transformer

final class TrainingTests: XCTestCase {
    static let config = TransformerConfig(layers: 2, heads: 2, width: 16, mlpWidth: 32, context: 8, vocabularySize: 8, dropout: 0.1)

    /// A corpus with no uncertainty: the next token is always determined by the current one.
    static let repetitive = (0..<400).map { $0 % 8 }

    func testTinyRepetitiveCorpusLossGoesNearZero() throws {
        let model = try TransformerModel(config: Self.config, seed: 7)
        let data = try TokenDataset(tokens: Self.repetitive, validationFraction: 0.1, context: 8)
        let trainer = try Trainer(model: model, data: data, options: TrainingOptions(steps: 150, batch: 4, learningRate: 1e-2, warmup: 10, seed: 3))
        let initial = try XCTUnwrap(trainer.evaluate())
        XCTAssertEqual(initial, Float(Foundation.log(8.0)), accuracy: 0.3, "an untrained model is near uniform")
        for _ in 0..<150 { try trainer.trainStep() }
        let final = try XCTUnwrap(trainer.evaluate())
        XCTAssertLessThan(final, 0.05, "validation loss after training on a deterministic sequence")
    }

    func testResumedRunMatchesUninterruptedRunBitForBit() throws {
        let options = TrainingOptions(steps: 6, batch: 2, accumulate: 2, learningRate: 3e-3, warmup: 2, seed: 11)
        let data = try TokenDataset(tokens: (0..<300).map { ($0 * 7 + $0 / 5) % 8 }, validationFraction: 0.1, context: 8)

        let straight = try Trainer(model: TransformerModel(config: Self.config, seed: 5), data: data, options: options)
        for _ in 0..<6 { try straight.trainStep() }

        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("flash-resume-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let first = try Trainer(model: TransformerModel(config: Self.config, seed: 5), data: data, options: options)
        for _ in 0..<3 { try first.trainStep() }
        try Checkpoint.save(model: first.model, tokenizerJSON: Data("{}".utf8), trainer: first, to: directory)
        // Saving twice replaces the checkpoint atomically.
        try Checkpoint.save(model: first.model, tokenizerJSON: Data("{}".utf8), trainer: first, to: directory)

        let state = try Checkpoint.loadTrainingState(from: directory)
        XCTAssertEqual(state.step, 3)
        let resumed = try Trainer(model: Checkpoint.loadModel(from: directory), data: data, options: state.options)
        try Checkpoint.restore(resumed, from: directory)
        for _ in 0..<3 { try resumed.trainStep() }

        XCTAssertEqual(resumed.step, straight.step)
        let n = straight.model.parameterCount
        let a = Array(UnsafeBufferPointer(start: straight.model.parameters, count: n))
        let b = Array(UnsafeBufferPointer(start: resumed.model.parameters, count: n))
        XCTAssertEqual(a.map(\.bitPattern), b.map(\.bitPattern), "resumed parameters differ from the uninterrupted run")
        XCTAssertNotEqual(a, Array(UnsafeBufferPointer(start: first.model.parameters, count: n)), "training changed nothing")
    }

    func testNonFiniteLossStopsWithoutTouchingParameters() throws {
        let model = try TransformerModel(config: Self.config, seed: 1)
        model.parameters[0] = .nan
        let before = Array(UnsafeBufferPointer(start: model.parameters, count: model.parameterCount))
        let trainer = try Trainer(model: model, data: TokenDataset(tokens: Self.repetitive, validationFraction: 0, context: 8),
                                  options: TrainingOptions(steps: 2, batch: 2))
        // Token 0 embeds to NaN; windows start anywhere, so keep trying until one holds a 0.
        XCTAssertThrowsError(try { for _ in 0..<20 { try trainer.trainStep() } }()) { error in
            guard case TrainingError.nonFinite = error else { return XCTFail("unexpected error \(error)") }
        }
        let after = Array(UnsafeBufferPointer(start: model.parameters, count: model.parameterCount))
        XCTAssertEqual(before.map(\.bitPattern), after.map(\.bitPattern))
    }

    func testActivationByteCountMatchesWhatTheModelAllocates() throws {
        for config in [Self.config, TransformerConfig(layers: 2, heads: 4, kvHeads: 2, width: 16, mlpWidth: 24, context: 8, vocabularySize: 40,
                                                     positionEncoding: .rotary, norm: .rmsNorm, normPlacement: .post, activation: .swiglu)] {
            let model = try TransformerModel(config: config)
            let tokens = [Int32](repeating: 1, count: 3 * 8)
            try model.forward(tokens: tokens, targets: tokens, batch: 3, time: 8, mode: .training(lossScale: 1, dropoutSeed: 0))
            XCTAssertEqual(model.allocatedBytes - 8 * model.parameterCount,
                           TransformerModel.activationBytes(config: config, rows: 24, training: true))
        }
        // A batch far beyond memory is refused up front, not attempted.
        // (4 M rows × ~4.6 K floats each ≈ 74 GB; the model itself is small.)
        let huge = try TransformerModel(config: TransformerConfig(layers: 1, heads: 1, width: 256, context: 4_000_000, vocabularySize: 2,
                                                                  positionEncoding: .none))
        XCTAssertThrowsError(try huge.forward(tokens: [Int32](repeating: 0, count: 4_000_000), batch: 1, time: 4_000_000)) { error in
            XCTAssertEqual((error as? InvalidArgument)?.argument, "batch·context")
        }
    }

    func testScheduleWarmsUpLinearlyThenDecaysByCosine() {
        let s = LearningRateSchedule(peak: 1, minimum: 0.1, warmup: 4, total: 14)
        XCTAssertEqual(s.rate(step: 0), 0.25, accuracy: 1e-6)
        XCTAssertEqual(s.rate(step: 3), 1, accuracy: 1e-6)
        XCTAssertEqual(s.rate(step: 4), 1, accuracy: 1e-6)
        XCTAssertEqual(s.rate(step: 9), 0.55, accuracy: 1e-6)  // halfway: min + (peak − min)/2
        XCTAssertEqual(s.rate(step: 14), 0.1, accuracy: 1e-6)
    }

    func testGradientClippingScalesToMaxNorm() {
        var values: [Float] = [3, 4, 0, 0]
        let norm = values.withUnsafeMutableBufferPointer { GradientClipping.clip($0.baseAddress!, count: 4, maxNorm: 1) }
        XCTAssertEqual(norm, 5, accuracy: 1e-9)
        XCTAssertEqual(values[0], 0.6, accuracy: 1e-6)
        XCTAssertEqual(values[1], 0.8, accuracy: 1e-6)
    }

    /// The vectorised AdamW against the per-element formula: in Float32 with the same operation
    /// order (bit for bit), and in Float64 (close), over three steps of a model whose tensors'
    /// sizes are no multiples of the vector width (partial vectors at every tensor's end), with
    /// decayed and undecayed tensors (and embeddings decayed on request).
    func testAdamWMatchesPerElementFormula() throws {
        let config = TransformerConfig(layers: 1, heads: 3, width: 15, mlpWidth: 37, context: 5, vocabularySize: 11)
        let layout = ParameterLayout(config)
        for decayEmbeddings in [false, true] {
            let options = AdamW.Options(beta1: 0.85, beta2: 0.97, epsilon: 1e-6, weightDecay: 0.3, decayEmbeddings: decayEmbeddings)
            let optimizer = AdamW(layout: layout, options: options)
            let n = layout.count
            var random = SystemRandomNumberGenerator()
            var parameters = (0..<n).map { _ in Float.random(in: -1...1, using: &random) }
            var expected32 = parameters, m32 = [Float](repeating: 0, count: n), v32 = m32
            var expected64 = parameters.map(Double.init), m64 = [Double](repeating: 0, count: n), v64 = m64
            var decays = [Bool](repeating: false, count: n)
            for entry in layout.entries where entry.kind == .matrix || (decayEmbeddings && entry.kind == .embedding) {
                for i in entry.offset..<entry.offset + entry.count { decays[i] = true }
            }
            for step in 1...3 {
                let gradients = (0..<n).map { _ in Float.random(in: -2...2, using: &random) }
                let rate: Float = 0.01 * Float(step)
                parameters.withUnsafeMutableBufferPointer { p in
                    gradients.withUnsafeBufferPointer { optimizer.update(parameters: p.baseAddress!, gradients: $0.baseAddress!, learningRate: rate, threads: 2) }
                }
                let (b1, b2, eps) = (options.beta1, options.beta2, options.epsilon)
                let correction1 = 1 - Float(Foundation.pow(Double(b1), Double(step)))
                let correction2Root = Float(Foundation.sqrt(1 - Foundation.pow(Double(b2), Double(step))))
                let stepSize = rate / correction1, decay = 1 - rate * options.weightDecay
                for i in 0..<n {
                    let g = gradients[i]
                    var p = expected32[i]
                    if decays[i] { p *= decay }
                    m32[i] = b1 * m32[i] + (1 - b1) * g
                    v32[i] = b2 * v32[i] + (1 - b2) * g * g
                    p -= stepSize * m32[i] / (v32[i].squareRoot() / correction2Root + eps)
                    expected32[i] = p
                    let (g64, r64) = (Double(g), Double(rate))
                    if decays[i] { expected64[i] *= 1 - r64 * Double(options.weightDecay) }
                    m64[i] = Double(b1) * m64[i] + (1 - Double(b1)) * g64
                    v64[i] = Double(b2) * v64[i] + (1 - Double(b2)) * g64 * g64
                    let c1 = 1 - Foundation.pow(Double(b1), Double(step)), c2 = 1 - Foundation.pow(Double(b2), Double(step))
                    expected64[i] -= r64 / c1 * m64[i] / ((v64[i] / c2).squareRoot() + Double(eps))
                }
                XCTAssertEqual(parameters, expected32, "step \(step): vector and per-element Float32 updates differ")
                for i in 0..<n {
                    XCTAssertEqual(Double(parameters[i]), expected64[i], accuracy: 1e-5 * max(1, abs(expected64[i])), "step \(step), value \(i)")
                }
            }
        }
    }
}
