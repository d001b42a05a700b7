import Foundation

/// The operands whose main-memory traffic the kernels count.
public enum AttentionOperand: String, Sendable, CaseIterable, Codable {
    /// The inputs and outputs of the forward and backward passes (`output` also stands for
    /// D = rowsum(dO∘O), which the backward derives from it).
    case query, key, value, output, outputGradient, logSumExp
    /// The gradients the backward writes (dQ is also read back while it accumulates).
    case queryGradient, keyGradient, valueGradient
    /// The standard implementation's Nq×Nk matrices (S, P, dP/dS).
    case scores
}

/// Bytes each operand moved between main memory and the kernels during one call, as counted by
/// the tile loops themselves (every tile load and store, at the element size it has there), so
/// an IO model (e.g. FlashAttention's Θ(N²d²/M) reads for flash against Θ(Nd + N²) for standard)
/// can be checked against what the code actually does. Tiles are assumed to stay in cache while
/// a work item uses them; packing copies count as one read of the source plus their reuse.
public struct AttentionTraffic: Sendable, Equatable {
    /// Bytes loaded per operand (absent: none).
    public var bytesRead: [AttentionOperand: Int] = [:]
    /// Bytes stored per operand (absent: none).
    public var bytesWritten: [AttentionOperand: Int] = [:]

    /// No traffic.
    public init() {}

    /// All bytes read and written.
    public var totalBytes: Int { bytesRead.values.reduce(0, +) + bytesWritten.values.reduce(0, +) }
}

/// A thread-safe tally the kernels add to when a call asked for traffic counts.
final class TrafficCounter: @unchecked Sendable {
    private var traffic = AttentionTraffic()
    private let lock = NSLock()

    func add(_ operand: AttentionOperand, read: Int = 0, written: Int = 0) {
        lock.lock()
        defer { lock.unlock() }
        if read != 0 { traffic.bytesRead[operand, default: 0] += read }
        if written != 0 { traffic.bytesWritten[operand, default: 0] += written }
    }

    var result: AttentionTraffic {
        lock.lock()
        defer { lock.unlock() }
        return traffic
    }
}
