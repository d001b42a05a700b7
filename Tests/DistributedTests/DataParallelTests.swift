import XCTest
import Foundation
import Distributed
import Transformer

/// Data parallelism over in-process ranks (threads) against one process with the whole batch,
/// as PyTorch's DDP tests do: P ranks × B sequences must train like one process with P·B.
///
/// Tolerance: the two runs compute the same sums in different orders (per-rank GEMMs over B
/// rows, then a sum over ranks, against one GEMM over P·B rows), so gradients differ by a few
/// Float32 roundings (relative ~1e-6). AdamW's step m/(√v + ε) is scale-free, so a relative
/// gradient error becomes the same relative error in the step, at most lr per step: over 5
/// steps at lr 3e-3 the parameters may drift by ~1e-6·5·3e-3 plus the roundings of the
/// parameters themselves (values ~0.1-1, ulp ~1e-7). We allow 2e-5 absolute, which is ~1e-3 of
/// the total movement lr·steps = 1.5e-2, yet would catch a wrong slice, a missing bucket, a
/// gradient counted twice (×2) or unaveraged (×P), each of which moves parameters by ~lr.
final class DataParallelTests: XCTestCase {
    static let config = TransformerConfig(layers: 2, heads: 2, width: 16, mlpWidth: 32, context: 8, vocabularySize: 11)
    static let tokens = (0..<600).map { ($0 * 7 + $0 / 3 + ($0 * $0) % 5) % 11 }
    static let tolerance: Float = 2e-5

    struct Run {
        var losses: [Float]
        var norms: [Double]
        var parameters: [Float]
    }

    func train(options: TrainingOptions, steps: Int, communicator: Communicator?, zero: Int, seed: UInt64,
               config: TransformerConfig = DataParallelTests.config, prepare: (TransformerModel) -> Void = { _ in }) throws -> Run {
        let model = try TransformerModel(config: config, seed: seed)
        model.threads = 1
        let data = try TokenDataset(tokens: Self.tokens, validationFraction: 0.1, context: config.context)
        let trainer = try Trainer(model: model, data: data, options: options, communicator: communicator, zeroStage: zero)
        prepare(model)
        var run = Run(losses: [], norms: [], parameters: [])
        for _ in 0..<steps {
            let result = try trainer.trainStep()
            run.losses.append(result.loss)
            run.norms.append(result.gradientNorm)
        }
        run.parameters = Array(UnsafeBufferPointer(start: model.parameters, count: model.parameterCount))
        return run
    }

    func options(batch: Int, accumulate: Int) -> TrainingOptions {
        // Clip at 0.5 so clipping is active and the reduced norm matters.
        TrainingOptions(steps: 5, batch: batch, accumulate: accumulate, learningRate: 3e-3, warmup: 1, gradientClip: 0.5, seed: 21)
    }

    func assertClose(_ a: Run, _ b: Run, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        Self.assertClose(a, b, what, file: file, line: line)
    }

