/// Errors of the attention kernels other than bad arguments (those throw `InvalidArgument`).
public enum AttentionError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The standard implementation would materialise N×N matrices larger than the memory
    /// limit (`Attention.standardMemoryLimitBytes`); use the flash implementation instead.
    case standardMemoryExceeded(neededBytes: Int, limitBytes: Int)

    /// A sentence saying what was needed and what to use instead.
    public var description: String {
        switch self {
        case let .standardMemoryExceeded(needed, limit):
            return "standard attention needs \(needed) bytes for its score matrices, more than the limit of "
                + "\(limit) bytes (Attention.standardMemoryLimitBytes); use the flash implementation"
        }
    }
}
