import Foundation

/// One process-wide spare Float32 buffer that the forward's packed K/V copy and the backward's
/// packed Q/dO/dQ are taken from and given back to, so that consecutive attention calls (layer
/// after layer, forward then backward, or a benchmark's runs) reuse it. A fresh multi-MiB allocation is a fresh mmap: every page faults in and is zeroed by
/// the kernel, and that cost ~5% of a non-causal forward at N = 1024 (8 MiB of K/V at D = 128).
/// The contents of a taken buffer are unspecified; callers write every element they read.
/// At most `spareLimit` floats are kept; larger buffers are freed as usual.
enum ReusableFloatBuffer {
    /// 64 MiB: the backward's packs of N = 2048 × 8 heads × D = 128 (5 matrices) fit.
    static let spareLimit = 16 << 20
    private static let lock = NSLock()
    nonisolated(unsafe) private static var spare: (pointer: UnsafeMutablePointer<Float>, capacity: Int)?

    /// A buffer of at least `count` floats and its capacity (to pass back to `giveBack`).
    static func take(_ count: Int) -> (pointer: UnsafeMutablePointer<Float>, capacity: Int) {
        lock.lock()
        let candidate = spare
        spare = nil
        lock.unlock()
        if let candidate, candidate.capacity >= count { return candidate }
        candidate?.pointer.deallocate()
        return (.allocate(capacity: count), count)
    }

    /// Keeps `pointer` as the spare if it is within the limit and larger than the current spare;
    /// frees whichever is not kept.
    static func giveBack(_ pointer: UnsafeMutablePointer<Float>, capacity: Int) {
        guard capacity <= spareLimit else { pointer.deallocate(); return }
        lock.lock()
        var freed: UnsafeMutablePointer<Float>? = pointer
        if spare == nil || spare!.capacity < capacity {
            freed = spare?.pointer
            spare = (pointer, capacity)
        }
        lock.unlock()
        freed?.deallocate()
    }
}
