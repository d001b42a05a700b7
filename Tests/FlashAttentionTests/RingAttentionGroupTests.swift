import XCTest
import FlashCore
import FlashAttention
import Distributed

/// Ring attention over ranks that communicate (`RingAttentionGroup`: K/V blocks and dK/dV
/// accumulators sent around the ring with `sendReceive` on a communication thread, the
/// backward's hops overlapped with compute), against the Float64 reference with
/// FlashAttention's 2× rule. Each rank holds only its shard's rows; the results are all-gathered
/// and reassembled in global order before the check.
///
/// In `swift test` the ranks are threads (`ThreadCommunicator`, rings of 2, 3 and 4). Launched by
/// `mpirun` (scripts/test_mpi.sh runs this class alone with -np 2 and -np 4), the ranks are the
/// MPI world and every rank checks the reassembled results; a failure makes that rank exit
/// non-zero, and so mpirun.
final class RingAttentionGroupTests: XCTestCase {
    /// The MPI world when launched by mpirun (initialised once per process), else nil.
    static let world: MPICommunicator? = {
        do { return try MPICommunicator.worldIfLaunched() } catch { fatalError("MPI: \(error)") }
    }()

    override class func tearDown() {
        world?.finalize()
        super.tearDown()
    }

    typealias Sharding = RingAttentionTests.Sharding

    /// Causal (zigzag) and not, GQA, lengths that 2C does not divide, tiled-kernel lengths.
    static let cases: [(AttentionCase, Sharding)] = [
        (AttentionCase(batch: 2, queryLength: 48, keyLength: 48, queryHeads: 2, keyHeads: 2, headDim: 16, causal: true), .zigzag),
        (AttentionCase(batch: 1, queryLength: 37, keyLength: 37, queryHeads: 4, keyHeads: 2, headDim: 16, causal: true, seed: 3), .zigzag),
        (AttentionCase(batch: 1, queryLength: 101, keyLength: 101, queryHeads: 2, keyHeads: 1, headDim: 32, causal: true, seed: 5), .zigzag),
        (AttentionCase(batch: 2, queryLength: 29, keyLength: 29, queryHeads: 4, keyHeads: 1, headDim: 16, seed: 9), .contiguous),
        (AttentionCase(batch: 1, queryLength: 30, keyLength: 30, queryHeads: 2, keyHeads: 1, headDim: 16, causal: true, softcap: 5, seed: 7),
         .contiguous),
    ]

    /// O, LSE, dQ, dK, dV over the whole sequence, in global order.
    struct Results { var output, logSumExp, query, key, value: [Float] }

    /// Runs `c` as one ring over all of `communicator`'s ranks.
    static func run(_ c: AttentionCase, _ sharding: Sharding, on communicator: Communicator) throws -> Results {
        let inputs = try AttentionInputs(c)
        let ranks = communicator.size, n = c.queryLength
        let shards = try (0..<ranks).map { r in
            sharding == .zigzag ? try ContextShard.zigzag(sequenceLength: n, ranks: ranks, rank: r)
                                : try ContextShard.contiguous(sequenceLength: n, ranks: ranks, rank: r)
        }
        let group = try RingAttentionGroup(communicator: communicator, queue: CollectiveQueue(), ring: Array(0..<ranks), shards: shards)
        let positions = group.shard.positions
        let (q, k, v, dO) = (try RingAttentionTests.gather(inputs.query, positions), try RingAttentionTests.gather(inputs.key, positions),
                             try RingAttentionTests.gather(inputs.value, positions),
                             try RingAttentionTests.gather(inputs.outputGradient, positions))
        var descriptor = inputs.descriptor
        descriptor.implementation = .flash
        let forward = try group.forward(query: q, key: k, value: v, descriptor: descriptor)
        let gradients = try group.backward(query: q, key: k, value: v, output: forward.output, logSumExp: forward.logSumExp,
                                           outputGradient: dO, descriptor: descriptor)

        // All-gather every rank's rows (padded to the longest shard), then put them in place.
        let longest = shards.map(\.length).max()!
        func reassemble(_ local: Tensor, lse: Bool = false) throws -> [Float] {
            let perRow = local.elementCount / positions.count
            var send = local.floats()
            send += [Float](repeating: 0, count: perRow * longest - send.count)
            var receive = [Float](repeating: 0, count: ranks * perRow * longest)
            try receive.withUnsafeMutableBufferPointer { r in
                try communicator.allGather(send, into: r.baseAddress!, countPerRank: perRow * longest)
            }
            var global = [Float](repeating: .nan, count: perRow * n)
            for (rank, shard) in shards.enumerated() {
                let start = rank * perRow * longest
                var shape = local.shape
                shape[lse ? 2 : 1] = shard.length
                let rows = try Tensor(shape: shape, values: Array(receive[start..<(start + perRow * shard.length)]))
                RingAttentionTests.scatter(rows, shard.positions, into: &global, length: n, lse: lse)
            }
            return global
        }
        return Results(output: try reassemble(forward.output), logSumExp: try reassemble(forward.logSumExp, lse: true),
                       query: try reassemble(gradients.query), key: try reassemble(gradients.key),
                       value: try reassemble(gradients.value))
    }

    func check(_ results: Results, _ c: AttentionCase, _ label: String, file: StaticString = #filePath, line: UInt = #line) throws {
        try assertMatchesFullAttention(output: results.output, logSumExp: results.logSumExp, query: results.query, key: results.key,
                                       value: results.value, inputs: try AttentionInputs(c), c, label, file: file, line: line)
    }

    func testRingAttentionOverRanksEqualsFullAttention() throws {
        if let world = Self.world {
            print("ring attention over \(world.size) MPI ranks (this is rank \(world.rank))")
            for (c, sharding) in Self.cases {
                try check(try Self.run(c, sharding, on: world), c, "MPI rank \(world.rank) of \(world.size), \(sharding)")
            }
            return
        }
        for ranks in [2, 3, 4] {
            for (c, sharding) in Self.cases {
                let results = try ThreadCommunicator.run(size: ranks) { try Self.run(c, sharding, on: $0) }
                for (rank, result) in results.enumerated() {
                    try check(result, c, "\(ranks) threads, rank \(rank), \(sharding)")
                }
            }
        }
    }

    func testRingRefusesBadGroups() throws {
        let shards = try (0..<2).map { try ContextShard.contiguous(sequenceLength: 8, ranks: 2, rank: $0) }
        let refusals = try ThreadCommunicator.run(size: 2) { communicator -> [String?] in
            func argument(_ body: () throws -> Void) -> String? {
                do { try body(); return nil } catch { return (error as? InvalidArgument)?.argument ?? "\(error)" }
            }
            // Rank 1 is not in the ring; rank 0 is, but with two shards for one member.
            let membership = argument { _ = try RingAttentionGroup(communicator: communicator, queue: CollectiveQueue(), ring: [0], shards: shards) }
            let group = try RingAttentionGroup(communicator: communicator, queue: CollectiveQueue(), ring: [0, 1], shards: shards)
            let wrong = try Tensor(zeros: [1, 5, 1, 8])
            let shape = argument { _ = try group.forward(query: wrong, key: wrong, value: wrong, descriptor: AttentionDescriptor()) }
            return [membership, shape]
        }
        XCTAssertEqual(refusals, [["shards", "query/key/value"], ["ring", "query/key/value"]])
    }
}
