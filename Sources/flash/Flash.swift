import ArgumentParser

@main
struct Flash: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flash",
        abstract: "A transformer engine in Swift with FlashAttention at its heart.",
        subcommands: [
            Demo.self,
            TrainCommand.self,
            GenerateCommand.self,
            ServeCommand.self,
            AttentionCommand.self,
            EmbedCommand.self,
            EstimateCommand.self,
            IOCommand.self,
            Bench.self,
        ])
}
