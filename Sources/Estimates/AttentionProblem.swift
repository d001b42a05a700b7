import FlashAttention
import FlashCore

/// The shape of one attention call for the IO model: `batch · heads` independent problems of
/// Nq queries against Nk keys, head dimension d. K and V are counted per query head (a kernel
/// that shares them across a GQA group reads less; docs/estimates.md).
public struct AttentionProblem: Codable, Equatable, Sendable {
    /// Independent sequences B.
    public var batch: Int
    /// Attention heads per sequence.
    public var heads: Int
    /// Queries per sequence, Nq.
    public var queryLength: Int
    /// Keys per sequence, Nk (Nq unless given).
    public var keyLength: Int
    /// Head dimension d.
    public var headDim: Int
    /// Bytes of one element of Q, K, V, O, their gradients, and standard attention's S and P.
    public var elementBytes: Int
    /// Bytes of one softmax statistic (log-sum-exp, row max, row sum, D = rowsum(dO∘O)).
    public var statisticBytes: Int
    /// Causal mask aligned bottom-right: query i sees keys j ≤ i + Nk − Nq.
    public var causal: Bool
    /// Dropout on P: standard attention stores a one-byte mask; flash regenerates it from a seed.
    public var dropout: Bool

    /// A problem of `batch · heads` heads of `queryLength` queries against `keyLength` keys
    /// (default: as many as queries); 2-byte elements and 4-byte statistics unless given.
    public init(batch: Int, heads: Int, queryLength: Int, keyLength: Int? = nil, headDim: Int,
                elementBytes: Int = 2, statisticBytes: Int = 4, causal: Bool = false, dropout: Bool = false) {
        self.batch = batch
        self.heads = heads
        self.queryLength = queryLength
        self.keyLength = keyLength ?? queryLength
        self.headDim = headDim
        self.elementBytes = elementBytes
        self.statisticBytes = statisticBytes
        self.causal = causal
        self.dropout = dropout
    }

    /// Throws `InvalidArgument` naming the first size that is not positive.
    public func validate() throws {
        for (name, value) in [("batch", batch), ("heads", heads), ("queryLength", queryLength), ("keyLength", keyLength),
                              ("headDim", headDim), ("elementBytes", elementBytes), ("statisticBytes", statisticBytes)] {
            try InvalidArgument.require(value > 0 && value <= AttentionProblem.largestSize, name,
                                        expected: "in 1...\(AttentionProblem.largestSize)", got: "\(value)")
        }
    }

    /// Bound on every size, far beyond any real problem, that keeps index arithmetic from overflowing.
    public static let largestSize = 1 << 40

    /// The FlashAttention paper's Figure 2 setting: GPT-2 medium attention (sequence 1024, head
    /// dimension 64, 16 heads, batch 64), FP16, non-causal, with dropout (see docs/estimates.md
    /// for why this reading of the figure).
    public static let gpt2Medium = AttentionProblem(
        batch: 64, heads: 16, queryLength: 1024, headDim: 64, elementBytes: 2, causal: false, dropout: true)
}

/// The loop order of a FlashAttention implementation.
public enum FlashSchedule: String, CaseIterable, Codable, Sendable {
    /// FlashAttention-1 as the paper writes it (Algorithms 2 and 4): K/V blocks in the outer loop
    /// of both passes; O, ℓ and m are read and rewritten in HBM for every K/V block.
    case paper
    /// FlashAttention-2: forward with Q blocks outer (Q read once, O and LSE written once),
    /// backward with K/V blocks outer after a pass computing D = rowsum(dO∘O).
    case queryOuter = "query-outer"
}

/// Tile sizes of a FlashAttention kernel: Br query rows by Bc key columns.
public struct FlashTiling: Codable, Equatable, Sendable {
    /// Br: query rows per tile.
    public var queryTile: Int
    /// Bc: keys per tile.
    public var keyTile: Int
    /// Which loop is outer, and how the backward is organised.
    public var schedule: FlashSchedule
    /// The forward pass first converts each (batch, head)'s whole K and V once into a packed
    /// Float32 layout (one extra read of K and V), then streams the tiles from that copy, as
    /// this project's CPU kernel does; GPU kernels load tiles straight from K and V.
    public var packsKeysAndValuesFirst: Bool

    /// Tiles of `queryTile` × `keyTile` with the given schedule.
    public init(queryTile: Int, keyTile: Int, schedule: FlashSchedule = .queryOuter, packsKeysAndValuesFirst: Bool = false) {
        self.queryTile = queryTile
        self.keyTile = keyTile
        self.schedule = schedule
        self.packsKeysAndValuesFirst = packsKeysAndValuesFirst
    }

    /// The tiling of this project's CPU flash kernel for `headDim` (its one tile table,
    /// `AttentionTiles`): query-outer, with the K/V packing pre-pass.
    public static func cpuKernel(headDim: Int) -> FlashTiling {
        let tiles = AttentionTiles.forHeadDimension(headDim)
        return FlashTiling(queryTile: tiles.queryRows, keyTile: tiles.keyColumns, schedule: .queryOuter,
                           packsKeysAndValuesFirst: true)
    }

    /// The paper's choice (Algorithm 1): with M elements of on-chip memory, Bc = ⌈M/4d⌉ and
    /// Br = min(⌈M/4d⌉, d), so that Q, K, V and O tiles fit together.
    public static func paper(onChipBytes: Int, headDim: Int, elementBytes: Int) -> FlashTiling {
        let m = onChipBytes / elementBytes
        let block = (m + 4 * headDim - 1) / (4 * headDim)
        return FlashTiling(queryTile: min(block, headDim), keyTile: block, schedule: .paper)
    }

    /// Throws `InvalidArgument` naming a tile size that is not positive or too large.
    public func validate() throws {
        let bound = AttentionProblem.largestSize
        try InvalidArgument.require(queryTile > 0 && queryTile <= bound, "queryTile", expected: "in 1...\(bound)", got: "\(queryTile)")
        try InvalidArgument.require(keyTile > 0 && keyTile <= bound, "keyTile", expected: "in 1...\(bound)", got: "\(keyTile)")
    }
}

/// The figures the FlashAttention paper reports for `AttentionProblem.gpt2Medium` on an A100
/// (Dao et al. 2022, Figure 2 left, forward + backward).
public enum PaperFigures {
    /// One row of the paper's table.
    public struct Row: Sendable {
        /// GFLOPs as the paper reports them (see `docs/estimates.md` on their constant factor).
        public var gigaFLOPs: Double
        /// HBM reads and writes, GB.
        public var gigabytes: Double
        /// Measured run time, ms.
        public var milliseconds: Double
    }
    /// Standard attention (PyTorch).
    public static let standard = Row(gigaFLOPs: 66.6, gigabytes: 40.3, milliseconds: 41.7)
    /// FlashAttention.
    public static let flash = Row(gigaFLOPs: 75.2, gigabytes: 4.4, milliseconds: 7.3)
}
