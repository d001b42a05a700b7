import Foundation
import FlashCore

/// Ring attention (context parallelism) as block operations: a rank holding the queries of
/// its `ContextShard` attends to one visiting key/value block at a time and merges the
/// partial results; the caller moves the blocks around the ring (in-process, or with a
/// communicator) in any order, since the merge is associative and commutative.
///
/// Forward: each block gives the flash kernel's normalised partial output O_b and log-sum-exp
/// LSE_b over that block's keys; they merge into the running (O, LSE) by
/// LSE = max(a, b) + log1p(exp(−|a − b|)), O = e^(a−LSE)·O_a + e^(b−LSE)·O_b. After every
/// block has visited, (O, LSE) equal full attention over the whole sequence.
///
/// Backward: the flash backward of each (queries, block) pair, given the *final* O and LSE,
/// yields the exact partial dQ and the block's exact partial dK/dV (P_ij = exp(s_ij − LSE_i)
/// and D_i = rowsum(dO_i∘O_i) are global quantities), so dQ sums locally and each block's
/// dK/dV sum up on their way back to the block's owner.
///
/// Causal masking uses global positions: a query at global position p sees keys at global
/// positions ≤ p. Each (query chunk, key chunk) pair is fully visible, invisible, or cut by
/// the diagonal, and the cut case maps onto the kernels' bottom-right alignment by trimming the
/// keys after the last query (and the queries before the first key), so no new kernel
/// parameter is needed.
public enum RingAttention {
    /// One kernel call: local query rows against local key rows of the visiting block.
    struct Piece: Equatable {
        let queryRows: Range<Int>
        let keyRows: Range<Int>
        let causal: Bool
    }

    /// The kernel calls that cover what `queries` may see of `keys`.
    static func pieces(queries: ContextShard, keys: ContextShard, causal: Bool) -> [Piece] {
        guard causal else { return [Piece(queryRows: 0..<queries.length, keyRows: 0..<keys.length, causal: false)] }
        var pieces: [Piece] = []
        var queryBase = 0
        for q in queries.chunks {
            var keyBase = 0
            for k in keys.chunks {
                defer { keyBase += k.count }
                let localQ = { (p: Int) in queryBase + p - q.lowerBound }
                let localK = { (p: Int) in keyBase + p - k.lowerBound }
                if k.lowerBound >= q.upperBound { continue }  // every key is after every query
                if k.upperBound - 1 <= q.lowerBound {  // every query sees every key
                    pieces.append(Piece(queryRows: localQ(q.lowerBound)..<localQ(q.upperBound),
                                        keyRows: localK(k.lowerBound)..<localK(k.upperBound), causal: false))
                    continue
                }
                // Queries before the first key see nothing; keys after the last query are never seen.
                let first = max(q.lowerBound, k.lowerBound)
                let diagonalEnd = min(q.upperBound, k.upperBound)
                // Queries first..<diagonalEnd against keys k.lowerBound..<diagonalEnd: the key count minus
                // the query count is first − k.lowerBound, exactly the bottom-right offset.
                pieces.append(Piece(queryRows: localQ(first)..<localQ(diagonalEnd),
                                    keyRows: localK(k.lowerBound)..<localK(diagonalEnd), causal: true))
                if diagonalEnd < q.upperBound {  // later queries see the whole key chunk
                    pieces.append(Piece(queryRows: localQ(diagonalEnd)..<localQ(q.upperBound),
                                        keyRows: localK(k.lowerBound)..<localK(k.upperBound), causal: false))
                }
            }
            queryBase += q.count
        }
        return pieces
    }

    /// Zeroed output [B, Nq, Hq, D] and an LSE [B, Hq, Nq] of −Inf: the state before any block.
    public static func makeAccumulators(queryShape: [Int]) throws -> (output: Tensor, logSumExp: Tensor) {
        try InvalidArgument.require(queryShape.count == 4, "queryShape", expected: "[B, N, H, D]", got: "\(queryShape)")
        let output = try Tensor(zeros: queryShape)
        let lse = try Tensor(zeros: [queryShape[0], queryShape[2], queryShape[1]])
        lse.floatPointer.update(repeating: -.infinity, count: lse.elementCount)
        return (output, lse)
    }

