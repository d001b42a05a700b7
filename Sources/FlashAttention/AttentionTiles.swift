import Foundation
import FlashCore

/// The one table of tile sizes used by the flash kernels (forward, backward and decode): the
/// register tile of their tile multiplies, from the compiled ISA's register file, and the cache
/// tile Br × Bc, from the machine's L2.
///
/// **Register tile** (`registerTile(for:)`). `TileMultiply` keeps an R × V-vector piece of C
/// in registers and, per step of k, loads one row of B (V vectors) and broadcasts R elements of
/// A: R·V accumulators + V operands + 1 broadcast must fit the vector registers, or the k loop
/// spills. R = 4 rows (four broadcasts per B row keep the loads below the FMAs), V as many as
/// fit, at most 4 (a row of B is then 64 floats on AVX-512, a whole D = 64 head):
///
/// | ISA | registers × floats | main tile | accumulators + operands | narrower strips |
/// |---|---|---|---|---|
/// | AVX-512 | 32 × 16 | 4 × 4 vectors (4 × 64 floats) | 16 + 5 = 21 | 8 × 3, 8 × 2, 8 × 1 |
/// | AVX2+FMA | 16 × 8 | 4 × 3 vectors (4 × 24 floats) | 12 + 4 = 16 | 4 × 2, 8 × 1 |
/// | NEON | 32 × 4 | 4 × 4 vectors (4 × 16 floats) | 16 + 5 = 21 | 8 × 3, 8 × 2, 8 × 1 |
/// | generic (SSE2) | 16 × 4 | 4 × 3 vectors (4 × 12 floats) | 12 + 4 = 16 | 4 × 2, 8 × 1 |
///
/// Twelve to sixteen independent accumulators also cover the FMA latency × throughput
/// (4 cycles × 2 per cycle on current x86 cores). A strip narrower than the main tile (what is
/// left of n) uses 8 rows when they fit, else 4 (`remainderTile`).
///
/// **Cache tile** (`forHeadDimension`). A forward work item holds, per key tile, scale·Qᵀ
/// (D × Br), the logits Sᵀ (Bc × Br) and the output accumulator (Br × D), and reads a K and a V
/// tile (Bc × D each), all Float32: 4·(2·Br·D + Br·Bc + 2·Bc·D) bytes. Br = Bc is the largest of
/// 128, 64, 32 whose working set fits a quarter of the core's L2 (the rest holds the streamed
/// K/V rows, the backward's extra dO/dS tiles and the other hyperthread's data). K/V are
/// re-read once per query tile (traffic ∝ N²·D/Br), so the largest tile that stays in L2 wins:
/// on Zen 4 (1 MiB L2) that gives 128 for D ≤ 64 (~200 KiB), 64 for D = 128 (~150 KiB) and
/// 32 for D = 256, the choices measured best there (Br = 128 re-reads K/V half as often as 64,
/// ≈10% faster at D = 64). The L2 size comes from /sys/devices/system/cpu/cpu0/cache (Linux)
/// or `hw.perflevel0.l2cachesize`/`hw.l2cachesize` (macOS), else `fallbackL2Bytes`.
///
/// Constraints the kernels rely on: `queryRows` is a multiple of 16 (Sᵀ rows are processed
/// 16 queries at a time, whole vectors on every ISA) and `keyColumns` a multiple of 8 (the
/// tall register tiles' row count).
public struct AttentionTiles: Sendable, Equatable {
    /// Br: query rows per tile.
    public let queryRows: Int
    /// Bc: keys per tile.
    public let keyColumns: Int

    /// A register tile of `TileMultiply`: `rows` rows of A × `vectors` native vectors of B.
    public struct RegisterTile: Sendable, Equatable {
        public let rows: Int
        public let vectors: Int

        /// Vector registers live in the k loop: the accumulators, one row of B, one broadcast.
        public var registersNeeded: Int { rows * vectors + vectors + 1 }
    }

    /// The main register tile for `isa` (see the table above).
    public static func registerTile(for isa: VectorISA) -> RegisterTile {
        let rows = 4
        let vectors = min(4, (isa.vectorRegisters - 1) / (rows + 1))
        return RegisterTile(rows: rows, vectors: vectors)
    }

