/// A device for roofline estimates: peak rates, memory bandwidth, and the on-chip memory that
/// FlashAttention's tiles must fit in.
public struct Hardware: Codable, Equatable, Sendable {
    /// Short name, as `--hardware` takes it (`a100`, `h100`, `cpu`).
    public var name: String
    /// Peak rate of matrix products (tensor cores on a GPU, FMA units on a CPU), FLOP/s.
    public var matmulFLOPS: Double
    /// Peak rate of other arithmetic (exp, max, scaling), FLOP/s.
    public var vectorFLOPS: Double
    /// Main-memory (HBM/DRAM) bandwidth, bytes/s.
    public var memoryBandwidth: Double
    /// On-chip memory one tile schedule may use (SRAM per SM, or a core's L2), bytes: M in the
    /// FlashAttention paper's analysis.
    public var onChipBytes: Int
    /// Main-memory capacity, bytes.
    public var memoryBytes: Double

    /// A device with these peak rates (FLOP/s), bandwidth (bytes/s) and memories (bytes).
    public init(name: String, matmulFLOPS: Double, vectorFLOPS: Double, memoryBandwidth: Double,
                onChipBytes: Int, memoryBytes: Double) {
        self.name = name
        self.matmulFLOPS = matmulFLOPS
        self.vectorFLOPS = vectorFLOPS
        self.memoryBandwidth = memoryBandwidth
        self.onChipBytes = onChipBytes
        self.memoryBytes = memoryBytes
    }

    /// NVIDIA A100 SXM4 40 GB, the FlashAttention paper's GPU: 312 TFLOP/s FP16 tensor cores,
    /// 19.5 TFLOP/s FP32 otherwise, 1555 GB/s HBM2, 192 KiB of SRAM per SM (paper, Section 2.1).
    public static let a100 = Hardware(
        name: "a100", matmulFLOPS: 312e12, vectorFLOPS: 19.5e12, memoryBandwidth: 1555e9,
        onChipBytes: 192 * 1024, memoryBytes: 40e9)

    /// NVIDIA H100 SXM5 80 GB: 989 TFLOP/s dense BF16 tensor cores, 67 TFLOP/s FP32,
    /// 3.35 TB/s HBM3, 228 KiB of shared memory per SM.
    public static let h100 = Hardware(
        name: "h100", matmulFLOPS: 989e12, vectorFLOPS: 67e12, memoryBandwidth: 3.35e12,
        onChipBytes: 228 * 1024, memoryBytes: 80e9)

    /// This project's build machine: 2 Zen 4 cores (AVX-512), 24 GiB. Measured 2026-11-24 with
    /// scripts/measure_cpu_peak.c (`gcc -O3 -march=native -fopenmp`): 12 independent
    /// `vfmadd` chains on zmm registers reach 117 GFLOP/s on one core (32 FLOP/cycle at ~3.7 GHz);
    /// the second core was busy with other builds, so the two-core peak is taken as 2 × 117.
    /// Memory: a STREAM-like triad over 128 MiB arrays moves 23 GB/s (counting 3 arrays, no
    /// write-allocate). On-chip memory: one core's 2 MiB L2 (as lscpu reports it in this VM).
    /// Non-matmul math (exp, max) runs on the same FMA pipes, about a quarter as fast.
    public static let cpu = Hardware(
        name: "cpu", matmulFLOPS: 234e9, vectorFLOPS: 58e9, memoryBandwidth: 23e9,
        onChipBytes: 2 * 1024 * 1024, memoryBytes: 24 * 1_073_741_824)

    /// Every built-in device.
    public static let all: [Hardware] = [a100, h100, cpu]

    /// The built-in device called `name` (case-insensitive), or nil.
    public static func named(_ name: String) -> Hardware? { all.first { $0.name == name.lowercased() } }
}
