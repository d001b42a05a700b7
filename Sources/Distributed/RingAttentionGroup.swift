import Foundation
import FlashCore
import FlashAttention

/// Ring attention over real ranks: the ranks of `ring` each hold one `ContextShard` of every
/// sequence, and `forward`/`backward` move K/V blocks (and, in the backward, the dK/dV
/// accumulators) one hop per step around the ring with `Communicator.sendReceive` on a
/// `CollectiveQueue`, while `RingAttention.forwardBlock`/`backwardBlock` compute. Every rank of
/// the ring calls the same methods in the same order with tensors of its own shard's length
/// (shards may differ in length, e.g. zigzag chunks of a sequence that 2C does not divide).
///
/// Step s on ring member i works on the block of member (i − s) mod C. Overlap:
/// - forward: the exchange of the next block runs while the current one is computed;
/// - backward: the K/V exchange for step s + 1 runs during step s's compute, and each visiting
///   block's dK/dV share is computed into a fresh buffer while the accumulator of that block
///   (the sum of the shares of the members it visited before) is still travelling; the two are
///   added once it arrives and sent on during the next step's compute. The owner keeps its own
///   share (step 0) and adds the accumulator that comes home after the last step, so K/V and
///   dK/dV each make C − 1 hops, and only the last accumulator hop is not hidden.
///
/// Exchanged buffers are reused between calls (one layer after another), so a ring is not for
/// concurrent use; the tensors it returns are its own.
public final class RingAttentionGroup {
    public let communicator: Communicator
    let queue: CollectiveQueue
    /// World ranks of the ring, in ring order; this rank is `ring[index]`.
    public let ring: [Int]
    public let index: Int
    /// Every ring member's shard of the sequence.
    public let shards: [ContextShard]

    /// Double buffers for K/V in flight, the two dK/dV shares being sent, and the arriving accumulator.
    private var keyValue: [TensorStorage] = []
    private var shares: [TensorStorage] = []
    private var arriving: TensorStorage?

    /// A ring over the world ranks `ring` (this rank among them), member i holding `shards[i]`.
    /// `queue` is the communication thread shared with anything else the ranks communicate
    /// (e.g. gradient buckets), so every rank issues its MPI calls in one order.
    public init(communicator: Communicator, queue: CollectiveQueue, ring: [Int], shards: [ContextShard]) throws {
        guard let index = ring.firstIndex(of: communicator.rank) else {
            throw InvalidArgument("ring", expected: "the ranks of a ring including this rank (\(communicator.rank))", got: "\(ring)")
        }
        try InvalidArgument.require(shards.count == ring.count, "shards", expected: "one per ring member (\(ring.count))", got: "\(shards.count)")
        try InvalidArgument.require(Set(ring).count == ring.count && ring.allSatisfy { (0..<communicator.size).contains($0) }, "ring",
                                    expected: "distinct ranks in 0..<\(communicator.size)", got: "\(ring)")
        self.communicator = communicator
        self.queue = queue
        self.ring = ring
        self.index = index
        self.shards = shards
    }

    /// This rank's shard.
    public var shard: ContextShard { shards[index] }

    var next: Int { ring[(index + 1) % ring.count] }
    var previous: Int { ring[(index + ring.count - 1) % ring.count] }
    /// The member whose block this rank holds at `step`.
    func owner(_ step: Int) -> Int { (index - step + 2 * ring.count) % ring.count }

