import ArgumentParser
import FlashCore

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks (print tables; --json for scripts).",
        discussion: "Every benchmark names the vector ISA the binary was built for: a first line of text, an \"isa\" field in JSON.",
        subcommands: [
            BenchGEMM.self,
            BenchAttention.self,
            BenchTrain.self,
            BenchGenerate.self,
            BenchEmbed.self,
            BenchServe.self,
        ])

    /// The vector ISA this binary was built for (`VectorISA.compiled`), as every benchmark's
    /// JSON names it ("isa").
    static var isa: String { VectorISA.compiled.rawValue }

    /// The line every benchmark's text output starts with.
    static var isaLine: String {
        let compiled = VectorISA.compiled
        return "ISA: \(compiled.rawValue) (\(compiled.floatLanes) floats × \(compiled.vectorRegisters) vector registers, GEMM tile \(GEMMBlocking.tile))"
    }
}
