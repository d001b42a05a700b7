/// The fraction of a device's peak a training job reaches, per operation class. Calibrated once
/// against Narayanan et al. 2021 (Megatron-LM, Table 1) and used unchanged for every prediction;
/// the derivation and the fit are in docs/planner.md §2.
public struct AchievableEfficiency: Codable, Equatable, Sendable {
    /// Weight matrix products (QKV, projection, MLP, output head): fraction of peak FLOP/s.
    public var matmul: Double
    /// The attention core (QKᵀ and P·V, batched per head, and their gradients): fraction of peak FLOP/s.
    public var attention: Double
    /// Element-wise operations (norms, activations, residual adds, dropout, softmax): fraction of
    /// the memory bandwidth.
    public var memory: Double
    /// Collectives and point-to-point transfers: fraction of the link bandwidth.
    public var link: Double

    /// Fractions in (0, 1] for each class.
    public init(matmul: Double, attention: Double, memory: Double, link: Double) {
        self.matmul = matmul
        self.attention = attention
        self.memory = memory
        self.link = link
    }

    /// The constants of docs/planner.md §2: memory and link fractions fixed beforehand (0.8,
    /// what STREAM-like kernels and NCCL's bus bandwidth reach), matmul and attention fitted
    /// once, to the smallest largest error over all ten rows of Megatron-LM's Table 1.
    public static let calibrated = AchievableEfficiency(matmul: 0.62, attention: 0.40, memory: 0.80, link: 0.80)
}
