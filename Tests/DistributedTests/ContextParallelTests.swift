import XCTest
import Foundation
import Distributed
import FlashCore
import Transformer

/// Context-parallel training (ring attention over in-process ranks) against one process: each
/// sequence is split over C ranks in zigzag order, P/C data-parallel groups, same seed, 5 steps.
/// The tolerance is DataParallelTests' (the sums run in another order; ring attention adds the
/// LSE merges, a few more roundings of relative size ~1e-7).
final class ContextParallelTests: XCTestCase {
    func train(config: TransformerConfig, options: TrainingOptions, communicator: Communicator?, contextParallel: Int,
               zero: Int = 0) throws -> DataParallelTests.Run {
        let model = try TransformerModel(config: config, seed: 9)
        model.threads = 1
        let data = try TokenDataset(tokens: DataParallelTests.tokens, validationFraction: 0.1, context: config.context)
        let trainer = try Trainer(model: model, data: data, options: options, communicator: communicator, zeroStage: zero,
                                  contextParallel: contextParallel)
        var run = DataParallelTests.Run(losses: [], norms: [], parameters: [])
        for _ in 0..<5 {
            let result = try trainer.trainStep()
            run.losses.append(result.loss)
            run.norms.append(result.gradientNorm)
        }
        // Evaluation through the ring (each rank its shard of every window) equals evaluating
        // whole windows on one rank.
        let sharded = try XCTUnwrap(try trainer.evaluate())
        if let ring = model.contextParallel {
            model.contextParallel = nil
            let whole = try XCTUnwrap(try trainer.evaluate())
            model.contextParallel = ring
            XCTAssertEqual(sharded, whole, accuracy: 1e-5 * max(1, abs(whole)), "validation loss through the ring")
        }
        run.parameters = Array(UnsafeBufferPointer(start: model.parameters, count: model.parameterCount))
        return run
    }

    func check(_ config: TransformerConfig, ranks: Int, contextParallel: Int, batch: Int, accumulate: Int = 1, zero: Int = 0,
               file: StaticString = #filePath, line: UInt = #line) throws {
        let options = { (b: Int) in
            TrainingOptions(steps: 5, batch: b, accumulate: accumulate, learningRate: 3e-3, warmup: 1, gradientClip: 0.5, seed: 4)
        }
        let groups = ranks / contextParallel
        let single = try train(config: config, options: options(groups * batch), communicator: nil, contextParallel: 1)
        let runs = try ThreadCommunicator.run(size: ranks) { c in
            try self.train(config: config, options: options(batch), communicator: c, contextParallel: contextParallel, zero: zero)
        }
        for (rank, run) in runs.enumerated() {
            DataParallelTests.assertClose(run, single, "P=\(ranks) C=\(contextParallel) B=\(batch) rank \(rank) \(config.positionEncoding)",
                               file: file, line: line)
        }
    }

    func testRingAttentionTrainingEqualsOneProcess() throws {
        let rotary = TransformerConfig(layers: 2, heads: 2, kvHeads: 1, width: 16, mlpWidth: 32, context: 16, vocabularySize: 11,
                                       positionEncoding: .rotary, norm: .rmsNorm, activation: .swiglu, bias: false)
        let learned = TransformerConfig(layers: 2, heads: 2, width: 16, mlpWidth: 32, context: 16, vocabularySize: 11)
        try check(rotary, ranks: 2, contextParallel: 2, batch: 2)
        try check(learned, ranks: 2, contextParallel: 2, batch: 1, accumulate: 2)
        try check(learned, ranks: 4, contextParallel: 4, batch: 2)
        // Two data-parallel groups of two context-parallel ranks, with ZeRO-1.
        try check(rotary, ranks: 4, contextParallel: 2, batch: 1, accumulate: 2, zero: 1)
    }

    func testUnsupportedCombinationsAreRefused() throws {
        let alibi = TransformerConfig(layers: 1, heads: 2, width: 16, mlpWidth: 32, context: 16, vocabularySize: 11, positionEncoding: .alibi)
        let errors = try ThreadCommunicator.run(size: 2) { c -> String? in
            do {
                _ = try self.train(config: alibi, options: TrainingOptions(steps: 5, batch: 1), communicator: c, contextParallel: 2)
                return nil
            } catch let error as InvalidArgument {
                return error.argument
            }
        }
        XCTAssertEqual(errors, ["--position", "--position"])
        XCTAssertThrowsError(try ThreadCommunicator.run(size: 2) { c in
            _ = try self.train(config: DataParallelTests.config, options: TrainingOptions(steps: 5, batch: 1), communicator: c, contextParallel: 3)
        })
    }
}
