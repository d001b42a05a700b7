import Foundation
import XCTest
import ModelFormats
import Serving
import Transformer

enum ServingFixtures {
    static let modelName = "SmolLM2-135M-Instruct.Q4_1.gguf"
    nonisolated(unsafe) private static var loaded: (LlamaModel, GGUFTokenizer)?

    /// SmolLM2-135M from the model cache (FLASH_MODEL_CACHE or ~/.cache/flash-models, filled by
    /// scripts/fetch_models.sh, which CI runs); skips when it has not been fetched.
    static func llama() throws -> (model: LlamaModel, tokenizer: GGUFTokenizer) {
        if let loaded { return loaded }
        let folder = ProcessInfo.processInfo.environment["FLASH_MODEL_CACHE"] ?? (NSHomeDirectory() + "/.cache/flash-models")
        let path = folder + "/" + modelName
        guard FileManager.default.fileExists(atPath: path) else {
            throw XCTSkip("\(modelName) not found in \(folder); run `bash scripts/fetch_models.sh` to fetch it")
        }
        let file = try GGUFFile(path: path)
        let result = (try LlamaModel(file: file, threads: 2), try GGUFTokenizer(file: file))
        loaded = result
        return result
    }

    /// A small LLaMA-style model made here: rotary, RMSNorm, SwiGLU, grouped-query attention,
    /// weights scaled up from the initialisation so that logits are far from ties.
    static func checkpointModel(_ config: TransformerConfig = TransformerConfig(
        layers: 2, heads: 4, kvHeads: 2, width: 64, mlpWidth: 320, context: 96, vocabularySize: 61,
        positionEncoding: .rotary, norm: .rmsNorm, activation: .swiglu, bias: false, tiedEmbeddings: false)) throws -> TransformerModel {
        let model = try TransformerModel(config: config, seed: 5)
        for i in 0..<model.parameterCount { model.parameters[i] *= 6 }
        model.threads = 2
        return model
    }

    static func argmax(_ row: ArraySlice<Float>) -> Int {
        var best = row.startIndex
        for i in row.indices where row[i] > row[best] { best = i }
        return best - row.startIndex
    }

    /// `flash generate --temperature 0`'s arithmetic written out: the whole prompt in one pass,
    /// then one token per pass, one sequence in blocks 0, 1, 2, … of its own cache.
    static func referenceGreedy(_ model: any PagedLanguageModel, prompt: [Int], maxTokens: Int,
                                stop: Set<Int> = []) throws -> [Int] {
        let blockSize = 16
        let blocks = (prompt.count + maxTokens + blockSize - 1) / blockSize
        let cache = try model.makePagedCache(blockCount: blocks, blockSize: blockSize)
        let table = (0..<blocks).map(Int32.init)
        var logits = try model.forward(PagedBatch(sequences: [.init(tokens: prompt, start: 0, blockTable: table, logitRows: 1)]), cache: cache)
        var generated: [Int] = []
        var position = prompt.count
        while generated.count < maxTokens {
            let token = argmax(logits[...])
            if stop.contains(token) { break }
            generated.append(token)
            if generated.count == maxTokens { break }
            logits = try model.forward(PagedBatch(sequences: [.init(tokens: [token], start: position, blockTable: table, logitRows: 1)]),
                                       cache: cache)
            position += 1
        }
        return generated
    }

    /// Runs `requests` through `engine` at once; returns each request's tokens per sample and
    /// its finish events.
    static func run(_ engine: ServingEngine, _ requests: [GenerationRequest]) async throws
        -> [(tokens: [[Int]], finishes: [(FinishReason, Usage)])] {
        let streams = try requests.map { try engine.submit($0) }
        return try await withThrowingTaskGroup(of: (Int, [[Int]], [(FinishReason, Usage)]).self) { group in
            for (i, stream) in streams.enumerated() {
                let n = requests[i].n
                group.addTask {
                    var tokens = [[Int]](repeating: [], count: n)
                    var finishes: [(FinishReason, Usage)] = []
                    for try await event in stream {
                        switch event {
                        case .token(let t): tokens[t.index].append(t.token)
                        case .finished(_, let reason, let usage): finishes.append((reason, usage))
                        }
                    }
                    return (i, tokens, finishes)
                }
            }
            var results = [(tokens: [[Int]], finishes: [(FinishReason, Usage)])](repeating: ([], []), count: requests.count)
            for try await (i, tokens, finishes) in group { results[i] = (tokens, finishes) }
            return results
        }
    }
}
