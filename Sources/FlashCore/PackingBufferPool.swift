import Foundation

/// Reusable 64-byte aligned scratch buffers for packed GEMM panels, so that a multiply (and
/// every small attention-tile multiply) does not allocate. A buffer is taken for one call on
/// one thread and given back at its end; the pool grows to the peak number in use at once.
final class PackingBufferPool: @unchecked Sendable {
    static let shared = PackingBufferPool()

    private var free: [(pointer: UnsafeMutablePointer<Float>, capacity: Int)] = []
    private let lock = NSLock()

    /// Calls `body` with a buffer of at least `capacity` floats (contents undefined).
    @inline(__always)
    func withBuffer<R>(capacity: Int, _ body: (UnsafeMutablePointer<Float>) -> R) -> R {
        let buffer = take(capacity: capacity)
        defer { give(buffer) }
        return body(buffer.pointer)
    }

    private func take(capacity: Int) -> (pointer: UnsafeMutablePointer<Float>, capacity: Int) {
        lock.lock()
        if let index = free.lastIndex(where: { $0.capacity >= capacity }) {
            let buffer = free.remove(at: index)
            lock.unlock()
            return buffer
        }
        // Nothing big enough: drop one smaller buffer (if any) so the pool does not keep growing.
        let smaller = free.popLast()
        lock.unlock()
        smaller?.pointer.deallocate()
        let raw = UnsafeMutableRawPointer.allocate(byteCount: capacity * MemoryLayout<Float>.stride, alignment: 64)
        return (raw.bindMemory(to: Float.self, capacity: capacity), capacity)
    }

    private func give(_ buffer: (pointer: UnsafeMutablePointer<Float>, capacity: Int)) {
        lock.lock()
        free.append(buffer)
        lock.unlock()
    }
}
