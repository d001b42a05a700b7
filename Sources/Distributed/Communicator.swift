/// The collectives distributed training needs, over a group of `size` ranks. Every rank of the
/// group must call the same collectives in the same order with the same counts (as MPI
/// requires); a call returns when this rank's part is complete. Sums are element-wise.
///
/// Implementations: `MPICommunicator` (Open MPI, loaded at run time) and
/// `ThreadCommunicator` (ranks as threads of one process, for tests).
public protocol Communicator: AnyObject {
    /// This rank, in 0..<size.
    var rank: Int { get }
    /// Ranks in the group.
    var size: Int { get }
    /// buffer ← Σ over ranks of buffer (in place).
    func allReduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws
    /// buffer ← Σ over ranks of buffer (in place), in Float64 (losses, norms, flags).
    func allReduceSum(_ buffer: UnsafeMutablePointer<Double>, count: Int) throws
    /// `send` holds size·countPerRank values; `receive` gets this rank's block (block `rank`)
    /// of the element-wise sum over ranks.
    func reduceScatterSum(_ send: UnsafePointer<Float>, into receive: UnsafeMutablePointer<Float>, countPerRank: Int) throws
    /// `receive` (size·countPerRank values) gets every rank's `send` block, in rank order.
    func allGather(_ send: UnsafePointer<Float>, into receive: UnsafeMutablePointer<Float>, countPerRank: Int) throws
    /// Copies `bytes` bytes of `root`'s buffer into every rank's buffer.
    func broadcast(_ buffer: UnsafeMutableRawPointer, bytes: Int, root: Int) throws
    /// Sends `sendCount` floats to rank `destination` while receiving `receiveCount` floats from
    /// rank `source` (the ring step of ring attention).
    func sendReceive(_ send: UnsafePointer<Float>, count sendCount: Int, to destination: Int,
                     into receive: UnsafeMutablePointer<Float>, count receiveCount: Int, from source: Int) throws
    /// Returns when every rank has called it.
    func barrier() throws
}

/// Why a communication failed.
public enum CommunicationError: Error, CustomStringConvertible, Equatable {
    /// The MPI library could not be loaded or lacks a symbol.
    case libraryUnavailable(String)
    /// An MPI call returned an error code.
    case mpiFailed(call: String, code: Int32)
    /// Ranks disagree on something that must be identical everywhere.
    case mismatch(String)
    /// The launcher is not Open MPI's (only its ABI is supported).
    case unsupportedLauncher(String)

    public var description: String {
        switch self {
        case .libraryUnavailable(let why): return "MPI is not available: \(why) (install Open MPI: apt-get install openmpi-bin libopenmpi-dev)"
        case .mpiFailed(let call, let code): return "\(call) failed with MPI error code \(code)"
        case .mismatch(let what): return "ranks disagree: \(what)"
        case .unsupportedLauncher(let what): return "unsupported launcher: \(what)"
        }
    }
}

extension Communicator {
    /// Checks that every rank passes the same `value` (e.g. a hash of its configuration);
    /// throws `CommunicationError.mismatch` on every rank, naming the ranks that differ from rank 0.
    public func requireIdentical(_ value: UInt64, _ what: String) throws {
        var root = value
        try withUnsafeMutableBytes(of: &root) { try broadcast($0.baseAddress!, bytes: 8, root: 0) }
        var flags = [Double](repeating: 0, count: size)
        flags[rank] = root == value ? 0 : 1
        try flags.withUnsafeMutableBufferPointer { try allReduceSum($0.baseAddress!, count: size) }
        let differing = flags.indices.filter { flags[$0] != 0 }
        if !differing.isEmpty {
            throw CommunicationError.mismatch("\(what) of rank\(differing.count > 1 ? "s" : "") \(differing.map(String.init).joined(separator: ", ")) differs from rank 0's")
        }
    }

    /// The mean over ranks of one value.
    public func average(_ value: Double) throws -> Double {
        var v = value
        try allReduceSum(&v, count: 1)
        return v / Double(size)
    }
}

/// FNV-1a over the bytes of a string: a stable hash for configuration checks between ranks
/// (Swift's `Hasher` is seeded per process, so it cannot be compared across processes).
public func stableHash(_ text: String) -> UInt64 {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in text.utf8 {
        hash ^= UInt64(byte)
        hash = hash &* 0x100_0000_01b3
    }
    return hash
}
