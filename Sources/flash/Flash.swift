import ArgumentParser
import FlashCore

@main
struct Flash: AsyncParsableCommand {
    /// The release this source tree is; `flash --version` prints it with the vector ISA the
    /// binary was compiled for (a binary built with FLASH_MARCH=x86-64-v3 says AVX2+FMA even on
    /// an AVX-512 machine).
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "flash",
        abstract: "A transformer engine in Swift with FlashAttention at its heart.",
        version: "flash \(version) (\(VectorISA.compiled.rawValue), \(FloatVector.scalarCount)-float vectors)",
        subcommands: [
            Demo.self,
            TrainCommand.self,
            GenerateCommand.self,
            ServeCommand.self,
            AttentionCommand.self,
            EmbedCommand.self,
            EstimateCommand.self,
            PlanCommand.self,
            IOCommand.self,
            Bench.self,
        ])
}
