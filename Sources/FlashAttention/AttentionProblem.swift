import FlashCore

/// A validated attention call, resolved into per-sequence lengths and strided operands. Both
/// batched ([B, N, H, D]) and packed variable-length calls become one of these; kernels only
/// see this form.
struct AttentionProblem {
    /// Sequences (the batch size, or the number of packed sequences).
    let sequenceCount: Int
    /// Query and key tokens of each sequence.
    let queryLengths: [Int]
    let keyLengths: [Int]
    /// First token of each sequence on the token axis (0 for batched tensors).
    let queryStarts: [Int]
    let keyStarts: [Int]
    /// Keys j ≥ validKeys[s] are masked (padding); equals keyLengths[s] without `keyLengths`.
    let validKeys: [Int]
    let queryHeads: Int
    let keyHeads: Int
    let headDim: Int
    let query: HeadRows
    let key: HeadRows
    let value: HeadRows
    let scale: Float
    /// The band of visible keys around the bottom-right diagonal: query i of sequence s sees
    /// keys j with i + off − leftReach ≤ j ≤ i + off + rightReach, off = Nk − Nq
    /// (`unbounded` when a side has no limit; causal makes rightReach ≤ 0).
    let leftReach: Int
    let rightReach: Int
    let softcap: Float?
    let alibiSlopes: [Float]?
    let bias: BroadcastLogits?
    let keepMask: BroadcastLogits?
    let dropoutProbability: Float
    let dropoutSeed: UInt64
    /// Added to the sequence index in the dropout mask's coordinates.
    let dropoutSequenceOffset: Int
    let threads: Int
    /// Set when the caller asked for traffic counts (`Attention.forwardCountingTraffic`).
    var traffic: TrafficCounter? = nil

    /// Stands for "no limit" in band arithmetic; small enough that sums never overflow.
    static let unbounded = Int.max / 8

    /// Query heads that share one key/value head.
    var groupSize: Int { queryHeads / keyHeads }

    /// The flash kernels' tiles for this call: the table's for its head dimension, the query
    /// tile no taller than its longest query run (`AttentionTiles.forHeadDimension(_:longestQuery:)`).
    var tiles: AttentionTiles { AttentionTiles.forHeadDimension(headDim, longestQuery: queryLengths.max() ?? 0) }

    /// Offset of the bottom-right diagonal: query i is aligned with key i + Nk − Nq.
    @inline(__always)
    func diagonal(_ sequence: Int) -> Int { keyLengths[sequence] - queryLengths[sequence] }

    /// True when logits need more than scaling and band/padding masks.
    var hasElementwiseTerms: Bool { softcap != nil || alibiSlopes != nil || bias != nil || keepMask != nil }

    /// Whether any logit of queries [i0, i1) × keys [j0, j1) of `sequence` is visible under
    /// the band and padding masks (the tile can be skipped otherwise).
    @inline(__always)
    func tileVisible(sequence s: Int, queries i0: Int, _ i1: Int, keys j0: Int, _ j1: Int) -> Bool {
        let off = diagonal(s)
        return i1 > i0 && j1 > j0 && j0 < validKeys[s]
            && j0 <= i1 - 1 + off + rightReach && j1 - 1 >= i0 + off - leftReach
    }

    /// Whether every logit of the tile is visible under the band and padding masks.
    @inline(__always)
    func tileFullyVisible(sequence s: Int, queries i0: Int, _ i1: Int, keys j0: Int, _ j1: Int) -> Bool {
        let off = diagonal(s)
        return j1 <= validKeys[s] && j1 - 1 <= i0 + off + rightReach && j0 >= i1 - 1 + off - leftReach
    }

    /// Bytes of one element of each input.
    var queryElementBytes: Int { query.tensor.elementType.byteSize }
    var keyElementBytes: Int { key.tensor.elementType.byteSize }
    var valueElementBytes: Int { value.tensor.elementType.byteSize }

    /// Extra Float32 bytes the standard implementation needs: one Nq×Nk matrix per (sequence,
    /// query head), `matrices` of them.
    func standardScoreBytes(matrices: Int) -> Int {
        var elements = 0
        for s in 0..<sequenceCount { elements += queryLengths[s] * keyLengths[s] }
        let (total, overflow) = elements.multipliedReportingOverflow(by: queryHeads * matrices * 4)
        return overflow ? Int.max : total
    }
}