    /// Ring attention forward: O [B, n, Hq, D] and LSE [B, Hq, n] over the whole sequence for
    /// this rank's queries (`query` [B, n, Hq, D], `key`/`value` [B, n, Hkv, D], n = its shard's length).
    public func forward(query: Tensor, key: Tensor, value: Tensor, descriptor: AttentionDescriptor) throws -> (output: Tensor, logSumExp: Tensor) {
        try check(query: query, key: key, value: value)
        let (output, lse) = try RingAttention.makeAccumulators(queryShape: query.shape)
        let c = ring.count
        if c > 1 { try prepare(key) }
        var current = 0
        if c > 1 { pack(key, value, into: keyValue[0]) }
        for step in 0..<c {
            let j = owner(step)
            let ticket = step < c - 1
                ? exchange(keyValue[current], count: 2 * floats(j, key), into: keyValue[1 - current], count: 2 * floats(owner(step + 1), key))
                : nil
            let (k, v) = step == 0 ? (key, value) : views(keyValue[current], j, key)
            try RingAttention.forwardBlock(query: query, queryShard: shard, key: k, value: v, keyShard: shards[j],
                                           descriptor: descriptor, output: output, logSumExp: lse)
            if let ticket {
                try queue.wait(for: ticket)
                current = 1 - current
            }
        }
        return (output, lse)
    }

    /// Ring attention backward, given the final `output` and `logSumExp` of `forward`: dQ for
    /// this rank's queries and dK/dV for its keys and values (every member's share, summed).
    public func backward(query: Tensor, key: Tensor, value: Tensor, output: Tensor, logSumExp: Tensor, outputGradient: Tensor,
                         descriptor: AttentionDescriptor) throws -> AttentionGradients {
        try check(query: query, key: key, value: value)
        let queryGradient = try Tensor(zeros: query.shape)
        let keyGradient = try Tensor(zeros: key.shape), valueGradient = try Tensor(zeros: value.shape)
        let c = ring.count
        var kvTicket: Int?
        var current = 0
        if c > 1 {
            try prepare(key)
            pack(key, value, into: keyValue[0])
            kvTicket = exchange(keyValue[0], count: 2 * floats(index, key), into: keyValue[1], count: 2 * floats(owner(1), key))
        }
        // Step 0: this rank's own block; its share stays here.
        try RingAttention.backwardBlock(query: query, queryShard: shard, key: key, value: value, keyShard: shard,
                                        output: output, logSumExp: logSumExp, outputGradient: outputGradient, descriptor: descriptor,
                                        queryGradient: queryGradient, keyGradient: keyGradient, valueGradient: valueGradient)
        var accumulatorTicket: Int?
        for step in 1..<max(c, 1) {
            try queue.wait(for: kvTicket!)  // block owner(step) has arrived
            current = 1 - current
            let j = owner(step), n = floats(j, key)
            kvTicket = step < c - 1
                ? exchange(keyValue[current], count: 2 * n, into: keyValue[1 - current], count: 2 * floats(owner(step + 1), key))
                : nil
            // This step's share, into a buffer not in flight (the one sent two steps ago has arrived).
            let share = shares[step % 2]
            let sharePointer = share.pointer.assumingMemoryBound(to: Float.self)
            sharePointer.update(repeating: 0, count: 2 * n)
            let (k, v) = views(keyValue[current], j, key)
            let (dK, dV) = views(share, j, key)
            try RingAttention.backwardBlock(query: query, queryShard: shard, key: k, value: v, keyShard: shards[j],
                                            output: output, logSumExp: logSumExp, outputGradient: outputGradient, descriptor: descriptor,
                                            queryGradient: queryGradient, keyGradient: dK, valueGradient: dV)
            let arrivingPointer = arriving!.pointer.assumingMemoryBound(to: Float.self)
            if let accumulatorTicket {  // the shares of the members block j visited before this one
                try queue.wait(for: accumulatorTicket)
                VectorMath.add(arrivingPointer, to: sharePointer, count: 2 * n)
            }
            // Sent on to the next member; at the last step that is block j's owner. What arrives
            // is the accumulator of the block this rank works on next (its own after the last step).
            accumulatorTicket = exchange(share, count: 2 * n, into: arriving!, count: 2 * floats(owner(step + 1), key))
        }
        if let accumulatorTicket {
            try queue.wait(for: accumulatorTicket)
            let home = arriving!.pointer.assumingMemoryBound(to: Float.self), n = key.elementCount
            VectorMath.add(home, to: keyGradient.floatPointer, count: n)
            VectorMath.add(home + n, to: valueGradient.floatPointer, count: n)
        }
        return AttentionGradients(query: queryGradient, key: keyGradient, value: valueGradient)
    }

