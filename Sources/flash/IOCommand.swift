import ArgumentParser
import Estimates
import FlashCore

struct IOCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "io",
        abstract: "FLOPs, main-memory traffic and roofline time of standard vs flash attention.",
        discussion: """
            Counts every byte the standard algorithm (S, P and their gradients in main memory) and \
            FlashAttention (tiles streamed through on-chip memory) move, forward and backward, after the \
            FlashAttention paper's IO analysis. --preset gpt2-medium-a100 is the paper's Figure 2 setting \
            and prints the paper's figures beside the model's. Formulas: docs/estimates.md.
            """)

    @Option(help: "gpt2-medium-a100: GPT-2 medium attention (seq 1024, head dim 64, 16 heads, batch 64, FP16, dropout) on an A100.")
    var preset: String?
    @Option(help: "Batch size.") var batch: Int?
    @Option(help: "Heads.") var heads: Int?
    @Option(help: "Query sequence length Nq.") var seq: Int?
    @Option(help: "Key sequence length Nk; default Nq.") var keys: Int?
    @Option(help: "Head dimension d.") var headDim: Int?
    @Option(help: "Bytes per element (2 for FP16/BF16, 4 for FP32).") var elementBytes: Int?
    @Flag(inversion: .prefixedNo, help: "Causal mask (bottom-right aligned).") var causal: Bool?
    @Flag(inversion: .prefixedNo, help: "Dropout on P.") var dropout: Bool?
    @Option(help: "Device: \(Hardware.all.map(\.name).joined(separator: ", ")).") var hardware: String?
    @Option(help: "Flash query tile Br; default: the paper's min(⌈M/4d⌉, d) for the device's on-chip memory M.") var queryTile: Int?
    @Option(help: "Flash key tile Bc; default: the paper's ⌈M/4d⌉.") var keyTile: Int?
    @Option(help: "Flash loop order: paper (FlashAttention-1), query-outer (FlashAttention-2).") var schedule: String?
    @Flag(help: "Standard attention applies a causal mask in its own pass over S and dS.") var separateMaskPass = false
    @Flag(help: "Print JSON instead of a table.") var json = false

    /// The flag each library field comes from, so that errors name what the user typed.
    private static let flags = ["batch": "--batch", "heads": "--heads", "queryLength": "--seq", "keyLength": "--keys",
                                "headDim": "--head-dim", "elementBytes": "--element-bytes", "queryTile": "--query-tile",
                                "keyTile": "--key-tile"]

    func run() throws {
        do { try report() } catch let error as InvalidArgument {
            guard let flag = Self.flags[error.argument] else { throw error }
            throw InvalidArgument(flag, expected: error.expected, got: error.got)
        }
    }

    private func report() throws {
        var problem: AttentionProblem
        var device = Hardware.a100
        var showPaper = false
        if let preset {
            guard preset.lowercased() == "gpt2-medium-a100" else {
                throw InvalidArgument("--preset", expected: "gpt2-medium-a100", got: preset)
            }
            problem = .gpt2Medium
            showPaper = true
        } else {
            guard let seq else { throw InvalidArgument("--seq", expected: "a value (or --preset)", got: "nothing") }
            guard let headDim else { throw InvalidArgument("--head-dim", expected: "a value (or --preset)", got: "nothing") }
            problem = AttentionProblem(batch: 1, heads: 1, queryLength: seq, headDim: headDim)
        }
        if let batch { problem.batch = batch }
        if let heads { problem.heads = heads }
        if let seq { problem.queryLength = seq; if keys == nil { problem.keyLength = seq } }
        if let keys { problem.keyLength = keys }
        if let headDim { problem.headDim = headDim }
        if let elementBytes { problem.elementBytes = elementBytes }
        if let causal { problem.causal = causal }
        if let dropout { problem.dropout = dropout }
        if let hardware {
            guard let found = Hardware.named(hardware) else {
                throw InvalidArgument("--hardware", expected: "one of " + Hardware.all.map(\.name).joined(separator: ", "), got: hardware)
            }
            device = found
        }
        if problem != .gpt2Medium || device != .a100 { showPaper = false }
        try problem.validate()
        var tiling = FlashTiling.paper(onChipBytes: device.onChipBytes, headDim: problem.headDim, elementBytes: problem.elementBytes)
        if let queryTile { tiling.queryTile = queryTile }
        if let keyTile { tiling.keyTile = keyTile }
        if let schedule { tiling.schedule = try EstimateFormat.choice(schedule, "--schedule", as: FlashSchedule.self) }

        let standard = try AttentionIO.standard(problem, separateMaskPass: separateMaskPass)
        let flash = try AttentionIO.flash(problem, tiling: tiling)
        if json {
            func entry(_ report: AttentionIOReport) -> [String: Any] {
                func pass(_ cost: AttentionCost) -> [String: Any] {
                    ["flops": cost.flops, "matmul_flops": cost.matmulFLOPs, "other_flops": cost.otherFLOPs,
                     "bytes": cost.bytes, "bytes_read": cost.bytesRead, "bytes_written": cost.bytesWritten,
                     "seconds": cost.seconds(on: device), "compute_seconds": cost.computeSeconds(on: device),
                     "memory_seconds": cost.memorySeconds(on: device)]
                }
                var total = pass(report.total)
                total["forward"] = pass(report.forward)
                total["backward"] = pass(report.backward)
                return total
            }
            var object: [String: Any] = [
                "problem": ["batch": problem.batch, "heads": problem.heads, "query_length": problem.queryLength,
                            "key_length": problem.keyLength, "head_dim": problem.headDim, "element_bytes": problem.elementBytes,
                            "causal": problem.causal, "dropout": problem.dropout] as [String: Any],
                "hardware": ["name": device.name, "matmul_flops": device.matmulFLOPS, "vector_flops": device.vectorFLOPS,
                             "memory_bandwidth": device.memoryBandwidth, "on_chip_bytes": device.onChipBytes] as [String: Any],
                "tiling": ["query_tile": tiling.queryTile, "key_tile": tiling.keyTile, "schedule": tiling.schedule.rawValue] as [String: Any],
                "standard": entry(standard), "flash": entry(flash),
            ]
            if showPaper {
                object["paper"] = [
                    "standard": ["flops": PaperFigures.standard.gigaFLOPs * 1e9, "bytes": PaperFigures.standard.gigabytes * 1e9,
                                 "seconds": PaperFigures.standard.milliseconds * 1e-3],
                    "flash": ["flops": PaperFigures.flash.gigaFLOPs * 1e9, "bytes": PaperFigures.flash.gigabytes * 1e9,
                              "seconds": PaperFigures.flash.milliseconds * 1e-3],
                ]
            }
            try EstimateFormat.printJSON(object)
            return
        }

        print("Attention: batch \(problem.batch), \(problem.heads) heads, Nq \(problem.queryLength), Nk \(problem.keyLength), "
              + "d \(problem.headDim), \(problem.elementBytes)-byte elements" + (problem.causal ? ", causal" : "")
              + (problem.dropout ? ", dropout" : "") + " — forward + backward on \(device.name)")
        print("Flash tiles: Br \(tiling.queryTile) × Bc \(tiling.keyTile), \(tiling.schedule.rawValue) schedule; "
              + "on-chip memory M = \(device.onChipBytes / 1024) KiB")
        func row(_ name: String, _ cost: AttentionCost) -> [String] {
            [name, String(format: "%.1f", cost.flops / 1e9), String(format: "%.1f", cost.matmulFLOPs / 1e9),
             String(format: "%.2f", cost.bytes / 1e9), String(format: "%.1f", cost.intensity),
             String(format: "%.2f", cost.computeSeconds(on: device) * 1e3), String(format: "%.2f", cost.memorySeconds(on: device) * 1e3),
             String(format: "%.2f", cost.seconds(on: device) * 1e3)]
        }
        var rows = [row("standard", standard.total), row("  forward", standard.forward), row("  backward", standard.backward),
                    row("flash", flash.total), row("  forward", flash.forward), row("  backward", flash.backward)]
        if showPaper {
            for (name, figures) in [("paper standard", PaperFigures.standard), ("paper flash", PaperFigures.flash)] {
                rows.append([name, String(format: "%.1f", figures.gigaFLOPs), "", String(format: "%.1f", figures.gigabytes), "", "", "",
                             String(format: "%.1f", figures.milliseconds)])
            }
        }
        EstimateFormat.table(["", "GFLOP", "matmul", "GB moved", "FLOP/B", "compute ms", "memory ms", "roofline ms"], rows)
        print(String(format: "flash vs standard: %.3f× the FLOPs, %.1f× less traffic, %.1f× faster (roofline)",
                     flash.total.flops / standard.total.flops, standard.total.bytes / flash.total.bytes,
                     standard.total.seconds(on: device) / flash.total.seconds(on: device)))
        if showPaper {
            print(String(format: "paper:             %.3f× the FLOPs, %.1f× less traffic, %.1f× faster (measured)",
                         PaperFigures.flash.gigaFLOPs / PaperFigures.standard.gigaFLOPs,
                         PaperFigures.standard.gigabytes / PaperFigures.flash.gigabytes,
                         PaperFigures.standard.milliseconds / PaperFigures.flash.milliseconds))
            print("The paper's GFLOP column is off by a constant factor (flash-attention issue #741); see docs/estimates.md.")
        }
    }
}