    /// Attends the local queries (`query` [B, Nq, Hq, D], rows at `queryShard`'s positions) to
    /// one visiting block (`key`/`value` [B, Nk, Hkv, D] at `keyShard`'s positions) and merges
    /// the result into `output` [B, Nq, Hq, D] and `logSumExp` [B, Hq, Nq] (contiguous Float32,
    /// from `makeAccumulators`). Rows that see no key of the block are left as they were.
    public static func forwardBlock(
        query: Tensor, queryShard: ContextShard, key: Tensor, value: Tensor, keyShard: ContextShard,
        descriptor: AttentionDescriptor, output: Tensor, logSumExp: Tensor
    ) throws {
        try validate(query: query, queryShard: queryShard, key: key, value: value, keyShard: keyShard, descriptor: descriptor)
        try requireContiguous(output, "output", shape: query.shape)
        try requireContiguous(logSumExp, "logSumExp", shape: [query.shape[0], query.shape[2], query.shape[1]])
        for piece in pieces(queries: queryShard, keys: keyShard, causal: descriptor.causal) {
            var d = descriptor
            d.causal = piece.causal
            let partial = try Attention.forward(
                query: query.sliced(axis: 1, piece.queryRows), key: key.sliced(axis: 1, piece.keyRows),
                value: value.sliced(axis: 1, piece.keyRows), descriptor: d)
            merge(partial, rows: piece.queryRows, into: output, logSumExp: logSumExp)
        }
    }

    /// The backward of one visiting block: adds the block's share of dQ into `queryGradient`
    /// ([B, Nq, Hq, D]) and of dK/dV into `keyGradient`/`valueGradient` ([B, Nk, Hkv, D]), all
    /// contiguous Float32. `output` and `logSumExp` are the final (fully merged) forward results.
    public static func backwardBlock(
        query: Tensor, queryShard: ContextShard, key: Tensor, value: Tensor, keyShard: ContextShard,
        output: Tensor, logSumExp: Tensor, outputGradient: Tensor, descriptor: AttentionDescriptor,
        queryGradient: Tensor, keyGradient: Tensor, valueGradient: Tensor
    ) throws {
        try validate(query: query, queryShard: queryShard, key: key, value: value, keyShard: keyShard, descriptor: descriptor)
        try requireContiguous(queryGradient, "queryGradient", shape: query.shape)
        try requireContiguous(keyGradient, "keyGradient", shape: key.shape)
        try requireContiguous(valueGradient, "valueGradient", shape: value.shape)
        for piece in pieces(queries: queryShard, keys: keyShard, causal: descriptor.causal) {
            var d = descriptor
            d.causal = piece.causal
            let g = try Attention.backward(
                query: query.sliced(axis: 1, piece.queryRows), key: key.sliced(axis: 1, piece.keyRows),
                value: value.sliced(axis: 1, piece.keyRows), output: output.sliced(axis: 1, piece.queryRows),
                logSumExp: logSumExp.sliced(axis: 2, piece.queryRows),
                outputGradient: outputGradient.sliced(axis: 1, piece.queryRows), descriptor: d)
            add(g.query, into: queryGradient, rows: piece.queryRows)
            add(g.key, into: keyGradient, rows: piece.keyRows)
            add(g.value, into: valueGradient, rows: piece.keyRows)
        }
    }

