import XCTest
import Estimates
import Transformer

/// `flash train`'s presets (`Transformer.TrainingPreset`, shared with `flash estimate --preset`):
/// the estimate's parameter count equals the model's, for the vocabularies a run may have.
final class TrainingPresetEstimateTests: XCTestCase {
    func testParameterCountEqualsTheModelsForEveryTrainingPreset() throws {
        for preset in TrainingPreset.allCases {
            for vocabulary in [65, 2048] {
                let config = preset.config(vocabularySize: vocabulary)
                let model = try TransformerModel(config: config)
                XCTAssertEqual(try ParameterCount(config).total, model.parameterCount, "\(preset) vocabulary \(vocabulary)")
            }
        }
        // nanoGPT's shape as flash train builds it (6 × 384, context 256, tied, biases): 12·C²
        // per layer plus biases and norms, 256·C positions; checked by hand for vocabulary 65.
        let nano = TrainingPreset.nanogpt.config(vocabularySize: 65)
        XCTAssertEqual(try ParameterCount(nano).total,
                       65 * 384 + 256 * 384 + 6 * (12 * 384 * 384 + 13 * 384) + 2 * 384)
    }

    /// The memory estimate of a preset with the trainer's memory model equals what a step of
    /// that preset holds (the whole comparison is in MemoryVersusTrainerTests; here for `tiny`).
    func testTinyPresetMemoryEqualsTheTrainers() throws {
        let config = TrainingPreset.tiny.config(vocabularySize: 65)
        let batch = TrainingPreset.tiny.shape.batch
        let model = try TransformerModel(config: config)
        var random = TrainerRandom(seed: 1)
        let tokens = (0..<4096).map { _ in random.nextInt(below: 65) }
        let trainer = try Trainer(model: model, data: try TokenDataset(tokens: tokens, validationFraction: 0, context: config.context),
                                  options: TrainingOptions(steps: 1, batch: batch, warmup: 0))
        try trainer.trainStep()
        let estimate = try MemoryEstimate(TrainingSetup(model: config, microBatch: batch, parameterPrecision: .fp32,
                                                        memoryModel: .projectTrainer))
        XCTAssertEqual(estimate.modelStates + estimate.activations + estimate.backwardBuffers,
                       Double(model.memoryAccounting.total + trainer.optimizer.allocatedBytes))
    }
}
