#if canImport(Darwin)
import Darwin
#else
import Foundation
#endif

/// The GEMM micro-kernel's register tile: `rows` rows of A times `vectorsPerRow` native
/// vectors of B, so `rows × vectorsPerRow` accumulators stay in registers for a whole pass.
///
/// `choose(floatLanes:vectorRegisters:)` derives it from the register file alone:
/// a row of the tile is two vectors (three when a vector holds only 4 floats, so a row still
/// spans ≥ 12 floats and each B load feeds 8 FMAs), and the rows are as many as the registers
/// allow once the B vectors of a step and one broadcast A value are counted, at most 8 (the
/// kernel is written for ≤ 8 × 3; 8 divides the 64-row attention tiles, and more rows only
/// add A broadcasts per step without needing fewer loads of B).
///
/// | target | lanes × registers | tile (mr × nr) | accumulators + B + A = registers used |
/// |---|---|---|---|
/// | AVX-512 | 16 × 32 zmm | 8 × 32 | 16 + 2 + 1 = 19 of 32 |
/// | AVX2 + FMA | 8 × 16 ymm | 6 × 16 | 12 + 2 + 1 = 15 of 16 (BLIS/OpenBLAS Haswell sgemm) |
/// | NEON | 4 × 32 q | 8 × 12 | 24 + 3 + 1 = 28 of 32 |
/// | generic (SSE2) | 4 × 16 xmm | 4 × 12 | 12 + 3 + 1 = 16 of 16 |
///
/// The former fixed 8 × 32 tile of `SIMD16<Float>` needs 32 ymm on AVX2 (16 exist): the
/// compiled loop there spilled 104 stack loads/stores per step of k.
public struct RegisterTile: Equatable, Sendable, CustomStringConvertible {
    /// Rows of C in the tile (mr).
    public let rows: Int
    /// Native vectors per row of the tile.
    public let vectorsPerRow: Int
    /// Floats per native vector.
    public let floatLanes: Int

    /// Columns of C in the tile (nr).
    @inline(__always) public var columns: Int { vectorsPerRow * floatLanes }
    /// Accumulators (one register each).
    public var accumulators: Int { rows * vectorsPerRow }
    /// Registers live in the inner loop: the accumulators, one step's B vectors and one
    /// broadcast A value.
    public var registersUsed: Int { accumulators + vectorsPerRow + 1 }

    /// `rows×columns`, e.g. `8×32`.
    public var description: String { "\(rows)×\(columns)" }

    /// The tile for a register file of `vectorRegisters` vectors of `floatLanes` floats (see
    /// the table above).
    @inline(__always)
    public static func choose(floatLanes: Int, vectorRegisters: Int) -> RegisterTile {
        let vectors = floatLanes <= 4 ? 3 : 2
        let rows = max(1, min(8, (vectorRegisters - vectors - 1) / vectors))
        return RegisterTile(rows: rows, vectorsPerRow: vectors, floatLanes: floatLanes)
    }

    /// The tile of the ISA this binary was compiled for (a compile-time constant).
    @inline(__always)
    public static var compiled: RegisterTile {
        choose(floatLanes: FloatVector.scalarCount, vectorRegisters: compiledVectorRegisters)
    }

    /// `VectorISA.compiled.vectorRegisters` as a literal, so that the tile folds to constants
    /// and the micro-kernel's unused accumulators compile away (a test checks they agree).
    @inline(__always)
    static var compiledVectorRegisters: Int {
        #if FLASH_ISA_AVX512 || FLASH_ISA_NEON
        return 32
        #else
        return 16
        #endif
    }
}

