import ArgumentParser
import FlashCore

/// `--kv-cache-type`, shared by the commands that run the serving engine.
struct KVCacheOptions: ParsableArguments {
    @Option(name: .customLong("kv-cache-type"),
            help: "Element type of the paged KV cache: f16 (half the memory and the bytes a decode step reads; the default for GGUF models, as llama.cpp's) or f32 (the default for checkpoints: exactly the --no-cache reference path's arithmetic).")
    var kvCacheType: String?

    /// The element type `--kv-cache-type` names, or nil for the model's default.
    var elementType: ElementType? {
        switch kvCacheType {
        case "f16": return .float16
        case "f32": return .float32
        default: return nil
        }
    }

    func validate() throws {
        if let kvCacheType, !["f16", "f32"].contains(kvCacheType) {
            throw ValidationError("--kv-cache-type must be f16 or f32, got \(kvCacheType)")
        }
    }
}
