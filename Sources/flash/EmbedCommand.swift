import ArgumentParser
import Foundation
import FlashCore
import Transformer

/// `flash embed`: sentence embeddings from a BERT-family sentence-transformers model.
struct EmbedCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "embed",
        abstract: "Print sentence embeddings from a BERT sentence-transformers model (e.g. all-MiniLM-L6-v2).",
        discussion: """
            MODEL is a Hugging Face directory with config.json, model.safetensors and vocab.txt; \
            modules.json, 1_Pooling/config.json and sentence_bert_config.json, when present, set the \
            pooling, the L2 normalisation and the maximum length, as in sentence-transformers. \
            Texts longer than the maximum length are truncated. Texts are padded and masked in \
            batches of --batch-size.
            """)

    @Option(name: .long, help: "Model directory (e.g. ~/.cache/flash-models/all-MiniLM-L6-v2).")
    var model: String

    @Flag(name: .long, help: "Print a JSON list with one array of floats per text.")
    var json = false

    @Option(name: .long, help: "Texts per padded batch.")
    var batchSize = 32

    @Option(name: .long, help: "Threads (default: FLASH_THREADS or all cores).")
    var threads: Int?

    @Argument(help: "The texts to embed.")
    var texts: [String]

    func validate() throws {
        if texts.isEmpty { throw ValidationError("give at least one TEXT") }
        if batchSize < 1 { throw ValidationError("--batch-size must be ≥ 1, got \(batchSize)") }
        if let threads, threads < 1 { throw ValidationError("--threads must be ≥ 1, got \(threads)") }
    }

    func run() throws {
        let directory = (model as NSString).expandingTildeInPath
        let encoder: BertSentenceEncoder
        let embeddings: [[Float]]
        do {
            encoder = try BertSentenceEncoder(directory: directory)
            embeddings = try encoder.embed(texts, batchSize: batchSize, threads: threads)
        } catch {
            FileHandle.standardError.write(Data("flash embed: \(error)\n".utf8))
            throw ExitCode.failure
        }
        if json {
            let data = try JSONSerialization.data(withJSONObject: embeddings.map { $0.map(Double.init) })
            print(String(decoding: data, as: UTF8.self))
            return
        }
        for (text, embedding) in zip(texts, embeddings) {
            print("\(text.debugDescription) (\(try encoder.tokenize(text).count) tokens, \(embedding.count) dims)")
            print(embedding.map { String(format: "%.6f", $0) }.joined(separator: " "))
        }
    }
}
