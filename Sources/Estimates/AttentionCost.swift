/// FLOPs and main-memory traffic of one pass (forward or backward) of an attention call.
public struct AttentionCost: Codable, Equatable, Sendable {
    /// FLOPs of the matrix products (QKᵀ, P·V and their gradients), 2 per multiply-add.
    public var matmulFLOPs: Double = 0
    /// Other arithmetic: scaling, softmax (max, subtract, exp, sum, divide), rescaling, dropout.
    public var otherFLOPs: Double = 0
    /// Bytes read from and written to main memory (HBM/DRAM).
    public var bytesRead: Double = 0
    /// Bytes written to main memory.
    public var bytesWritten: Double = 0

    /// No FLOPs, no traffic.
    public init() {}

    /// All FLOPs: matrix products plus the rest.
    public var flops: Double { matmulFLOPs + otherFLOPs }
    /// All main-memory traffic: read plus written.
    public var bytes: Double { bytesRead + bytesWritten }

    /// Roofline time: compute (matrix products at the matmul peak, the rest at the vector
    /// peak) and memory traffic overlap perfectly, so the slower of the two decides.
    public func seconds(on hardware: Hardware) -> Double {
        max(computeSeconds(on: hardware), memorySeconds(on: hardware))
    }

    /// Time of the arithmetic alone: matrix products at the matmul peak, the rest at the vector peak.
    public func computeSeconds(on hardware: Hardware) -> Double {
        matmulFLOPs / hardware.matmulFLOPS + otherFLOPs / hardware.vectorFLOPS
    }

    /// Time of the main-memory traffic alone, at the device's bandwidth.
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
    /// `"standard"` or `"flash"`.
    public var implementation: String
    /// The forward pass (O and the softmax statistics from Q, K, V).
    public var forward: AttentionCost
    /// The backward pass (dQ, dK, dV from dO).
    public var backward: AttentionCost

    /// Forward plus backward.
    public var total: AttentionCost { forward + backward }
}