/// Cache and register block sizes of the GEMM, in one place.
///
/// The loop nest is BLIS's (Goto's): for each `nc`-wide column block of C and each `kc`-deep
/// slice of the inner dimension, op(B) is packed into `kc`×`nr` panels; then, for each
/// `mr`-row panel of A, the micro-kernel sweeps the B panels, computing one `mr`×`nr` tile of C
/// per panel with the whole tile in registers for the `kc` steps. An untransposed A is read in
/// place; a transposed one is packed, `mc` rows at a time.
///
/// | size | value | chosen for |
/// |------|-------|------------|
/// | `mr`, `nr` | `RegisterTile.compiled` | the register file of the compiled ISA (8×32 AVX-512, 6×16 AVX2, 8×12 NEON) |
/// | `kc` | L1d / 4 / (4 B · mr), multiple of 64 in 128...512 | the A panel in use (mr rows × kc) fills a quarter of L1d and stays there while the B panels stream past it: 256 on a 32 KiB L1d with mr = 8, 384 on 48 KiB |
/// | `nc` | L2 / 2 / (4 B · kc), multiple of nr in 4·nr...4096 | the packed B block fills half of L2 (the rest holds the A rows and C) |
/// | `mc` | L2 / 4 / (4 B · kc), multiple of mr in 4·mr...4096 | a packed block of a transposed A fills a quarter of L2: 256 rows on a 1 MiB L2 with kc = 256 |
///
/// Caches are read once from /sys/devices/system/cpu/cpu0/cache (Linux) or `hw.l1dcachesize` /
/// `hw.l2cachesize` (macOS); if that fails, 32 KiB and 1 MiB. On the 2-core Zen 5 this was
/// tuned on, kc ∈ {192, 256, 384, 512} and nc ∈ {512, 1024} were all within noise (86–90% of
/// the FMA peak at 512–2048, 1 thread), so the rule only needs to land in the right range. An
/// untransposed A is not packed because reading it in place was as fast at large sizes and
/// much faster for narrow C (64×64×64: 86% vs 75% of peak; 1024×64×1024: 91% vs 68%), where
/// each packed A element would be used by only a few B panels. Only the last, partial A panel
/// is copied (zero-padded). Read in place, a panel's rows come from L3 or memory the first time
/// (A's whole kc slice, m × kc, is larger than L2 at m = 2048), so the driver asks for the next
/// panel in L2 (`CacheHints`' prefetch) while the current one is in use: at 2048³ on Zen 5
/// (AVX-512, 1 thread) that was about 5% faster, alternating runs in one session; packing the
/// A panel instead (copied row-major, or transposed per step) was no faster or slower there,
/// its copy costing as much as the waits it saved. A transposed A is different: in place, a
/// panel's mr values per step lie in a new row of A at a stride of `lda` floats, which crowds a
/// few L1 sets when `lda` is a power of two; packed, the weight-gradient products Xᵀ·dY of
/// training no longer need a transposed copy of X (`packTransposedA`).
///
/// Only `kc` changes the arithmetic (C accumulates one `kc` slice at a time). It depends on
/// the machine's L1d, the ISA and k (`depthSlice(k:)` balances the slices: k = 512 runs as
/// 256 + 256 rather than 384 + 128), never on the thread count, m or where a tile lies, so on
/// one machine results are the same for every thread count and every element of C gets the
/// same arithmetic. The column blocks are balanced the same way (they do not change the
/// arithmetic).
public enum GEMMBlocking {
    /// The register tile of this build.
    public static var tile: RegisterTile { RegisterTile.compiled }
    @inline(__always) static var mr: Int { RegisterTile.compiled.rows }
    @inline(__always) static var nr: Int { RegisterTile.compiled.columns }

    /// Depth of one pass (see the table above).
    public static let kc: Int = depthBlock(l1DataBytes: CacheSizes.host.l1Data, rows: RegisterTile.compiled.rows)
    /// Columns of one packed B block (see the table above).
    public static let nc: Int = columnBlock(l2Bytes: CacheSizes.host.l2, depth: kc, columns: RegisterTile.compiled.columns)
    /// Rows of one packed block of a transposed A (see the table above).
    public static let mc: Int = rowBlock(l2Bytes: CacheSizes.host.l2, depth: kc, rows: RegisterTile.compiled.rows)

    /// kc for an L1d of `l1DataBytes` and an `rows`-row tile.
    public static func depthBlock(l1DataBytes: Int, rows: Int) -> Int {
        min(512, max(128, l1DataBytes / 4 / (4 * rows) / 64 * 64))
    }

