import FlashCore

/// Keys and values of every layer for the positions processed so far, for generation one
/// token at a time. Keys are stored after rotary rotation, so cached positions keep theirs.
public final class KVCache {
    /// Per layer, [1, capacity, kvHeads, headDim].
    public let keys: [Tensor]
    /// Per layer, [1, capacity, kvHeads, headDim].
    public let values: [Tensor]
    /// Positions the cache can hold.
    public let capacity: Int
    /// Positions filled so far.
    public internal(set) var length = 0

    /// An empty cache for `capacity` positions of a model shaped like `config`; throws
    /// `InvalidArgument` unless `capacity` is positive.
    public init(config: TransformerConfig, capacity: Int) throws {
        try InvalidArgument.require(capacity > 0, "capacity", expected: "> 0", got: "\(capacity)")
        let shape = [1, capacity, config.kvHeads, config.headDim]
        keys = try (0..<config.layers).map { _ in try Tensor(zeros: shape) }
        values = try (0..<config.layers).map { _ in try Tensor(zeros: shape) }
        self.capacity = capacity
    }

    /// Forgets every position (the memory is reused).
    public func reset() { length = 0 }
}
