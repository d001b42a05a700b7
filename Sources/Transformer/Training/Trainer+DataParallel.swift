import Foundation
import FlashCore
import Distributed

/// Data parallelism's per-rank state: the gradient buckets (one per block, plus the tensors
/// outside the blocks), the communication thread that reduces them, and ZeRO-1's staging.
///
/// ZeRO-0: each bucket is all-reduced (summed) in place; every rank then holds the full
/// gradient and runs the same AdamW update, so parameters stay identical without further
/// communication. ZeRO-1: each bucket is reduce-scattered; rank r receives the summed gradient
/// of its piece of every bucket (`ParameterLayout.zeroShards`), clips and updates only that
/// piece with moments for it alone (optimizer memory ÷ P), and the pieces are all-gathered
/// back into every rank's parameters.
final class DataParallelState {
    let communicator: Communicator
    let zeroStage: Int
    let model: TransformerModel
    let queue = CollectiveQueue()
    /// The bucket of block l.
    let layerBucket: [Range<Int>]
    /// Buckets outside the blocks, reduced once the whole backward is done.
    let outerBuckets: [Range<Int>]
    /// This rank's piece of every bucket (ZeRO-1), in bucket order.
    let shards: [(bucket: Range<Int>, piece: Int, owned: Range<Int>)]
    /// P·(largest piece) floats: a bucket padded to P equal pieces (ZeRO-1 only).
    let staging: UnsafeMutablePointer<Float>
    let stagingCount: Int

    init(model: TransformerModel, communicator: Communicator, zeroStage: Int) throws {
        self.model = model
        self.communicator = communicator
        self.zeroStage = zeroStage
        let layout = model.layout
        layerBucket = (0..<model.config.layers).map(layout.layerRange)
        let blocks = Set(layerBucket.map(\.lowerBound))
        outerBuckets = layout.gradientBuckets.filter { !blocks.contains($0.lowerBound) }
        shards = layout.zeroShards(rank: communicator.rank, ranks: communicator.size)
        stagingCount = zeroStage == 1 ? communicator.size * (shards.map(\.piece).max() ?? 0) + (shards.map(\.piece).max() ?? 0) : 0
        staging = .allocate(capacity: max(stagingCount, 1))
        // Every rank starts from rank 0's weights.
        try communicator.broadcast(UnsafeMutableRawPointer(model.parameters), bytes: model.parameterCount * 4, root: 0)
    }

    deinit { staging.deallocate() }

    /// Queues the reduction of one bucket's gradients (summed over ranks) on the communication thread.
    func reduce(bucket: Range<Int>) {
        let gradients = model.gradients, communicator = self.communicator
        if zeroStage == 0 {
            queue.enqueue { try communicator.allReduceSum(gradients + bucket.lowerBound, count: bucket.count) }
            return
        }
        guard let shard = shards.first(where: { $0.bucket == bucket }) else { return }
        let staging = self.staging, ranks = communicator.size
        queue.enqueue {
            // Pad the bucket to P pieces of equal length, reduce-scatter, keep this rank's piece.
            let padded = shard.piece * ranks, received = staging + padded
            staging.update(from: gradients + bucket.lowerBound, count: bucket.count)
            (staging + bucket.count).update(repeating: 0, count: padded - bucket.count)
            try communicator.reduceScatterSum(staging, into: received, countPerRank: shard.piece)
            (gradients + shard.owned.lowerBound).update(from: received, count: shard.owned.count)
        }
    }

    /// The global gradient norm, after clipping it to `maxNorm` (0: no clipping), as
    /// `GradientClipping.clip` on one process. Under ZeRO-1 each rank holds only its pieces'
    /// reduced gradients: their squared norms are summed over ranks.
    func clipGradients(maxNorm: Double, threads: Int?) throws -> Double {
        let gradients = model.gradients
        guard zeroStage == 1 else {
            return maxNorm > 0
                ? GradientClipping.clip(gradients, count: model.parameterCount, maxNorm: maxNorm, threads: threads)
                : GradientClipping.norm(gradients, count: model.parameterCount, threads: threads)
        }
        var squares = 0.0
        for shard in shards where !shard.owned.isEmpty {
            let norm = GradientClipping.norm(gradients + shard.owned.lowerBound, count: shard.owned.count, threads: threads)
            squares += norm * norm
        }
        try communicator.allReduceSum(&squares, count: 1)
        let total = squares.squareRoot()
        let coefficient = maxNorm / (total + 1e-6)
        if maxNorm > 0 && coefficient < 1 && total.isFinite {
            for shard in shards where !shard.owned.isEmpty {
                VectorMath.scale(gradients + shard.owned.lowerBound, count: shard.owned.count, by: Float(coefficient))
            }
        }
        return total
    }

