import ArgumentParser

@main
struct Flash: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flash",
        abstract: "A transformer engine in Swift with FlashAttention at its heart.",
        subcommands: [
            Demo.self,
            TrainCommand.self,
            GenerateCommand.self,
            AttentionCommand.self,
            EmbedCommand.self,
            EstimateCommand.self,
            PlanCommand.self,
            IOCommand.self,
            Bench.self,
        ])
}
