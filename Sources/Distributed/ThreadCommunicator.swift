import Foundation

/// Ranks as threads of one process, for tests: every collective posts this rank's buffer,
/// meets the others at a barrier, computes its own result from everyone's buffers (sums in
/// rank order 0, 1, …, so results are deterministic), and meets them again before returning.
///
/// As with MPI, each rank's communicator runs one collective at a time (its thread, or a
/// `CollectiveQueue`'s after the owner waits for it): the group's barrier counts one arrival
/// per rank, and a rank's slot holds one posted buffer.
public final class ThreadCommunicator: Communicator, @unchecked Sendable {
    /// The state the ranks of one group share.
    final class Group: @unchecked Sendable {
        let size: Int
        let condition = NSCondition()
        var arrived = 0
        var generation = 0
        /// One posted buffer per rank (raw memory, not a Swift array: ranks write their own
        /// slots concurrently).
        let slots: UnsafeMutablePointer<UnsafeMutableRawPointer?>

        init(size: Int) {
            self.size = size
            slots = .allocate(capacity: size)
            slots.initialize(repeating: nil, count: size)
        }

        deinit { slots.deallocate() }

        func barrier() {
            condition.lock()
            defer { condition.unlock() }
            let generation = self.generation
            arrived += 1
            if arrived == size {
                arrived = 0
                self.generation += 1
                condition.broadcast()
            } else {
                while generation == self.generation { condition.wait() }
            }
        }
    }

    let group: Group
    public let rank: Int
    public var size: Int { group.size }

    init(group: Group, rank: Int) {
        self.group = group
        self.rank = rank
    }

    /// `size` communicators of one group; give each to its own thread.
    public static func group(size: Int) -> [ThreadCommunicator] {
        precondition(size > 0, "a group needs at least one rank")
        let group = Group(size: size)
        return (0..<size).map { ThreadCommunicator(group: group, rank: $0) }
    }

    /// Runs `body(communicator)` on `size` threads at once and returns their results in rank
    /// order (rethrowing the first error).
    public static func run<T>(size: Int, _ body: @escaping (ThreadCommunicator) throws -> T) throws -> [T] {
        let communicators = group(size: size)
        // One slot per rank, each written by its own thread only, read after they all finish.
        let results = RankSlots<Result<T, Error>?>(pointer: .allocate(capacity: size))
        results.pointer.initialize(repeating: nil, count: size)
        defer { results.pointer.deinitialize(count: size); results.pointer.deallocate() }
        let done = DispatchGroup()
        for c in communicators {
            done.enter()
            let thread = Thread {
                results.pointer[c.rank] = Result { try body(c) }
                done.leave()
            }
            thread.stackSize = 8 << 20
            thread.start()
        }
        done.wait()
        return try (0..<size).map { try results.pointer[$0]!.get() }
    }

    /// Posts `pointer`, waits for all, runs `body` with everyone's pointers, waits for all.
    private func collective(_ pointer: UnsafeRawPointer, _ body: (UnsafeMutablePointer<UnsafeMutableRawPointer?>) -> Void) {
        group.slots[rank] = UnsafeMutableRawPointer(mutating: pointer)
        group.barrier()
        body(group.slots)
        group.barrier()
    }

    private func sum<T: FloatingPoint>(_ buffer: UnsafeMutablePointer<T>, count: Int) {
        let result = UnsafeMutablePointer<T>.allocate(capacity: max(count, 1))
        defer { result.deallocate() }
        collective(buffer) { slots in
            for i in 0..<count {
                var s = T.zero
                for r in 0..<size { s += slots[r]!.assumingMemoryBound(to: T.self)[i] }
                result[i] = s
            }
        }
        buffer.update(from: result, count: count)  // after the second barrier: nobody reads it any more
    }

    public func allReduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws { sum(buffer, count: count) }

    public func allReduceSum(_ buffer: UnsafeMutablePointer<Double>, count: Int) throws { sum(buffer, count: count) }

    public func reduceScatterSum(_ send: UnsafePointer<Float>, into receive: UnsafeMutablePointer<Float>, countPerRank: Int) throws {
        collective(send) { slots in
            for i in 0..<countPerRank {
                var s: Float = 0
                for r in 0..<size { s += slots[r]!.assumingMemoryBound(to: Float.self)[rank * countPerRank + i] }
                receive[i] = s
            }
        }
    }

    public func allGather(_ send: UnsafePointer<Float>, into receive: UnsafeMutablePointer<Float>, countPerRank: Int) throws {
        collective(send) { slots in
            for r in 0..<size {
                (receive + r * countPerRank).update(from: slots[r]!.assumingMemoryBound(to: Float.self), count: countPerRank)
            }
        }
    }

    public func broadcast(_ buffer: UnsafeMutableRawPointer, bytes: Int, root: Int) throws {
        collective(buffer) { slots in
            if rank != root { buffer.copyMemory(from: slots[root]!, byteCount: bytes) }
        }
    }

    public func sendReceive(_ send: UnsafePointer<Float>, count sendCount: Int, to destination: Int,
                            into receive: UnsafeMutablePointer<Float>, count receiveCount: Int, from source: Int) throws {
        collective(send) { slots in
            receive.update(from: slots[source]!.assumingMemoryBound(to: Float.self), count: receiveCount)
        }
    }

    public func barrier() throws { group.barrier() }
}

/// Per-rank result slots shared with the threads of `ThreadCommunicator.run`: each thread
/// writes only its own slot, and the caller reads them after every thread has finished.
private struct RankSlots<Element>: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Element>
}
