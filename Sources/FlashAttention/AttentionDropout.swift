/// The dropout mask of attention, a pure function of coordinates.
///
/// Whether P[i, j] of (batch, head) is kept depends only on (seed, batch, head, i, j) through a
/// counter-based hash, never on threads, tiles or call order, so the backward pass (and the
/// standard and flash kernels) reproduce the forward's mask exactly without storing it. Kept
/// entries are scaled by 1/(1 − p). For packed variable-length batches `batch` is the index of
/// the sequence and i, j count from the start of that sequence.
public enum AttentionDropout {
    /// True when P[query, key] of (`batch`, `head`) survives dropout with probability
    /// `probability` of being dropped.
    public static func keeps(
        seed: UInt64, batch: Int, head: Int, query: Int, key: Int, probability: Float
    ) -> Bool {
        let rowKey = self.rowKey(seed: seed, batch: batch, head: head, query: query)
        return mix(rowKey ^ (UInt32(truncatingIfNeeded: key) &* keyMultiplier)) >= threshold(probability)
    }

    /// Hashes are uniform over UInt32; an entry is dropped when its hash is below this.
    static func threshold(_ probability: Float) -> UInt32 {
        let scaled = Double(probability) * 4_294_967_296.0
        return scaled >= 4_294_967_295.0 ? UInt32.max : UInt32(scaled)
    }

    static let queryMultiplier: UInt32 = 0x9E37_79B9
    static let keyMultiplier: UInt32 = 0x85EB_CA6B

    /// 32 bits that identify (seed, batch, head, query).
    static func rowKey(seed: UInt64, batch: Int, head: Int, query: Int) -> UInt32 {
        mix(headKey(seed: seed, batch: batch, head: head) ^ (UInt32(truncatingIfNeeded: query) &* queryMultiplier))
    }

    /// The per-(seed, batch, head) part of `rowKey`, so vector code can hash many queries.
    static func headKey(seed: UInt64, batch: Int, head: Int) -> UInt32 {
        UInt32(truncatingIfNeeded: splitMix(seed ^ splitMix(UInt64(truncatingIfNeeded: batch) << 32 | UInt64(truncatingIfNeeded: head))))
    }

    /// SplitMix64's finaliser.
    static func splitMix(_ value: UInt64) -> UInt64 {
        var z = value &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// MurmurHash3's 32-bit finaliser (a bijection with full avalanche).
    @inline(__always)
    static func mix(_ value: UInt32) -> UInt32 {
        var h = value
        h ^= h >> 16
        h = h &* 0x85EB_CA6B
        h ^= h >> 13
        h = h &* 0xC2B2_AE35
        h ^= h >> 16
        return h
    }

    /// `mix` on 16 lanes.
    @inline(__always)
    static func mix(_ value: SIMD16<UInt32>) -> SIMD16<UInt32> {
        var h = value
        h ^= h &>> 16
        h = h &* 0x85EB_CA6B
        h ^= h &>> 13
        h = h &* 0xC2B2_AE35
        h ^= h &>> 16
        return h
    }
}
