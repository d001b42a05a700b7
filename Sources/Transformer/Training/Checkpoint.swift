import Foundation
import FlashCore
import ModelFormats

/// A checkpoint directory:
/// - `config.json` — the `TransformerConfig`
/// - `model.safetensors` — every parameter tensor by its `ParameterLayout` name (Float32, [in, out] matrices)
/// - `tokenizer.json` — the tokenizer, as its own JSON (opaque here)
/// - `optimizer.safetensors` — AdamW's moments as two flat tensors (training checkpoints only)
/// - `training.json` — step, options, the data sampler's RNG state, and the data source
///
/// Written atomically: everything goes into a sibling temporary directory, which is then
/// renamed into place, so a crash mid-write leaves the previous checkpoint intact.
public enum Checkpoint {
    /// What `training.json` holds.
    public struct TrainingState: Codable, Sendable {
        /// Steps completed.
        public var step: Int
        /// The run's options.
        public var options: TrainingOptions
        /// The data sampler's generator, so the next batch is the one the run would have drawn.
        public var random: TrainerRandom
        /// AdamW's update count (t in its bias corrections).
        public var optimizerStep: Int
        /// Where the training text came from (nil: the built-in corpus).
        public var dataPath: String?
        /// Which tokenizer `tokenizer.json` holds, as the `flash` command names it (`char` or `bpe`).
        public var tokenizerKind: String
        /// Data-parallel groups of the run that wrote it (nil: one); `options.batch` is per
        /// group, so the global batch is options.batch × dataParallelSize.
        public var dataParallelSize: Int?
    }

    /// Writes the model (and, when given, the trainer's state) to `directory`. Under ZeRO-1 the
    /// moments are spread over the ranks: pass `moments` from `Trainer.fullOptimizerMoments()`
    /// (called on every rank); otherwise they are read from the trainer.
    public static func save(model: TransformerModel, tokenizerJSON: Data, trainer: Trainer? = nil,
                            moments: (first: [Float], second: [Float])? = nil,
                            dataPath: String? = nil, tokenizerKind: String = "", to directory: String) throws {
        let fm = FileManager.default
        let target = URL(fileURLWithPath: directory).standardizedFileURL
        let temporary = target.deletingLastPathComponent().appendingPathComponent(".\(target.lastPathComponent).partial-\(getpid())")
        let previous = target.deletingLastPathComponent().appendingPathComponent(".\(target.lastPathComponent).previous-\(getpid())")
        try? fm.removeItem(at: temporary)
        try fm.createDirectory(at: temporary, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(model.config).write(to: temporary.appendingPathComponent("config.json"))
        try tokenizerJSON.write(to: temporary.appendingPathComponent("tokenizer.json"))
        var tensors: [String: Tensor] = [:]
        for entry in model.layout.entries {
            tensors[entry.name] = try tensor(model.parameters + entry.offset, shape: entry.shape)
        }
        try Safetensors.write(tensors, metadata: ["format": "flash-transformer"], to: temporary.appendingPathComponent("model.safetensors").path)
        if let trainer {
            let n = model.parameterCount
            let (first, second) = try moments ?? trainer.fullOptimizerMoments()
            try Safetensors.write(["first_moment": Tensor(shape: [n], values: first),
                                   "second_moment": Tensor(shape: [n], values: second)],
                                  to: temporary.appendingPathComponent("optimizer.safetensors").path)
            let state = TrainingState(step: trainer.step, options: trainer.options, random: trainer.random,
                                      optimizerStep: trainer.optimizer.step, dataPath: dataPath, tokenizerKind: tokenizerKind,
                                      dataParallelSize: trainer.dataParallelSize)
            try encoder.encode(state).write(to: temporary.appendingPathComponent("training.json"))
        }
        // Swap: old → previous, temporary → target, drop previous. Between the two renames the
        // old checkpoint still exists under `previous`, which `resolve` falls back to.
        try? fm.removeItem(at: previous)
        if fm.fileExists(atPath: target.path) { try fm.moveItem(at: target, to: previous) }
        try fm.moveItem(at: temporary, to: target)
        try? fm.removeItem(at: previous)
    }

    private static func tensor(_ source: UnsafePointer<Float>, shape: [Int]) throws -> Tensor {
        let t = try Tensor(zeros: shape)
        t.floatPointer.update(from: source, count: t.elementCount)
        return t
    }

    /// The checkpoint's configuration.
    public static func loadConfig(from directory: String) throws -> TransformerConfig {
        let url = URL(fileURLWithPath: directory).appendingPathComponent("config.json")
        guard let data = try? Data(contentsOf: url) else {
            throw InvalidArgument("--checkpoint", expected: "a checkpoint directory with config.json", got: directory)
        }
        let config = try JSONDecoder().decode(TransformerConfig.self, from: data)
        try config.validate()
        return config
    }

    /// The model stored in `directory`.
    public static func loadModel(from directory: String) throws -> TransformerModel {
        let model = try TransformerModel(config: loadConfig(from: directory))
        let (tensors, _) = try Safetensors.read(path: URL(fileURLWithPath: directory).appendingPathComponent("model.safetensors").path)
        for entry in model.layout.entries {
            guard let t = tensors[entry.name] else {
                throw InvalidArgument("model.safetensors", expected: "a tensor named \(entry.name)", got: "none")
            }
            try InvalidArgument.require(t.shape == entry.shape, "\(entry.name).shape", expected: "\(entry.shape)", got: "\(t.shape)")
            let values = t.floats()
            (model.parameters + entry.offset).update(from: values, count: values.count)
        }
        return model
    }

    /// The tokenizer JSON stored in `directory`.
    public static func loadTokenizerJSON(from directory: String) throws -> Data {
        try Data(contentsOf: URL(fileURLWithPath: directory).appendingPathComponent("tokenizer.json"))
    }

    /// The training state stored in `directory`.
    public static func loadTrainingState(from directory: String) throws -> TrainingState {
        let url = URL(fileURLWithPath: directory).appendingPathComponent("training.json")
        guard let data = try? Data(contentsOf: url) else {
            throw InvalidArgument("--resume", expected: "a training checkpoint with training.json", got: directory)
        }
        return try JSONDecoder().decode(TrainingState.self, from: data)
    }

    /// Restores a trainer's optimizer moments, step and RNG from `directory` (the model's
    /// weights are loaded by `loadModel`).
    public static func restore(_ trainer: Trainer, from directory: String) throws {
        let state = try loadTrainingState(from: directory)
        let (tensors, _) = try Safetensors.read(path: URL(fileURLWithPath: directory).appendingPathComponent("optimizer.safetensors").path)
        let n = trainer.model.parameterCount
        var moments: [[Float]] = []
        for name in ["first_moment", "second_moment"] {
            guard let t = tensors[name], t.shape == [n] else {
                throw InvalidArgument("optimizer.safetensors", expected: "\(name) with \(n) values", got: "\(tensors[name]?.shape ?? [])")
            }
            moments.append(t.floats())
        }
        try trainer.loadOptimizerMoments(first: moments[0], second: moments[1])
        trainer.optimizer.step = state.optimizerStep
        trainer.step = state.step
        trainer.random = state.random
    }
}