    static func assertClose(_ a: Run, _ b: Run, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.losses.count, b.losses.count)
        for (x, y) in zip(a.losses, b.losses) { XCTAssertEqual(x, y, accuracy: 1e-5 * max(1, abs(y)), "\(what): loss", file: file, line: line) }
        for (x, y) in zip(a.norms, b.norms) { XCTAssertEqual(x, y, accuracy: 1e-5 * max(1, abs(y)), "\(what): gradient norm", file: file, line: line) }
        let worst = zip(a.parameters, b.parameters).map { abs($0 - $1) }.max() ?? .infinity
        XCTAssertLessThanOrEqual(worst, Self.tolerance, "\(what): largest parameter difference", file: file, line: line)
    }

    func checkDataParallel(ranks: Int, batch: Int, accumulate: Int, zero: Int) throws {
        let single = try train(options: options(batch: ranks * batch, accumulate: accumulate), steps: 5, communicator: nil, zero: 0, seed: 5)
        // Ranks start from different weights: the broadcast from rank 0 must make them equal.
        let runs = try ThreadCommunicator.run(size: ranks) { c in
            try self.train(options: self.options(batch: batch, accumulate: accumulate), steps: 5, communicator: c, zero: zero, seed: 5 + UInt64(c.rank) * 100)
        }
        for (rank, run) in runs.enumerated() {
            assertClose(run, single, "P=\(ranks) B=\(batch) accumulate \(accumulate) ZeRO-\(zero) rank \(rank)")
            XCTAssertEqual(run.parameters, runs[0].parameters, "ranks hold different parameters")
        }
        let moved = zip(single.parameters, try train(options: options(batch: ranks * batch, accumulate: accumulate), steps: 0,
                                                     communicator: nil, zero: 0, seed: 5).parameters).map { abs($0 - $1) }.max()!
        XCTAssertGreaterThan(moved, 100 * Self.tolerance, "training must move the parameters far beyond the tolerance")
    }

    func testTwoRanksEqualOneProcessWithTwiceTheBatch() throws {
        try checkDataParallel(ranks: 2, batch: 2, accumulate: 1, zero: 0)
        try checkDataParallel(ranks: 2, batch: 2, accumulate: 3, zero: 0)
    }

    func testFourRanksWithAccumulation() throws {
        try checkDataParallel(ranks: 4, batch: 1, accumulate: 2, zero: 0)
    }

    /// Dropout (residual and attention) under data parallel: rank r draws the masks one process
    /// with the global batch draws for sequences r·B..<(r+1)·B, so the runs still agree.
    func testDropoutEqualsOneProcess() throws {
        var config = Self.config
        config.dropout = 0.3
        for (ranks, batch, accumulate) in [(2, 2, 1), (4, 1, 2)] {
            let single = try train(options: options(batch: ranks * batch, accumulate: accumulate), steps: 5, communicator: nil, zero: 0,
                                   seed: 5, config: config)
            let runs = try ThreadCommunicator.run(size: ranks) { c in
                try self.train(options: self.options(batch: batch, accumulate: accumulate), steps: 5, communicator: c, zero: 0, seed: 5,
                               config: config)
            }
            for (rank, run) in runs.enumerated() {
                assertClose(run, single, "dropout 0.3, P=\(ranks) B=\(batch) accumulate \(accumulate) rank \(rank)")
            }
            // Negative control: every rank drawing the masks of sequences 0..<B (what a rank
            // alone would draw) must not pass the same comparison.
            let local = try ThreadCommunicator.run(size: ranks) { c in
                try self.train(options: self.options(batch: batch, accumulate: accumulate), steps: 5, communicator: c, zero: 0, seed: 5,
                               config: config, prepare: { $0.dropoutSequenceOffset = 0 })
            }
            let worst = zip(local[0].parameters, single.parameters).map { abs($0 - $1) }.max()!
            XCTAssertGreaterThan(worst, 10 * Self.tolerance, "per-rank masks must differ from the global batch's")
        }
    }

    func testZeroOneEqualsOneProcessAndZeroZero() throws {
        try checkDataParallel(ranks: 2, batch: 2, accumulate: 2, zero: 1)
        try checkDataParallel(ranks: 4, batch: 1, accumulate: 1, zero: 1)
        let zero0 = try ThreadCommunicator.run(size: 3) { c in
            try self.train(options: self.options(batch: 1, accumulate: 2), steps: 5, communicator: c, zero: 0, seed: 5)
        }
        let zero1 = try ThreadCommunicator.run(size: 3) { c in
            try self.train(options: self.options(batch: 1, accumulate: 2), steps: 5, communicator: c, zero: 1, seed: 5)
        }
        assertClose(zero1[0], zero0[0], "ZeRO-1 against ZeRO-0, 3 ranks")
    }

    func testZeroOneShardsTheOptimizerState() throws {
        let layout = ParameterLayout(Self.config)
        for ranks in [2, 3, 4] {
            let pieces = (0..<ranks).map { layout.zeroShards(rank: $0, ranks: ranks).map(\.owned) }
            // The pieces of all ranks tile the buffer exactly once.
            let covered = pieces.flatMap { $0.flatMap { Array($0) } }.sorted()
            XCTAssertEqual(covered, Array(0..<layout.count))
            let largest = pieces.map { $0.reduce(0) { $0 + $1.count } }.max()!
            XCTAssertLessThanOrEqual(largest, layout.count / ranks + layout.gradientBuckets.count)
            let optimizer = AdamW(layout: layout, ranges: pieces[0])
            XCTAssertEqual(optimizer.allocatedBytes, 8 * pieces[0].reduce(0) { $0 + $1.count })
        }
    }

    func testResumeWithAnotherWorldSize() throws {
        // 3 steps on 2 ranks with ZeRO-1, checkpoint, 3 more steps on one process with batch 2·B:
        // the same run as 6 steps on one process.
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("flash-dp-resume-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let data = try TokenDataset(tokens: Self.tokens, validationFraction: 0.1, context: Self.config.context)
        var six = options(batch: 4, accumulate: 1)
        six.steps = 6
        let straight = try train(options: six, steps: 6, communicator: nil, zero: 0, seed: 5)
        _ = try ThreadCommunicator.run(size: 2) { c in
            var perRank = six
            perRank.batch = 2
            let model = try TransformerModel(config: Self.config, seed: 5)
            model.threads = 1
            let trainer = try Trainer(model: model, data: data, options: perRank, communicator: c, zeroStage: 1)
            for _ in 0..<3 { try trainer.trainStep() }
            let moments = try trainer.fullOptimizerMoments()
            if c.rank == 0 {
                try Checkpoint.save(model: model, tokenizerJSON: Data("{}".utf8), trainer: trainer, moments: moments, to: directory)
            }
            try c.barrier()
        }
        let state = try Checkpoint.loadTrainingState(from: directory)
        var resumedOptions = state.options
        resumedOptions.batch = 4
        let model = try Checkpoint.loadModel(from: directory)
        model.threads = 1
        let resumed = try Trainer(model: model, data: data, options: resumedOptions)
        try Checkpoint.restore(resumed, from: directory)
        for _ in 0..<3 { try resumed.trainStep() }
        let parameters = Array(UnsafeBufferPointer(start: model.parameters, count: model.parameterCount))
        let worst = zip(parameters, straight.parameters).map { abs($0 - $1) }.max()!
        XCTAssertLessThanOrEqual(worst, Self.tolerance)
    }
}

