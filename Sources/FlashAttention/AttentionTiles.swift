/// The one table of tile sizes used by the flash kernels.
///
/// A forward work item holds, per key tile, Qᵀ (D×Br), the K and V tiles (Bc×D each), the
/// logits Sᵀ (Bc×Br) and the output accumulator (Br×D), all Float32. Zen 4 has 32 KiB of L1d
/// and 1 MiB of L2 per core: the sizes below keep the operands the micro-kernel streams
/// (a K or V tile, or Qᵀ) within L1 for D ≤ 64 and the whole working set well inside L2 for
/// every D, while keeping Br·Bc large enough that the per-tile softmax bookkeeping and the
/// packing (O(Br·D + Bc·D) per tile) stay small next to the O(Br·Bc·D) multiplies.
///
/// Constraints the kernels rely on: `queryRows` is a multiple of 16 (Sᵀ rows are processed
/// 16 queries per vector) and `keyColumns` a multiple of 8 (the micro-kernel's row block).
public struct AttentionTiles: Sendable, Equatable {
    /// Br: query rows per tile.
    public let queryRows: Int
    /// Bc: keys per tile.
    public let keyColumns: Int

    /// The tile sizes for head dimension `headDim`.
    public static func forHeadDimension(_ headDim: Int) -> AttentionTiles {
        switch headDim {
        case ...64: return AttentionTiles(queryRows: 128, keyColumns: 128)
        case ...128: return AttentionTiles(queryRows: 128, keyColumns: 64)
        default: return AttentionTiles(queryRows: 32, keyColumns: 64)
        }
    }

    /// `headDim` rounded up to a multiple of 16 (one SIMD16 vector): packed tiles are padded
    /// with zeros to this width so the micro-kernels never need a masked tail.
    public static func paddedHeadDimension(_ headDim: Int) -> Int { (headDim + 15) / 16 * 16 }
}
