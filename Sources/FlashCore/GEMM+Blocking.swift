/// Cache and register block sizes of the GEMM, in one place.
///
/// The loop nest is BLIS's (Goto's): for each `nc`-wide column block of C, for each `kc`-deep
/// slice of the inner dimension, op(B) is packed into a `kc`×`nc` block of `nr`-wide panels;
/// for each `mc`-tall row block, op(A) is packed into `mr`-tall panels; then the micro-kernel
/// computes one `mr`×`nr` tile of C from one A panel and one B panel, keeping the whole tile in
/// registers for the `kc` steps.
///
/// | size | value | chosen for (AMD Zen 4: 32 KiB L1d and 1 MiB L2 per core, 32 MiB shared L3) |
/// |------|-------|-----------------------------------------------------------------------------|
/// | `mr` | 8     | rows of the register tile: 8×2 = 16 zmm accumulators, each row's A value is a broadcast folded into the FMA; 8 divides the 64-row attention tiles |
/// | `nr` | 32    | columns of the register tile: two `SIMD16<Float>` (zmm) vectors per row |
/// | `kc` | 256   | depth of one pass: an A panel (`mr`×`kc`×4 B = 8 KiB) stays in L1 while the kernel sweeps the B block |
/// | `nc` | 512   | B block `kc`×`nc`×4 B = 512 KiB, half of L2, streamed by the kernel one 32 KiB panel at a time |
/// | `mc` | 256   | A block `mc`×`kc`×4 B = 256 KiB: each A panel is reused across all `nc`/`nr` B panels |
///
/// Only `kc` changes the arithmetic (C accumulates one `kc` slice at a time); it depends on
/// nothing but these constants, so results are the same for every thread count.
enum GEMMBlocking {
    static let mr = 8
    static let nr = 32
    static let kc = 256
    static let nc = 512
    static let mc = 256
    /// Fewer floating-point operations than this per thread is not worth a thread: the
    /// fork-join costs about as much as a 64×64×64 multiply.
    static let minimumFlopsPerThread = 2_000_000
}