import Estimates

/// `flash estimate --zero 1 --dp P` (trainer memory model) against what a rank allocates.
final class ZeroMemoryEstimateTests: XCTestCase {
    func testEstimateEqualsTheRankZeroOptimizerAllocation() throws {
        let config = TransformerConfig(layers: 3, heads: 2, width: 24, mlpWidth: 40, context: 8, vocabularySize: 13)
        let data = try TokenDataset(tokens: (0..<400).map { $0 % 13 }, validationFraction: 0, context: 8)
        for ranks in [2, 3] {
            let allocated = try ThreadCommunicator.run(size: ranks) { c in
                let model = try TransformerModel(config: config, seed: 1)
                model.threads = 1
                return try Trainer(model: model, data: data, options: TrainingOptions(batch: 1), communicator: c, zeroStage: 1).optimizer.allocatedBytes
            }
            var setup = TrainingSetup(model: config, parallelism: Parallelism(data: ranks), memoryModel: .projectTrainer)
            setup.zeroStage = 1
            let estimate = try MemoryEstimate(setup)
            XCTAssertEqual(estimate.optimizerStates, Double(allocated.max()!), "P = \(ranks)")
            XCTAssertEqual(allocated[0], allocated.max()!, "rank 0 is the busiest")
            setup.zeroStage = 0
            let unsharded = try MemoryEstimate(setup).optimizerStates
            XCTAssertLessThan(estimate.optimizerStates, unsharded / Double(ranks) * 1.05, "optimizer memory ÷ P")
        }
    }
}
