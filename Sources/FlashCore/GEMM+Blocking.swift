/// Cache and register block sizes of the GEMM, in one place.
///
/// The loop nest is BLIS's (Goto's) with A read in place: for each `nc`-wide column block of
/// C and each `kc`-deep slice of the inner dimension, op(B) is packed into `kc`×`nr` panels;
/// then, for each `mr`-row panel of A, the micro-kernel sweeps the B panels, computing one
/// `mr`×`nr` tile of C per panel with the whole tile in registers for the `kc` steps.
///
/// | size | value | chosen for (AMD Zen 4: 32 KiB L1d and 1 MiB L2 per core, 32 MiB shared L3) |
/// |------|-------|-----------------------------------------------------------------------------|
/// | `mr` | 8     | rows of the register tile: 8×2 = 16 zmm accumulators + 2 B vectors + broadcasts fit the 32 zmm registers; 8 divides the 64-row attention tiles |
/// | `nr` | 32    | columns of the register tile: two `SIMD16<Float>` (zmm) vectors per row |
/// | `kc` | 256   | depth of one pass: the A panel being used (`mr`×`kc`×4 B = 8 KiB, 8 rows of A) stays in L1 while the kernel sweeps the B block |
/// | `nc` | 512   | B block `kc`×`nc`×4 B = 512 KiB, half of L2, streamed one 32 KiB panel per kernel call |
///
/// Measured on the 2-core Zen 4 (1 thread, `flash bench gemm`): kc ∈ {192, 256, 384, 512} and
/// nc ∈ {512, 1024} are all within noise (86–90% of the FMA peak at 512–2048); A is not
/// packed because reading it in place was as fast at large sizes and much faster for narrow C
/// (64×64×64: 86% vs 75% of peak; 1024×64×1024: 91% vs 68%), where each packed A element would
/// be used by only a few B panels. Only the last, partial A panel is copied (zero-padded).
///
/// Only `kc` changes the arithmetic (C accumulates one `kc` slice at a time); it depends on
/// nothing but these constants, so results are the same for every thread count.
enum GEMMBlocking {
    static let mr = 8
    static let nr = 32
    static let kc = 256
    static let nc = 512
    /// Fewer floating-point operations than this per thread is not worth a thread: the
    /// fork-join costs about as much as a 64×64×64 multiply.
    static let minimumFlopsPerThread = 2_000_000
}
