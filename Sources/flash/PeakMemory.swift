import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Peak extra memory of a piece of code, from the kernel's resident-set high-water mark.
///
/// On Linux, writing "5" to /proc/self/clear_refs resets VmHWM (the peak resident set) to the
/// current resident set; after the code runs, VmHWM − (VmRSS before) is the most memory the
/// code had resident at once beyond what was already there: its allocations, counted when
/// touched (our tensors are zero-filled on allocation, so they are all touched). glibc is told
/// to serve every allocation ≥ 128 KiB with its own mmap, so freed buffers go back to the
/// kernel instead of being recycled invisibly. Elsewhere `measure` returns nil.
enum PeakMemory {
    /// Call once before measuring.
    static func prepare() {
        #if canImport(Glibc)
        // mallopt is in <malloc.h>, which the Glibc module does not import; M_MMAP_THRESHOLD is −3.
        // Setting the threshold also turns off glibc's dynamic threshold, which would otherwise
        // rise after the first large free and keep later large buffers in the heap.
        typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
        if let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") {
            _ = unsafeBitCast(symbol, to: Mallopt.self)(-3, 128 * 1024)
        }
        #endif
    }

    /// Runs `body` and returns the peak bytes it added to the resident set, or nil where the
    /// high-water mark cannot be reset.
    static func measure(_ body: () throws -> Void) rethrows -> Int? {
        let reset = (try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)) != nil
        let before = status("VmRSS")
        try body()
        guard reset, let before, let peak = status("VmHWM") else { return nil }
        return max(0, peak - before)
    }

    /// A field of /proc/self/status, in bytes.
    private static func status(_ field: String) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            if parts.count >= 2, let kilobytes = Int(parts[1]) { return kilobytes * 1024 }
        }
        return nil
    }
}
