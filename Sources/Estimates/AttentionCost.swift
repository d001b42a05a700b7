/// FLOPs and main-memory traffic of one pass (forward or backward) of an attention call.
public struct AttentionCost: Codable, Equatable, Sendable {
    /// FLOPs of the matrix products (QKᵀ, P·V and their gradients), 2 per multiply-add.
    public var matmulFLOPs: Double = 0
    /// Other arithmetic: scaling, softmax (max, subtract, exp, sum, divide), rescaling, dropout.
    public var otherFLOPs: Double = 0
    /// Bytes read from and written to main memory (HBM/DRAM).
    public var bytesRead: Double = 0
    public var bytesWritten: Double = 0

    public init() {}

    public var flops: Double { matmulFLOPs + otherFLOPs }
    public var bytes: Double { bytesRead + bytesWritten }

    /// Roofline time: compute (matrix products at the matmul peak, the rest at the vector
    /// peak) and memory traffic overlap perfectly, so the slower of the two decides.
    public func seconds(on hardware: Hardware) -> Double {
        max(computeSeconds(on: hardware), memorySeconds(on: hardware))
    }

    public func computeSeconds(on hardware: Hardware) -> Double {
        matmulFLOPs / hardware.matmulFLOPS + otherFLOPs / hardware.vectorFLOPS
    }

    public func memorySeconds(on hardware: Hardware) -> Double { bytes / hardware.memoryBandwidth }

    /// Arithmetic intensity, FLOPs per byte of main-memory traffic.
    public var intensity: Double { bytes > 0 ? flops / bytes : .infinity }

    static func + (lhs: AttentionCost, rhs: AttentionCost) -> AttentionCost {
        var sum = AttentionCost()
        sum.matmulFLOPs = lhs.matmulFLOPs + rhs.matmulFLOPs
        sum.otherFLOPs = lhs.otherFLOPs + rhs.otherFLOPs
        sum.bytesRead = lhs.bytesRead + rhs.bytesRead
        sum.bytesWritten = lhs.bytesWritten + rhs.bytesWritten
        return sum
    }

    func scaled(by factor: Double) -> AttentionCost {
        var result = self
        result.matmulFLOPs *= factor
        result.otherFLOPs *= factor
        result.bytesRead *= factor
        result.bytesWritten *= factor
        return result
    }
}

/// Forward and backward costs of one implementation on one problem.
public struct AttentionIOReport: Codable, Equatable, Sendable {
    public var implementation: String
    public var forward: AttentionCost
    public var backward: AttentionCost

    public var total: AttentionCost { forward + backward }
}
