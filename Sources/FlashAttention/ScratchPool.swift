import Foundation

/// Reuses per-item scratch buffers across the work items of one call: items are many and short,
/// and a fresh allocation of this size is a fresh mmap whose pages fault in and get zeroed on
/// every item. At most one buffer per concurrently running item is ever created.
final class ScratchPool<Scratch: AnyObject>: @unchecked Sendable {
    private var available: [Scratch] = []
    private let lock = NSLock()
    private let make: () -> Scratch

    init(_ make: @escaping () -> Scratch) { self.make = make }

    /// Runs `body` with a buffer no other item is using.
    func withScratch<Result>(_ body: (Scratch) -> Result) -> Result {
        lock.lock()
        let scratch = available.popLast()
        lock.unlock()
        let buffer = scratch ?? make()
        defer {
            lock.lock()
            available.append(buffer)
            lock.unlock()
        }
        return body(buffer)
    }
}
