import Foundation
import XCTest
import ModelFormats
import Transformer

/// Loads the committed reference fixtures and the test model (shared by the Llama tests).
enum LlamaFixtures {
    static func json(_ name: String) throws -> [String: Any] {
        guard let url = Bundle.module.url(forResource: "Fixtures/llama/\(name)", withExtension: "json") else {
            throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: "Fixtures/llama/\(name).json (committed with the tests)"])
        }
        return try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
    }

    static let modelName = "SmolLM2-135M-Instruct.Q4_1.gguf"

    /// The cached SmolLM2 GGUF (FLASH_MODEL_CACHE or ~/.cache/flash-models); skips the test when
    /// it has not been fetched (`bash scripts/fetch_models.sh`).
    static func modelPath() throws -> String {
        let folder = ProcessInfo.processInfo.environment["FLASH_MODEL_CACHE"]
            ?? (NSHomeDirectory() + "/.cache/flash-models")
        let path = folder + "/" + modelName
        guard FileManager.default.fileExists(atPath: path) else {
            throw XCTSkip("\(modelName) not found in \(folder); run `bash scripts/fetch_models.sh` to fetch it")
        }
        return path
    }

    nonisolated(unsafe) private static var loaded: (GGUFFile, LlamaModel, GGUFTokenizer)?

    /// The model, loaded once per test process.
    static func model() throws -> (file: GGUFFile, model: LlamaModel, tokenizer: GGUFTokenizer) {
        if let loaded { return loaded }
        let file = try GGUFFile(path: try modelPath())
        let result = (file, try LlamaModel(file: file), try GGUFTokenizer(file: file))
        loaded = result
        return result
    }
}
