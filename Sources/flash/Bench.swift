import ArgumentParser

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks (print tables; --json for scripts).",
        subcommands: [
            BenchGEMM.self,
            BenchAttention.self,
            BenchTrain.self,
            BenchGenerate.self,
            BenchEmbed.self,
            BenchServe.self,
        ])
}