    /// The tile for a strip of `vectors` vectors, narrower than the main tile: 8 rows when
    /// they fit the register file, else 4.
    public static func remainderTile(vectors: Int, isa: VectorISA) -> RegisterTile {
        let tall = RegisterTile(rows: 8, vectors: vectors)
        return tall.registersNeeded <= isa.vectorRegisters ? tall : RegisterTile(rows: 4, vectors: vectors)
    }

    /// The compiled ISA's main register tile.
    static let compiledRegisterTile = registerTile(for: .compiled)

    /// The core's L2 cache in bytes, as the OS reports it; nil when it does not.
    public static let hostL2Bytes: Int? = readL2Bytes()

    /// The L2 assumed when the OS does not say: 512 KiB, the smallest L2 of current x86
    /// server and desktop cores (Zen 2/3; Intel has 1–2 MiB).
    public static let fallbackL2Bytes = 512 * 1024

    /// The tile sizes for head dimension `headDim` on a core with `l2Bytes` of L2 (default:
    /// this machine's).
    public static func forHeadDimension(_ headDim: Int, l2Bytes: Int = hostL2Bytes ?? fallbackL2Bytes) -> AttentionTiles {
        let d = paddedHeadDimension(headDim)
        for size in [128, 64] where 4 * (4 * size * d + size * size) <= l2Bytes / 4 {
            return AttentionTiles(queryRows: size, keyColumns: size)
        }
        return AttentionTiles(queryRows: 32, keyColumns: 32)
    }

    /// The tiles for a call whose longest query run is `longestQuery` rows: the table's tiles,
    /// with Br lowered to that run rounded up to 16 when the run is shorter (a taller tile
    /// would only multiply padding rows: training at context 64 with Br = 128 did every
    /// backward product twice). Bc stays the table's: the forward's rounding depends on it (the
    /// online softmax rescales once per key tile); Br changes no result.
    public static func forHeadDimension(_ headDim: Int, longestQuery: Int, l2Bytes: Int = hostL2Bytes ?? fallbackL2Bytes) -> AttentionTiles {
        let table = forHeadDimension(headDim, l2Bytes: l2Bytes)
        return AttentionTiles(queryRows: min(table.queryRows, max(16, (longestQuery + 15) / 16 * 16)), keyColumns: table.keyColumns)
    }

    /// `headDim` rounded up to a multiple of 16 (one AVX-512 vector, a whole number of vectors
    /// on every ISA): packed tiles are padded with zeros to this width so the micro-kernels
    /// never need a masked tail.
    public static func paddedHeadDimension(_ headDim: Int) -> Int { (headDim + 15) / 16 * 16 }

    private static func readL2Bytes() -> Int? {
        #if os(Linux)
        let base = "/sys/devices/system/cpu/cpu0/cache"
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: base) else { return nil }
        for entry in entries where entry.hasPrefix("index") {
            func read(_ name: String) -> String? {
                (try? String(contentsOfFile: "\(base)/\(entry)/\(name)", encoding: .utf8))?
                    .trimmingCharacters(in: .whitespacesAndNewlines)
            }
            guard read("level") == "2", read("type") != "Instruction", let size = read("size") else { continue }
            return parseCacheSize(size)
        }
        return nil
        #elseif os(macOS)
        for name in ["hw.perflevel0.l2cachesize", "hw.l2cachesize"] {
            var value: Int64 = 0
            var length = MemoryLayout<Int64>.size
            if sysctlbyname(name, &value, &length, nil, 0) == 0, value > 0 { return Int(value) }
        }
        return nil
        #else
        return nil
        #endif
    }

    /// "1024K", "2M", "512" (bytes) as bytes, as sysfs writes cache sizes.
    public static func parseCacheSize(_ text: String) -> Int? {
        let units: [Character: Int] = ["K": 1024, "M": 1024 * 1024, "G": 1024 * 1024 * 1024]
        if let last = text.last, let unit = units[last] { return Int(text.dropLast()).map { $0 * unit } }
        return Int(text)
    }
}
