import Foundation
import FlashCore
import FlashAttention
import Distributed

/// Context parallelism: each sequence is split over a ring of C ranks in zigzag order
/// (`ContextShard.zigzag`), and attention is ring attention (`RingAttention`): K/V blocks
/// travel around the ring, each rank attends its queries to every block and merges by LSE; in
/// the backward the dK/dV accumulators travel with their blocks and arrive back at their owner.
/// Everything else in the model is per token, so it runs on the shard unchanged, with each
/// token's global position (rotary, learned positions).
///
/// The ring exchanges go through the same `CollectiveQueue` as the data-parallel gradient
/// buckets, so every rank issues its MPI calls in one order (a bucket reduction and a ring
/// step never cross between ranks). In the forward the next block's exchange runs on that
/// thread while the current block is computed.
public final class ContextParallelism {
    let communicator: Communicator
    let queue: CollectiveQueue
    /// World ranks of the ring, in ring order; this rank is `ring[index]`.
    let ring: [Int]
    let index: Int
    /// Every ring member's shard (equal lengths).
    let shards: [ContextShard]
    /// Global positions of this rank's rows of each sequence.
    public let positions: [Int]

    /// The ring of `size` ranks starting at world rank `first` (this rank among them), for
    /// sequences of `sequenceLength` tokens (a multiple of 2·size, so every shard is as long).
    init(communicator: Communicator, queue: CollectiveQueue, first: Int, size: Int, sequenceLength: Int) throws {
        try InvalidArgument.require(sequenceLength % (2 * size) == 0, "--context",
                                    expected: "a multiple of 2 × --context-parallel (\(2 * size))", got: "\(sequenceLength)")
        self.communicator = communicator
        self.queue = queue
        ring = Array(first..<(first + size))
        index = communicator.rank - first
        shards = try (0..<size).map { try ContextShard.zigzag(sequenceLength: sequenceLength, ranks: size, rank: $0) }
        positions = shards[index].positions
    }

    var next: Int { ring[(index + 1) % ring.count] }
    var previous: Int { ring[(index + ring.count - 1) % ring.count] }

    /// Copies tensors into one contiguous Float32 buffer (the message of one ring step).
    static func pack(_ tensors: [Tensor], into buffer: UnsafeMutablePointer<Float>) {
        var offset = 0
        for t in tensors {
            var i = 0
            t.forEachOffset { position in
                buffer[offset + i] = t.load(at: position)
                i += 1
            }
            offset += t.elementCount
        }
    }

    /// Contiguous tensors viewing consecutive parts of `storage`.
    static func views(_ storage: TensorStorage, shape: [Int], count: Int) -> [Tensor] {
        let n = shape.reduce(1, *)
        return (0..<count).map {
            Tensor(storage: storage, elementType: .float32, shape: shape, strides: Tensor.contiguousStrides(shape), offset: $0 * n)
        }
    }

    func checkShard(_ query: Tensor) throws {
        try InvalidArgument.require(query.shape[1] == positions.count, "time", expected: "this rank's shard of \(positions.count) tokens",
                                    got: "\(query.shape[1])")
    }

    /// Ring attention forward: O and LSE over the whole sequence for this rank's queries.
    func forward(query: Tensor, key: Tensor, value: Tensor, descriptor: AttentionDescriptor) throws -> (output: Tensor, logSumExp: Tensor) {
        try checkShard(query)
        let (output, lse) = try RingAttention.makeAccumulators(queryShape: query.shape)
        let blockShape = key.shape, n = key.elementCount
        // Double buffering: the block being computed on, and the one arriving.
        var current = TensorStorage(byteCount: 2 * n * 4), arriving = TensorStorage(byteCount: 2 * n * 4)
        Self.pack([key, value], into: current.pointer.assumingMemoryBound(to: Float.self))
        let c = ring.count
        for step in 0..<c {
            if step < c - 1 {
                let send = current.pointer.assumingMemoryBound(to: Float.self)
                let receive = arriving.pointer.assumingMemoryBound(to: Float.self)
                let (next, previous, communicator) = (self.next, self.previous, self.communicator)
                queue.enqueue { try communicator.sendReceive(send, count: 2 * n, to: next, into: receive, count: 2 * n, from: previous) }
            }
            let block = Self.views(current, shape: blockShape, count: 2)
            try RingAttention.forwardBlock(query: query, queryShard: shards[index], key: block[0], value: block[1],
                                           keyShard: shards[(index - step + c) % c], descriptor: descriptor,
                                           output: output, logSumExp: lse)
            if step < c - 1 {
                try queue.wait()
                swap(&current, &arriving)
            }
        }
        return (output, lse)
    }

    /// Ring attention backward: dQ for this rank's queries, dK/dV for its keys and values
    /// (accumulated by every rank as the block went round the ring).
    func backward(query: Tensor, key: Tensor, value: Tensor, output: Tensor, logSumExp: Tensor, outputGradient: Tensor,
                  descriptor: AttentionDescriptor) throws -> AttentionGradients {
        try checkShard(query)
        let queryGradient = try Tensor(zeros: query.shape)
        let blockShape = key.shape, n = key.elementCount
        // The travelling message: K, V, dK, dV of one block.
        var current = TensorStorage(byteCount: 4 * n * 4), arriving = TensorStorage(byteCount: 4 * n * 4)
        let first = current.pointer.assumingMemoryBound(to: Float.self)
        Self.pack([key, value], into: first)
        (first + 2 * n).update(repeating: 0, count: 2 * n)
        let c = ring.count
        for step in 0..<c {
            let block = Self.views(current, shape: blockShape, count: 4)
            try RingAttention.backwardBlock(query: query, queryShard: shards[index], key: block[0], value: block[1],
                                            keyShard: shards[(index - step + c) % c], output: output, logSumExp: logSumExp,
                                            outputGradient: outputGradient, descriptor: descriptor,
                                            queryGradient: queryGradient, keyGradient: block[2], valueGradient: block[3])
            // C hops in all: after the last one every block (and its dK/dV) is back at its owner.
            let send = current.pointer.assumingMemoryBound(to: Float.self)
            let receive = arriving.pointer.assumingMemoryBound(to: Float.self)
            let (next, previous, communicator) = (self.next, self.previous, self.communicator)
            queue.enqueue { try communicator.sendReceive(send, count: 4 * n, to: next, into: receive, count: 4 * n, from: previous) }
            try queue.wait()
            swap(&current, &arriving)
        }
        let block = Self.views(current, shape: blockShape, count: 4)
        return AttentionGradients(query: queryGradient, key: block[2], value: block[3])
    }
}
