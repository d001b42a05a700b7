import XCTest
import FlashCore
import FlashAttention

/// Ring attention over simulated ranks (no MPI): every rank's queries meet every rank's K/V
/// block in ring order, dK/dV accumulate at the block's owner, and the reassembled O, LSE,
/// dQ, dK, dV must meet FlashAttention's 2× rule against the Float64 reference.
final class RingAttentionTests: XCTestCase {
    enum Sharding { case zigzag, contiguous }

    /// Rows of `tensor` ([B, N, H, D]) at `positions`, as a contiguous [B, n, H, D] tensor.
    static func gather(_ tensor: Tensor, _ positions: [Int]) throws -> Tensor {
        let (b, h, d) = (tensor.shape[0], tensor.shape[2], tensor.shape[3])
        let full = tensor.floats(), width = h * d, n = tensor.shape[1]
        var values = [Float]()
        for s in 0..<b { for p in positions { values += full[((s * n + p) * width)..<((s * n + p + 1) * width)] } }
        return try Tensor(shape: [b, positions.count, h, d], values: values)
    }

    /// Writes a local [B, n, H, D] (or LSE [B, H, n] with `lse`) back at the global positions.
    static func scatter(_ local: Tensor, _ positions: [Int], into global: inout [Float], length: Int, lse: Bool = false) {
        let values = local.floats()
        if lse {
            let (b, h, n) = (local.shape[0], local.shape[1], local.shape[2])
            for s in 0..<b { for k in 0..<h { for (i, p) in positions.enumerated() {
                global[(s * h + k) * length + p] = values[(s * h + k) * n + i]
            }}}
        } else {
            let (b, n, width) = (local.shape[0], local.shape[1], local.shape[2] * local.shape[3])
            for s in 0..<b { for (i, p) in positions.enumerated() {
                for e in 0..<width { global[(s * length + p) * width + e] = values[(s * n + i) * width + e] }
            }}
        }
    }

    func checkRing(_ c: AttentionCase, ranks: Int, sharding: Sharding, file: StaticString = #filePath, line: UInt = #line) throws {
        precondition(c.queryLength == c.keyLength)
        let inputs = try AttentionInputs(c)
        let n = c.queryLength
        let shards = try (0..<ranks).map { r in
            sharding == .zigzag ? try ContextShard.zigzag(sequenceLength: n, ranks: ranks, rank: r)
                                : try ContextShard.contiguous(sequenceLength: n, ranks: ranks, rank: r)
        }
        XCTAssertEqual(shards.flatMap(\.positions).sorted(), Array(0..<n))
        let q = try shards.map { try Self.gather(inputs.query, $0.positions) }
        let k = try shards.map { try Self.gather(inputs.key, $0.positions) }
        let v = try shards.map { try Self.gather(inputs.value, $0.positions) }
        let dO = try shards.map { try Self.gather(inputs.outputGradient, $0.positions) }
        var descriptor = inputs.descriptor
        descriptor.implementation = .flash

        // Forward: at step s rank r holds the block that started on rank (r − s) mod C.
        var outputs: [(output: Tensor, logSumExp: Tensor)] = []
        for r in 0..<ranks {
            let accumulators = try RingAttention.makeAccumulators(queryShape: q[r].shape)
            for step in 0..<ranks {
                let source = (r - step + ranks) % ranks
                try RingAttention.forwardBlock(query: q[r], queryShard: shards[r], key: k[source], value: v[source],
                                               keyShard: shards[source], descriptor: descriptor,
                                               output: accumulators.output, logSumExp: accumulators.logSumExp)
            }
            outputs.append(accumulators)
        }
        // Backward: dQ stays home; a block's dK/dV go back to its owner.
        let dQ = try q.map { try Tensor(zeros: $0.shape) }
        let dK = try k.map { try Tensor(zeros: $0.shape) }
        let dV = try v.map { try Tensor(zeros: $0.shape) }
        for r in 0..<ranks {
            for step in 0..<ranks {
                let source = (r - step + ranks) % ranks
                try RingAttention.backwardBlock(
                    query: q[r], queryShard: shards[r], key: k[source], value: v[source], keyShard: shards[source],
                    output: outputs[r].output, logSumExp: outputs[r].logSumExp, outputGradient: dO[r], descriptor: descriptor,
                    queryGradient: dQ[r], keyGradient: dK[source], valueGradient: dV[source])
            }
        }
        var o = [Float](repeating: .nan, count: inputs.query.elementCount), lse = [Float](repeating: .nan, count: c.batch * c.queryHeads * n)
        var gq = o, gk = [Float](repeating: .nan, count: inputs.key.elementCount), gv = gk
        for r in 0..<ranks {
            let positions = shards[r].positions
            Self.scatter(outputs[r].output, positions, into: &o, length: n)
            Self.scatter(outputs[r].logSumExp, positions, into: &lse, length: n, lse: true)
            Self.scatter(dQ[r], positions, into: &gq, length: n)
            Self.scatter(dK[r], positions, into: &gk, length: n)
            Self.scatter(dV[r], positions, into: &gv, length: n)
        }

        try assertMatchesFullAttention(output: o, logSumExp: lse, query: gq, key: gk, value: gv, inputs: inputs, c,
                                       "ring C=\(ranks) \(sharding)", file: file, line: line)
    }

