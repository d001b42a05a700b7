/// The one table of tile sizes used by the flash kernels (forward, backward and decode).
///
/// A forward work item holds, per key tile, scale·Qᵀ (D×Br), the logits Sᵀ (Bc×Br) and the
/// output accumulator (Br×D), and reads a K and a V tile (Bc×D each), all Float32. Zen 4 has
/// 32 KiB of L1d and 1 MiB of L2 per core. The choices, measured on that machine:
/// - D ≤ 64: Br = Bc = 128. About 200 KiB of working set, well inside L2; the micro-kernel's
///   streamed operand (Qᵀ's 64-column panel, 32 KiB) stays in L1. K/V are re-read once per
///   query tile (traffic ∝ N²·D/Br), so Br = 128 re-reads half as often as 64 (≈10% faster).
/// - 64 < D ≤ 128: Br = Bc = 64. The same ~200 KiB at twice the width; in the backward the
///   B panels of dO and Q (Br×64 floats per column block) then fit in L1.
/// - D > 128: Br = 32, Bc = 64, to stay inside L2.
/// Br·Bc stays large enough that the softmax bookkeeping per tile (O(Br·Bc)) and the packing
/// (O(Br·D + Bc·D)) are small next to the multiplies (O(Br·Bc·D)).
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
        case ...128: return AttentionTiles(queryRows: 64, keyColumns: 64)
        default: return AttentionTiles(queryRows: 32, keyColumns: 64)
        }
    }

    /// `headDim` rounded up to a multiple of 16 (one SIMD16 vector): packed tiles are padded
    /// with zeros to this width so the micro-kernels never need a masked tail.
    public static func paddedHeadDimension(_ headDim: Int) -> Int { (headDim + 15) / 16 * 16 }
}
