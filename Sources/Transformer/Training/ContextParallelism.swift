import Foundation
import FlashCore
import FlashAttention
import Distributed

/// Context parallelism: each sequence is split over a ring of C ranks in zigzag order
/// (`ContextShard.zigzag`), and attention is ring attention (`RingAttention`): K/V blocks
/// travel around the ring, each rank attends its queries to every block and merges by LSE; in
/// the backward the dK/dV accumulators travel after their blocks and arrive back at their owner
/// (`RingAttentionGroup`, which also says what overlaps what).
/// Everything else in the model is per token, so it runs on the shard unchanged, with each
/// token's global position (rotary, learned positions).
///
/// The ring exchanges go through the same `CollectiveQueue` as the data-parallel gradient
/// buckets, so every rank issues its MPI calls in one order (a bucket reduction and a ring
/// step never cross between ranks).
public final class ContextParallelism {
    /// The ring of this rank's context-parallel group.
    let group: RingAttentionGroup
    /// Global positions of this rank's rows of each sequence.
    public let positions: [Int]

    /// The ring of `size` ranks starting at world rank `first` (this rank among them), for
    /// sequences of `sequenceLength` tokens (a multiple of 2·size, so every shard is as long).
    init(communicator: Communicator, queue: CollectiveQueue, first: Int, size: Int, sequenceLength: Int) throws {
        try InvalidArgument.require(sequenceLength % (2 * size) == 0, "--context",
                                    expected: "a multiple of 2 × --context-parallel (\(2 * size))", got: "\(sequenceLength)")
        let shards = try (0..<size).map { try ContextShard.zigzag(sequenceLength: sequenceLength, ranks: size, rank: $0) }
        group = try RingAttentionGroup(communicator: communicator, queue: queue, ring: Array(first..<(first + size)), shards: shards)
        positions = group.shard.positions
    }

    /// Ring attention forward: O and LSE over the whole sequence for this rank's queries.
    func forward(query: Tensor, key: Tensor, value: Tensor, descriptor: AttentionDescriptor) throws -> (output: Tensor, logSumExp: Tensor) {
        try group.forward(query: query, key: key, value: value, descriptor: descriptor)
    }

    /// Ring attention backward: dQ for this rank's queries, dK/dV for its keys and values
    /// (every group member's share, summed at this rank).
    func backward(query: Tensor, key: Tensor, value: Tensor, output: Tensor, logSumExp: Tensor, outputGradient: Tensor,
                  descriptor: AttentionDescriptor) throws -> AttentionGradients {
        try group.backward(query: query, key: key, value: value, output: output, logSumExp: logSumExp,
                           outputGradient: outputGradient, descriptor: descriptor)
    }
}