    /// ZeRO-1: every rank's updated pieces into every rank's parameters.
    func gatherParameters() throws {
        let parameters = model.parameters, ranks = communicator.size
        for shard in shards {
            let send = staging + shard.piece * ranks
            send.update(repeating: 0, count: shard.piece)
            send.update(from: parameters + shard.owned.lowerBound, count: shard.owned.count)
            try communicator.allGather(send, into: staging, countPerRank: shard.piece)
            (parameters + shard.bucket.lowerBound).update(from: staging, count: shard.bucket.count)
        }
    }

    /// The full AdamW moments (a collective under ZeRO-1: every rank must call it).
    func fullMoments(_ optimizer: AdamW) throws -> (first: [Float], second: [Float]) {
        let n = model.parameterCount
        guard zeroStage == 1 else {
            return (Array(UnsafeBufferPointer(start: optimizer.firstMoment, count: n)),
                    Array(UnsafeBufferPointer(start: optimizer.secondMoment, count: n)))
        }
        var result: [[Float]] = []
        let ranks = communicator.size
        for moments in [optimizer.firstMoment, optimizer.secondMoment] {
            var full = [Float](repeating: 0, count: n)
            var offset = 0
            for shard in shards {
                let send = staging + shard.piece * ranks
                send.update(repeating: 0, count: shard.piece)
                send.update(from: moments + offset, count: shard.owned.count)
                offset += shard.owned.count
                try communicator.allGather(send, into: staging, countPerRank: shard.piece)
                full.withUnsafeMutableBufferPointer { ($0.baseAddress! + shard.bucket.lowerBound).update(from: staging, count: shard.bucket.count) }
            }
            result.append(full)
        }
        return (result[0], result[1])
    }
}

extension Trainer {
    /// This rank's micro-batch: every rank draws the whole global batch's G·B windows (G
    /// data-parallel groups) from the shared generator (so the stream, and a resume, do not
    /// depend on the rank count), group g keeps windows g·B ..< (g+1)·B, and with context
    /// parallelism each rank of the group keeps its shard's positions of every window.
    func sampleLocalBatch() -> (inputs: [Int32], targets: [Int32]) {
        let context = model.config.context, batch = options.batch
        let (inputs, targets) = data.sample(.training, batch: globalBatch, context: context, random: &random)
        guard worldSize > 1 else { return (inputs, targets) }
        let group = communicator!.rank / contextParallel
        let window = (group * batch * context)..<((group + 1) * batch * context)
        guard let positions = model.contextParallel?.positions else { return (Array(inputs[window]), Array(targets[window])) }
        return Self.shard(inputs, targets, windows: group * batch..<(group + 1) * batch, context: context, positions: positions)
    }

    /// The tokens at `positions` of each of `windows` (windows of `context` tokens, row-major).
    static func shard(_ inputs: [Int32], _ targets: [Int32], windows: Range<Int>, context: Int,
                      positions: [Int]) -> (inputs: [Int32], targets: [Int32]) {
        var localInputs = [Int32](), localTargets = [Int32]()
        for w in windows {
            localInputs += positions.map { inputs[w * context + $0] }
            localTargets += positions.map { targets[w * context + $0] }
        }
        return (localInputs, localTargets)
    }

    /// The full AdamW moments, for a checkpoint. Under ZeRO-1 this gathers the shards: a
    /// collective every rank must call (rank 0 then writes them).
    public func fullOptimizerMoments() throws -> (first: [Float], second: [Float]) {
        if let parallel { return try parallel.fullMoments(optimizer) }
        let n = model.parameterCount
        return (Array(UnsafeBufferPointer(start: optimizer.firstMoment, count: n)),
                Array(UnsafeBufferPointer(start: optimizer.secondMoment, count: n)))
    }

    /// Loads full moments (from a checkpoint of any world size) into this rank's optimizer.
    public func loadOptimizerMoments(first: [Float], second: [Float]) throws {
        let n = model.parameterCount
        try InvalidArgument.require(first.count == n && second.count == n, "optimizer moments",
                                    expected: "\(n) values each", got: "\(first.count), \(second.count)")
        var offset = 0
        for range in optimizer.ranges {
            for i in range {
                optimizer.firstMoment[offset] = first[i]
                optimizer.secondMoment[offset] = second[i]
                offset += 1
            }
        }
    }

    /// Seconds the trainer spent waiting for communication (gradient buckets, ring steps) since
    /// the last call: the communication that compute did not hide.
    public func takeCommunicationWait() -> Double { parallel?.queue.takeWaitTime() ?? 0 }

    /// Seconds the communication thread spent in collectives since the last call.
    public func takeCommunicationTime() -> Double { parallel?.queue.takeBusyTime() ?? 0 }
}
