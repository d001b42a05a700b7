import ArgumentParser
import Serving
import ServingHTTP

/// The speculative-decoding flags `flash generate` and `flash serve` share, checked once here.
struct SpeculationOptions: ParsableArguments {
    @Option(help: "Speculative decoding: none, ngram (prompt lookup, no second model) or draft (--draft-gguf/--draft-checkpoint); the output is unchanged.")
    var speculative = "none"
    @Option(name: .customLong("draft-tokens"), help: "Tokens proposed per sequence and step with --speculative (1...16): more = more tokens per pass when guesses are good, more wasted rows when not.")
    var draftTokens = 4
    @Option(name: .customLong("draft-gguf"), help: "Draft model for --speculative draft: a GGUF with the target's vocabulary.")
    var draftGGUF: String?
    @Option(name: .customLong("draft-checkpoint"), help: "Draft model for --speculative draft: a `flash train` checkpoint with the target's vocabulary.")
    var draftCheckpoint: String?

    /// The method `--speculative` names (`validate` has refused any other spelling).
    var method: SpeculationMethod { SpeculationMethod(rawValue: speculative) ?? .none }

    /// The draft model and the flag that named it, for errors that name the flag.
    var draft: (source: ModelSource, flag: String)? {
        draftGGUF.map { (.gguf($0), "--draft-gguf") } ?? draftCheckpoint.map { (.checkpoint($0), "--draft-checkpoint") }
    }

    func validate() throws {
        guard let method = SpeculationMethod(rawValue: speculative) else {
            throw ValidationError("--speculative must be none, ngram or draft, got \(speculative)")
        }
        if !(1...16).contains(draftTokens) { throw ValidationError("--draft-tokens must be in 1...16, got \(draftTokens)") }
        if draftGGUF != nil && draftCheckpoint != nil { throw ValidationError("give at most one of --draft-gguf FILE or --draft-checkpoint DIR") }
        if method == .draft && draftGGUF == nil && draftCheckpoint == nil {
            throw ValidationError("--speculative draft needs --draft-gguf FILE or --draft-checkpoint DIR")
        }
        if method != .draft && (draftGGUF != nil || draftCheckpoint != nil) {
            throw ValidationError("--draft-gguf/--draft-checkpoint need --speculative draft")
        }
    }
}
