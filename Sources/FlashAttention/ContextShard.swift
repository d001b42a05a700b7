import FlashCore

/// The global token positions one rank of a context-parallel group holds, as contiguous
/// chunks in local row order: local row 0 is `chunks[0].lowerBound`, and so on.
public struct ContextShard: Sendable, Equatable, Codable {
    /// Global positions, in the order the rank stores them.
    public var chunks: [Range<Int>]

    /// A shard from its chunks (each non-negative; empty chunks are dropped).
    public init(chunks: [Range<Int>]) {
        self.chunks = chunks.filter { !$0.isEmpty }
    }

    /// Tokens the rank holds.
    public var length: Int { chunks.reduce(0) { $0 + $1.count } }

    /// The global position of every local row, in order.
    public var positions: [Int] { chunks.flatMap { Array($0) } }

    /// Zigzag sharding for causal attention: the sequence is cut into 2·ranks chunks as evenly
    /// as possible (lengths differ by at most one) and rank r holds chunks r and 2·ranks−1−r, so
    /// every rank has the same amount of causal work (one early and one late chunk).
    public static func zigzag(sequenceLength: Int, ranks: Int, rank: Int) throws -> ContextShard {
        try check(sequenceLength: sequenceLength, ranks: ranks, rank: rank, pieces: 2 * ranks)
        let cut = { (k: Int) in k * sequenceLength / (2 * ranks) }
        return ContextShard(chunks: [cut(rank)..<cut(rank + 1), cut(2 * ranks - 1 - rank)..<cut(2 * ranks - rank)])
    }

    /// Contiguous sharding: rank r holds the r-th of `ranks` nearly equal pieces.
    public static func contiguous(sequenceLength: Int, ranks: Int, rank: Int) throws -> ContextShard {
        try check(sequenceLength: sequenceLength, ranks: ranks, rank: rank, pieces: ranks)
        return ContextShard(chunks: [(rank * sequenceLength / ranks)..<((rank + 1) * sequenceLength / ranks)])
    }

    private static func check(sequenceLength: Int, ranks: Int, rank: Int, pieces: Int) throws {
        try InvalidArgument.require(ranks > 0, "ranks", expected: "> 0", got: "\(ranks)")
        try InvalidArgument.require(rank >= 0 && rank < ranks, "rank", expected: "in 0..<\(ranks)", got: "\(rank)")
        try InvalidArgument.require(sequenceLength >= pieces, "sequenceLength",
                                    expected: "at least \(pieces) tokens (one per chunk)", got: "\(sequenceLength)")
    }
}