    /// Merges a partial result (contiguous O [B, n, H, D], LSE [B, H, n]) into rows `rows` of
    /// the accumulators. A partial row with LSE −Inf (no visible key) changes nothing, and an
    /// accumulator row still at −Inf takes the partial as is, so −Inf − (−Inf) never occurs.
    static func merge(_ partial: AttentionOutput, rows: Range<Int>, into output: Tensor, logSumExp: Tensor) {
        let (batch, heads, dim) = (output.shape[0], output.shape[2], output.shape[3])
        let total = output.shape[1], n = rows.count
        let o = output.floatPointer, lse = logSumExp.floatPointer
        let po = contiguousFloats(partial.output), plse = contiguousFloats(partial.logSumExp)
        // The copies must outlive the raw pointers taken from them.
        withExtendedLifetime((po, plse)) {
            let p = po.floatPointer, pl = plse.floatPointer
            for b in 0..<batch {
                for h in 0..<heads {
                    for i in 0..<n {
                        let bLSE = pl[(b * heads + h) * n + i]
                        if bLSE == -.infinity { continue }
                        let lseIndex = (b * heads + h) * total + rows.lowerBound + i
                        let aLSE = lse[lseIndex]
                        let target = o + ((b * total + rows.lowerBound + i) * heads + h) * dim
                        let source = p + ((b * n + i) * heads + h) * dim
                        if aLSE == -.infinity {
                            target.update(from: source, count: dim)
                            lse[lseIndex] = bLSE
                            continue
                        }
                        let merged = max(aLSE, bLSE) + Foundation.log1p(Foundation.exp(-abs(aLSE - bLSE)))
                        let wa = Foundation.exp(aLSE - merged), wb = Foundation.exp(bLSE - merged)
                        for d in 0..<dim { target[d] = wa * target[d] + wb * source[d] }
                        lse[lseIndex] = merged
                    }
                }
            }
        }
    }

    /// destination[:, rows] += source (source contiguous [B, rows.count, H, D]).
    static func add(_ source: Tensor, into destination: Tensor, rows: Range<Int>) {
        let batch = destination.shape[0], total = destination.shape[1]
        let width = destination.shape[2] * destination.shape[3]
        let copy = contiguousFloats(source)
        let block = rows.count * width
        withExtendedLifetime(copy) {
            let s = copy.floatPointer, d = destination.floatPointer
            for b in 0..<batch {
                VectorMath.add(s + b * block, to: d + (b * total + rows.lowerBound) * width, count: block)
            }
        }
    }

    /// `tensor` itself when it is already contiguous Float32 (the kernels' results are), else a
    /// contiguous Float32 copy: `Tensor.contiguous` copies element by element even then, which
    /// profiling showed as ~13 % of a context-parallel training step.
    static func contiguousFloats(_ tensor: Tensor) -> Tensor {
        tensor.isContiguous && tensor.elementType == .float32 ? tensor : tensor.contiguous(as: .float32)
    }

    static func validate(
        query: Tensor, queryShard: ContextShard, key: Tensor, value: Tensor, keyShard: ContextShard,
        descriptor: AttentionDescriptor
    ) throws {
        try InvalidArgument.require(query.rank == 4 && key.rank == 4 && value.rank == 4, "query/key/value",
                                    expected: "[B, N, H, D] tensors", got: "\(query.shape), \(key.shape), \(value.shape)")
        try InvalidArgument.require(query.shape[1] == queryShard.length, "query.shape[1]",
                                    expected: "the query shard's length (\(queryShard.length))", got: "\(query.shape[1])")
        try InvalidArgument.require(key.shape[1] == keyShard.length, "key.shape[1]",
                                    expected: "the key shard's length (\(keyShard.length))", got: "\(key.shape[1])")
        // Options whose terms depend on positions relative to a per-call diagonal (or on a
        // whole-row view of the keys) would need global offsets the kernels do not take.
        let unsupported: [(String, Bool)] = [
            ("windowLeft", descriptor.windowLeft != nil), ("windowRight", descriptor.windowRight != nil),
            ("alibiSlopes", descriptor.alibiSlopes != nil), ("bias", descriptor.bias != nil),
            ("keepMask", descriptor.keepMask != nil), ("keyLengths", descriptor.keyLengths != nil),
            ("dropoutProbability", descriptor.dropoutProbability != 0),
        ]
        for (name, set) in unsupported {
            try InvalidArgument.require(!set, "descriptor.\(name)", expected: "unset with ring attention", got: "set")
        }
    }

    static func requireContiguous(_ tensor: Tensor, _ name: String, shape: [Int]) throws {
        try InvalidArgument.require(tensor.shape == shape && tensor.isContiguous && tensor.elementType == .float32, name,
                                    expected: "a contiguous Float32 tensor of shape \(shape)",
                                    got: "\(tensor.elementType) \(tensor.shape) strides \(tensor.strides)")
    }
}