    func testCausalZigzag() throws {
        for ranks in [1, 2, 4] {
            try checkRing(AttentionCase(batch: 2, queryLength: 48, keyLength: 48, queryHeads: 2, keyHeads: 2, headDim: 16, causal: true),
                          ranks: ranks, sharding: .zigzag)
        }
    }

    func testCausalZigzagUnevenLengthsAndGQA() throws {
        // 37 tokens in 8 chunks of 4 or 5; 4 query heads share 2 key/value heads.
        try checkRing(AttentionCase(batch: 1, queryLength: 37, keyLength: 37, queryHeads: 4, keyHeads: 2, headDim: 16, causal: true, seed: 3),
                      ranks: 4, sharding: .zigzag)
        // 3 ranks, 101 tokens: chunks longer than the decode kernel's 16 queries, so the tiled kernels run.
        try checkRing(AttentionCase(batch: 1, queryLength: 101, keyLength: 101, queryHeads: 2, keyHeads: 1, headDim: 32, causal: true, seed: 5),
                      ranks: 3, sharding: .zigzag)
    }

    func testCausalContiguous() throws {
        try checkRing(AttentionCase(batch: 2, queryLength: 30, keyLength: 30, queryHeads: 2, keyHeads: 1, headDim: 16, causal: true, seed: 7),
                      ranks: 3, sharding: .contiguous)
    }

    func testNonCausalAndSoftcap() throws {
        try checkRing(AttentionCase(batch: 2, queryLength: 29, keyLength: 29, queryHeads: 2, keyHeads: 2, headDim: 16, seed: 9),
                      ranks: 3, sharding: .contiguous)
        try checkRing(AttentionCase(batch: 1, queryLength: 40, keyLength: 40, queryHeads: 4, keyHeads: 1, headDim: 16, softcap: 5, seed: 11),
                      ranks: 2, sharding: .zigzag)
    }

    func testZigzagChunks() throws {
        // 10 tokens on 2 ranks: chunks [0,2) [2,5) [5,7) [7,10); rank 0 holds the first and last.
        XCTAssertEqual(try ContextShard.zigzag(sequenceLength: 10, ranks: 2, rank: 0).chunks, [0..<2, 7..<10])
        XCTAssertEqual(try ContextShard.zigzag(sequenceLength: 10, ranks: 2, rank: 1).chunks, [2..<5, 5..<7])
        XCTAssertThrowsError(try ContextShard.zigzag(sequenceLength: 3, ranks: 2, rank: 0))
    }

    func testUnsupportedOptionsAreRefused() throws {
        let q = try Tensor(zeros: [1, 4, 1, 8])
        let shard = try ContextShard.contiguous(sequenceLength: 8, ranks: 2, rank: 0)
        let (o, lse) = try RingAttention.makeAccumulators(queryShape: q.shape)
        XCTAssertThrowsError(try RingAttention.forwardBlock(query: q, queryShard: shard, key: q, value: q, keyShard: shard,
                                                            descriptor: AttentionDescriptor(windowLeft: 2), output: o, logSumExp: lse)) {
            XCTAssertEqual(($0 as? InvalidArgument)?.argument, "descriptor.windowLeft")
        }
    }
}
