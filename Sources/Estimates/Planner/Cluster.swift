/// The machines a training job is planned on: one kind of device, grouped into nodes, with a
/// fast link inside a node (NVLink) and a slower one between nodes (InfiniBand, Ethernet).
/// Bandwidths are per device and per direction, as NCCL's "bus bandwidth" counts them.
public struct Cluster: Codable, Equatable, Sendable {
    /// The preset name (a100, h100, cpu) or a custom label.
    public var name: String
    /// Peak dense matrix-product rate of one device, FLOP/s.
    public var peakFLOPS: Double
    /// Main-memory bandwidth of one device, bytes/s (element-wise operations are bound by it).
    public var memoryBandwidth: Double
    /// Memory of one device, bytes.
    public var deviceMemory: Double
    /// Devices joined by the fast intra-node link.
    public var devicesPerNode: Int
    /// Link bandwidth inside a node: per device, one direction, bytes/s.
    public var intraNodeBandwidth: Double
    /// Link bandwidth between nodes: per device, one direction, bytes/s.
    public var interNodeBandwidth: Double
    /// The fractions of the peaks the job reaches per operation class (docs/planner.md §2).
    public var efficiency: AchievableEfficiency

    /// A cluster with these figures (the calibrated efficiencies unless given).
    public init(name: String, peakFLOPS: Double, memoryBandwidth: Double, deviceMemory: Double, devicesPerNode: Int,
                intraNodeBandwidth: Double, interNodeBandwidth: Double, efficiency: AchievableEfficiency = .calibrated) {
        self.name = name
        self.peakFLOPS = peakFLOPS
        self.memoryBandwidth = memoryBandwidth
        self.deviceMemory = deviceMemory
        self.devicesPerNode = devicesPerNode
        self.intraNodeBandwidth = intraNodeBandwidth
        self.interNodeBandwidth = interNodeBandwidth
        self.efficiency = efficiency
    }

    /// DGX A100 (80 GB, as on Selene, where Narayanan et al. 2021 measured): 312 TFLOP/s BF16/FP16,
    /// 2.039 TB/s HBM2e, 8 GPUs per node on NVLink 3 (600 GB/s both directions = 300 GB/s each way),
    /// eight 200 Gb/s HDR InfiniBand adapters per node (25 GB/s per GPU).
    public static let a100 = Cluster(name: "a100", peakFLOPS: 312e12, memoryBandwidth: 2.039e12, deviceMemory: 80e9,
                                     devicesPerNode: 8, intraNodeBandwidth: 300e9, interNodeBandwidth: 25e9)

    /// DGX/HGX H100 SXM (80 GB): 989 TFLOP/s dense BF16, 3.35 TB/s HBM3, NVLink 4 (900 GB/s both
    /// directions = 450 GB/s each way), one 400 Gb/s adapter per GPU (50 GB/s), as in Llama 3's cluster.
    public static let h100 = Cluster(name: "h100", peakFLOPS: 989e12, memoryBandwidth: 3.35e12, deviceMemory: 80e9,
                                     devicesPerNode: 8, intraNodeBandwidth: 450e9, interNodeBandwidth: 50e9)

    /// Machines like this project's build machine (`Hardware.cpu`), one process per machine,
    /// joined by `link` bytes/s (default 10 Gb/s Ethernet).
    public static func cpu(link: Double = 1.25e9) -> Cluster {
        Cluster(name: "cpu", peakFLOPS: Hardware.cpu.matmulFLOPS, memoryBandwidth: Hardware.cpu.memoryBandwidth,
                deviceMemory: Hardware.cpu.memoryBytes, devicesPerNode: 1, intraNodeBandwidth: link, interNodeBandwidth: link)
    }

    /// The preset called `name` (a100, h100, cpu), or nil.
    public static func named(_ name: String) -> Cluster? {
        switch name.lowercased() {
        case "a100": a100
        case "h100": h100
        case "cpu": cpu()
        default: nil
        }
    }

    /// The link a collective over `groupSize` ranks uses when the group's ranks are `stride`
    /// apart in the rank order (ranks fill a node before the next): intra-node while the group
    /// fits in one node.
    public func bandwidth(groupSize: Int, stride: Int) -> Double {
        groupSize * stride <= devicesPerNode ? intraNodeBandwidth : interNodeBandwidth
    }
}