    /// nc for an L2 of `l2Bytes`, depth `depth` and `columns`-wide tiles.
    public static func columnBlock(l2Bytes: Int, depth: Int, columns: Int) -> Int {
        min(4096 / columns * columns, max(4 * columns, l2Bytes / 2 / (4 * depth) / columns * columns))
    }

    /// mc for an L2 of `l2Bytes`, depth `depth` and `rows`-row tiles.
    public static func rowBlock(l2Bytes: Int, depth: Int, rows: Int) -> Int {
        min(4096 / rows * rows, max(4 * rows, l2Bytes / 4 / (4 * depth) / rows * rows))
    }

    /// The depth of one pass over an inner dimension of `k`: kc balanced over k's slices. Every
    /// kernel (blocked and row) slices k by it, so a row's arithmetic is the same in both.
    @inline(__always)
    public static func depthSlice(k: Int) -> Int { balanced(k, block: kc, unit: 16) }

    /// The block size that cuts `length` into as few pieces as `block` allows, as even as a
    /// multiple of `unit` can make them (all one size but the last, which may be shorter): k = 512
    /// with kc = 384 runs as 256 + 256 rather than 384 + 128, whose short slice pays a full pass
    /// of C loads and stores for a third of the work. It depends on the problem's size only,
    /// never on threads, so results stay the same for every thread count.
    public static func balanced(_ length: Int, block: Int, unit: Int) -> Int {
        guard length > block else { return block }
        let pieces = (length + block - 1) / block
        let size = (length + pieces - 1) / pieces
        return min(block, (size + unit - 1) / unit * unit)
    }

    /// Fewer floating-point operations than this per thread is not worth a thread: the
    /// fork-join costs about as much as a 64×64×64 multiply.
    static let minimumFlopsPerThread = 2_000_000
}

/// The per-core data cache sizes the block sizes are derived from.
public struct CacheSizes: Equatable, Sendable {
    /// L1 data cache per core, bytes.
    public var l1Data: Int
    /// L2 cache per core, bytes.
    public var l2: Int

    /// Used when the system does not say: a common L1d and L2 of current x86 and ARM cores.
    public static let fallback = CacheSizes(l1Data: 32 * 1024, l2: 1024 * 1024)

    /// This machine's caches (read once).
    public static let host: CacheSizes = read() ?? fallback

    static func read() -> CacheSizes? {
        #if canImport(Darwin)
        func sysctl(_ name: String) -> Int? {
            var value: Int64 = 0
            var size = MemoryLayout<Int64>.size
            guard sysctlbyname(name, &value, &size, nil, 0) == 0, value > 0 else { return nil }
            return Int(value)
        }
        guard let l1 = sysctl("hw.l1dcachesize"), let l2 = sysctl("hw.l2cachesize") else { return nil }
        return CacheSizes(l1Data: l1, l2: l2)
        #else
        var l1: Int?, l2: Int?
        for index in 0..<8 {
            let directory = "/sys/devices/system/cpu/cpu0/cache/index\(index)/"
            func field(_ name: String) -> String? {
                (try? String(contentsOfFile: directory + name, encoding: .utf8))?
                    .trimmingCharacters(in: .whitespacesAndNewlines)
            }
            guard let level = field("level"), let type = field("type"), let size = field("size").flatMap(parseSize)
            else { continue }
            if level == "1" && type == "Data" { l1 = size }
            if level == "2" && type != "Instruction" { l2 = size }
        }
        guard let l1, let l2 else { return nil }
        return CacheSizes(l1Data: l1, l2: l2)
        #endif
    }

    /// Parses sysfs sizes such as "48K", "1024K", "32M".
    static func parseSize(_ text: String) -> Int? {
        let units: [Character: Int] = ["K": 1024, "M": 1024 * 1024, "G": 1024 * 1024 * 1024]
        if let last = text.last, let unit = units[last], let value = Int(text.dropLast()), value > 0 { return value * unit }
        if let value = Int(text), value > 0 { return value }
        return nil
    }
}