    // MARK: buffers and messages

    func check(query: Tensor, key: Tensor, value: Tensor) throws {
        let n = shard.length
        try InvalidArgument.require(query.rank == 4 && key.rank == 4 && value.rank == 4 && key.shape == value.shape
                                    && query.shape[1] == n && key.shape[1] == n && query.shape[0] == key.shape[0],
                                    "query/key/value", expected: "[B, \(n), H, D] tensors (this rank's shard of \(n) tokens)",
                                    got: "\(query.shape), \(key.shape), \(value.shape)")
        try InvalidArgument.require(key.elementType == .float32 && value.elementType == .float32, "key/value",
                                    expected: "Float32", got: "\(key.elementType), \(value.elementType)")
    }

    /// Floats of one K (or V) block of member `member`, for tensors shaped like `key` but for that member's length.
    func floats(_ member: Int, _ key: Tensor) -> Int { key.shape[0] * shards[member].length * key.shape[2] * key.shape[3] }

    /// Makes the buffers large enough for the longest member's block.
    func prepare(_ key: Tensor) throws {
        let longest = (0..<ring.count).map { floats($0, key) }.max()!
        let bytes = 2 * longest * 4
        if keyValue.isEmpty || keyValue[0].byteCount < bytes {
            keyValue = [TensorStorage(byteCount: bytes), TensorStorage(byteCount: bytes)]
            shares = [TensorStorage(byteCount: bytes), TensorStorage(byteCount: bytes)]
            arriving = TensorStorage(byteCount: bytes)
        }
    }

    /// K then V of `member`'s block as contiguous views of `storage`.
    func views(_ storage: TensorStorage, _ member: Int, _ key: Tensor) -> (Tensor, Tensor) {
        let shape = [key.shape[0], shards[member].length, key.shape[2], key.shape[3]]
        let strides = Tensor.contiguousStrides(shape), n = floats(member, key)
        return (Tensor(storage: storage, elementType: .float32, shape: shape, strides: strides, offset: 0),
                Tensor(storage: storage, elementType: .float32, shape: shape, strides: strides, offset: n))
    }

    /// Copies `key` then `value` (Float32, any strides) contiguously into `storage`, a token's
    /// heads at a time when they are contiguous (the model's fused QKV rows).
    func pack(_ key: Tensor, _ value: Tensor, into storage: TensorStorage) {
        var destination = storage.pointer.assumingMemoryBound(to: Float.self)
        for t in [key, value] {
            let (b, n, h, d) = (t.shape[0], t.shape[1], t.shape[2], t.shape[3])
            if t.strides[3] == 1 && t.strides[2] == d {
                let source = t.floatPointer
                for s in 0..<b {
                    for i in 0..<n {
                        (destination + (s * n + i) * h * d).update(from: source + s * t.strides[0] + i * t.strides[1], count: h * d)
                    }
                }
            } else {
                var i = 0
                t.forEachOffset { destination[i] = t.load(at: $0); i += 1 }
            }
            destination += t.elementCount
        }
    }

    /// Queues one ring hop: `send` to the next member while receiving from the previous one.
    func exchange(_ send: TensorStorage, count sendCount: Int, into receive: TensorStorage, count receiveCount: Int) -> Int {
        let (communicator, next, previous) = (self.communicator, self.next, self.previous)
        let source = UnsafePointer(send.pointer.assumingMemoryBound(to: Float.self))
        let target = receive.pointer.assumingMemoryBound(to: Float.self)
        return queue.enqueue {
            // The storages outlive the hop: the ring holds them and waits for every ticket.
            try communicator.sendReceive(source, count: sendCount, to: next, into: target, count: receiveCount, from: previous)
        }
    }
}
