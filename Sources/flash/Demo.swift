import ArgumentParser
import FlashCore

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the main job end to end.")
    func run() throws {
        print("flash demo: nothing here yet")
    }
}
