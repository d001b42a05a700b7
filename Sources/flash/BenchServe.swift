import ArgumentParser
import Foundation
import FlashCore
import ModelFormats
import Serving
import Transformer

/// `flash bench serve`: aggregate decode throughput of the serving engine at several numbers of
/// concurrent streams (continuous batching: every step is one pass over the weights for all).
struct BenchServe: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Aggregate decode tokens/s of the serving engine at 1, 2, 4, 8, 16 concurrent streams.",
        discussion: """
            Each stream is a greedy request with its own 32-token prompt. All prompts are prefilled \
            first; the clock then runs over the decode steps only (every running stream one token per \
            step, one batched pass). Engine-only: no HTTP. Tokens per CPU-second (user + system time \
            of the process) is printed too: on a shared machine it is steadier than the clock. \
            Polling workers spin while idle, so with several threads it also counts their waiting.
            """)

    @Option(name: .customLong("gguf"), help: "The GGUF model (default: SmolLM2-135M-Instruct.Q4_1.gguf in FLASH_MODEL_CACHE or ~/.cache/flash-models).")
    var gguf: String?
    @Option(help: "Comma-separated stream counts.")
    var streams = "1,2,4,8,16"
    @Option(name: .customLong("decode-tokens"), help: "Tokens each stream generates.")
    var decodeTokens = 64
    @Option(help: "Speculative decoding: none or ngram.")
    var speculative = "none"
    @Flag(help: "A task that copies from its prompt: each prompt is its 32-token text written twice (greedy continuations keep repeating it), where prompt lookup can guess.")
    var copy = false
    @Option(help: "Threads (default: FLASH_THREADS or all cores).")
    var threads: Int?
    @Flag(help: "Print one JSON object.")
    var json = false

    /// User + system CPU time of this process so far: unlike the clock, it does not count time
    /// the machine gave to other processes, so it still compares runs on a loaded machine.
    static func cpuSeconds() -> Double {
        var usage = rusage()
        #if os(Linux)
        getrusage(RUSAGE_SELF.rawValue, &usage)
        #else
        getrusage(RUSAGE_SELF, &usage)
        #endif
        func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }

    func run() throws {
        let counts = streams.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        try InvalidArgument.require(!counts.isEmpty && counts.allSatisfy { $0 >= 1 && $0 <= 256 }, "--streams",
                                    expected: "comma-separated counts in 1...256", got: streams)
        try InvalidArgument.require(decodeTokens >= 2, "--decode-tokens", expected: "≥ 2", got: "\(decodeTokens)")
        guard let method = SpeculationMethod(rawValue: speculative), method != .draft else {
            throw InvalidArgument("--speculative", expected: "none or ngram", got: speculative)
        }
        if let threads { try InvalidArgument.require(threads >= 1, "--threads", expected: "≥ 1", got: "\(threads)") }
        let path = gguf ?? ((ProcessInfo.processInfo.environment["FLASH_MODEL_CACHE"] ?? NSHomeDirectory() + "/.cache/flash-models")
            + "/SmolLM2-135M-Instruct.Q4_1.gguf")
        let file = try GGUFFile(path: path)
        let model = try LlamaModel(file: file, threads: threads)
        let tokenizer = try GGUFTokenizer(file: file)
        let text = BenchGenerate.promptIDs(tokenizer: tokenizer, count: 32 * (counts.max()! + 1))
        var rows: [(streams: Int, tokensPerSecond: Double, tokensPerCPUSecond: Double, accepted: Int, proposed: Int)] = []
        for n in counts {
            let scheduler = try Scheduler(model: model, configuration: ServingConfiguration(
                blockSize: 16, blockCount: n * ((64 + decodeTokens) / 16 + 2), maxRunning: n, maxBatchTokens: 64 * n,
                maxWaiting: n, prefixCaching: false, threads: threads, speculation: method))
            var emitted = 0
            for i in 0..<n {
                // Distinct prompts (shifted windows of one text), so nothing is shared.
                let window = Array(text[(32 * i)..<(32 * i + 32)])
                try scheduler.add(id: i, request: GenerationRequest(promptTokens: copy ? window + window : window,
                                                                    maxTokens: decodeTokens, sampling: SamplingParameters(temperature: 0)),
                                  deliver: { if case .token = $0 { emitted += 1 } }, complete: {})
            }
            while emitted < n && scheduler.hasWork { try scheduler.step() }  // prefill: one token per stream
            let start = Date(), startCPU = Self.cpuSeconds(), before = emitted
            while scheduler.hasWork { try scheduler.step() }
            let tokens = Double(emitted - before)
            let stats = scheduler.statistics
            rows.append((n, tokens / Date().timeIntervalSince(start), tokens / max(Self.cpuSeconds() - startCPU, 1e-9),
                         stats.speculativeAccepted, stats.speculativeProposed))
        }
        let threadCount = threads ?? Parallel.defaultThreads
        let single = rows.first { $0.streams == 1 }?.tokensPerSecond
        if json {
            let entries = rows.map {
                "{\"streams\": \($0.streams), \"decode_tokens_per_second\": \(String(format: "%.2f", $0.tokensPerSecond)), "
                    + "\"decode_tokens_per_cpu_second\": \(String(format: "%.2f", $0.tokensPerCPUSecond)), "
                    + "\"speculative_proposed\": \($0.proposed), \"speculative_accepted\": \($0.accepted)}"
            }
            print("{\"model\": \"\((path as NSString).lastPathComponent)\", \"threads\": \(threadCount), \"isa\": \"\(VectorISA.compiled)\", "
                + "\"decode_tokens\": \(decodeTokens), \"speculative\": \"\(method.rawValue)\", \"copy\": \(copy), \"rows\": [\(entries.joined(separator: ", "))]}")
        } else {
            print("model   \((path as NSString).lastPathComponent), threads \(threadCount), ISA \(VectorISA.compiled), speculative \(method.rawValue)")
            print("streams  decode tokens/s  vs 1 stream  tokens/CPU-s  guesses accepted")
            for r in rows {
                let ratio = single.map { String(format: "%10.2f×", r.tokensPerSecond / $0) } ?? "-"
                let acceptance = r.proposed == 0 ? "-" : String(format: "%d/%d (%.0f%%)", r.accepted, r.proposed, 100 * Double(r.accepted) / Double(r.proposed))
                print(String(format: "%7d  %15.1f  ", r.streams, r.tokensPerSecond) + ratio + String(format: "  %12.1f  ", r.tokensPerCPUSecond) + acceptance)
            }
        }
    }
}
