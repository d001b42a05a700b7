import ArgumentParser
import Foundation
import FlashCore
import Transformer

/// `flash bench embed`: sentence-encoder throughput (sentences/s, tokenisation included) at
/// batch 1 and 32 on a fixed set of 32 sentences of 6 to 35 words. scripts/bench_embed.py runs
/// sentence-transformers on the same sentences and prints the ratios.
struct BenchEmbed: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "embed",
        abstract: "Sentence-encoder throughput (sentences/s) at batch 1 and 32.",
        discussion: "Each configuration runs the 32 benchmark sentences repeatedly for about --seconds seconds after a warm-up pass and reports the fastest pass.")

    @Option(name: .long, help: "Model directory (default: $FLASH_MODEL_CACHE or ~/.cache/flash-models, then all-MiniLM-L6-v2).")
    var model: String?

    @Option(name: .long, help: "Threads (default: FLASH_THREADS or all cores).")
    var threads: Int?

    @Option(name: .long, help: "Seconds of timed passes per batch size.")
    var seconds: Double = 3

    @Option(name: .long, parsing: .upToNextOption, help: "Batch sizes to measure.")
    var batch: [Int] = [1, 32]

    @Flag(name: .long, help: "Print JSON: a list of {batch, sentences_per_second, threads, tokens_per_second}.")
    var json = false

    /// The benchmark sentences: sentence i takes 6 + (7·i mod 30) words of a fixed paragraph,
    /// starting at word 5·i (wrapping). scripts/bench_embed.py builds the same list.
    static func sentences() -> [String] {
        let words = """
            FlashAttention computes exact attention without materialising the full score matrix. It tiles \
            queries, keys and values so that each block fits in fast memory, keeps a running maximum and \
            normaliser for the softmax, and rescales partial outputs as new blocks arrive. Sentence encoders \
            such as MiniLM turn short texts into vectors whose cosine similarity reflects meaning, which is \
            useful for search, clustering and deduplication of documents in 2024.
            """.split(separator: " ").map(String.init)
        return (0..<32).map { i in
            let count = 6 + (7 * i) % 30
            return (0..<count).map { words[(5 * i + $0) % words.count] }.joined(separator: " ")
        }
    }

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be ≥ 1, got \(threads)") }
        if !(seconds > 0) { throw ValidationError("--seconds must be > 0, got \(seconds)") }
        if batch.isEmpty || batch.contains(where: { $0 < 1 }) { throw ValidationError("--batch sizes must be ≥ 1, got \(batch)") }
    }

    func run() throws {
        let cache = ProcessInfo.processInfo.environment["FLASH_MODEL_CACHE"] ?? (NSHomeDirectory() as NSString).appendingPathComponent(".cache/flash-models")
        let directory = ((model ?? (cache as NSString).appendingPathComponent("all-MiniLM-L6-v2")) as NSString).expandingTildeInPath
        let encoder: BertSentenceEncoder
        do { encoder = try BertSentenceEncoder(directory: directory) } catch {
            FileHandle.standardError.write(Data("flash bench embed: \(error)\n".utf8))
            throw ExitCode.failure
        }
        let sentences = Self.sentences()
        let tokens = try sentences.reduce(0) { $0 + (try encoder.tokenize($1).count) }
        let threadCount = threads ?? Parallel.defaultThreads
        var results: [[String: Any]] = []
        if !json { print(Bench.isaLine) }
        if !json { print("model \(directory), \(sentences.count) sentences, \(tokens) tokens, \(threadCount) threads") }
        for size in batch {
            func pass() throws {
                if size == 1 {
                    for sentence in sentences { _ = try encoder.embed([sentence], threads: threadCount) }
                } else {
                    _ = try encoder.embed(sentences, batchSize: size, threads: threadCount)
                }
            }
            try pass()  // warm-up
            var best = Double.infinity
            let start = Date()
            repeat {
                let passStart = Date()
                try pass()
                best = min(best, Date().timeIntervalSince(passStart))
            } while Date().timeIntervalSince(start) < seconds
            let perSecond = Double(sentences.count) / best
            results.append(["batch": size, "sentences_per_second": perSecond, "threads": threadCount, "isa": Bench.isa,
                            "tokens_per_second": Double(tokens) / best])
            if !json {
                print("batch \(size): \(String(format: "%.1f", perSecond)) sentences/s, \(String(format: "%.0f", Double(tokens) / best)) tokens/s")
            }
        }
        if json {
            let data = try JSONSerialization.data(withJSONObject: results, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        }
    }
}
