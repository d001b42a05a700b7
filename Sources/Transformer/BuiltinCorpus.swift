import Foundation

/// Errors finding the built-in corpus.
public enum BuiltinCorpusError: Error, CustomStringConvertible {
    /// The corpus resource could not be found or read; the reason says which.
    case missing(String)
    /// What could not be found.
    public var description: String {
        switch self { case .missing(let reason): "built-in corpus: \(reason)" }
    }
}

/// The demo's training text: ~320 KB of plain English about attention, transformers,
/// FlashAttention, GEMM and training, written for this project by `scripts/make_corpus.py`
/// (templates + a seeded random walk; no outside text). Shipped as the package resource
/// `Corpus/corpus.txt`.
public enum BuiltinCorpus {
    /// The whole corpus as one string.
    public static func text() throws -> String {
        guard let directory = Bundle.module.url(forResource: "Corpus", withExtension: nil) else {
            throw BuiltinCorpusError.missing("the Corpus resource is not in the Transformer bundle")
        }
        let file = directory.appendingPathComponent("corpus.txt")
        do { return try String(contentsOf: file, encoding: .utf8) } catch {
            throw BuiltinCorpusError.missing("\(file.path): \(error.localizedDescription)")
        }
    }
}
