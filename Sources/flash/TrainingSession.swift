import Foundation
import FlashCore
import ModelFormats
import Transformer

/// The training loop shared by `flash train` and `flash demo`: steps, a live progress line on
/// stderr, validation every K steps, JSON-lines logging, checkpoints, and a clean stop (with
/// the last good checkpoint kept) when the loss turns NaN/Inf.
struct TrainingSession {
    let trainer: Trainer
    let tokenizer: AnyTokenizer
    let evalEvery: Int
    let checkpointDirectory: String?
    let dataPath: String?
    let logPath: String?
    /// Whether this process prints, logs and writes checkpoints (rank 0 of a distributed job).
    var primary = true
    /// Stop after this many seconds (the demo's budget); nil: run every step.
    var timeLimit: Double? = nil

    init(trainer: Trainer, tokenizer: AnyTokenizer, evalEvery: Int, checkpointDirectory: String?, dataPath: String?,
         logPath: String?, primary: Bool = true, timeLimit: Double? = nil) {
        self.trainer = trainer
        self.tokenizer = tokenizer
        self.evalEvery = evalEvery
        self.checkpointDirectory = checkpointDirectory
        self.dataPath = dataPath
        self.logPath = logPath
        self.primary = primary
        self.timeLimit = timeLimit
    }

    struct Summary {
        var firstLoss: Float?
        var lastLoss: Float?
        var firstValidation: Float?
        var lastValidation: Float?
        var steps = 0
        var seconds = 0.0
        var tokensPerSecond = 0.0
    }

    static func standardError(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }

    static func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? "\(s / 3600)h\(s % 3600 / 60)m" : s >= 60 ? "\(s / 60)m\(s % 60)s" : "\(s)s"
    }

    var tokenizerKind: String {
        if case .character = tokenizer { return "char" }
        return "bpe"
    }

    /// Writes a checkpoint (rank 0). Every rank must call it: under ZeRO-1 the optimizer's
    /// moments are gathered from all ranks first.
    func saveCheckpoint() throws {
        guard let checkpointDirectory else { return }
        let moments = try trainer.fullOptimizerMoments()
        guard primary else { return }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try Checkpoint.save(model: trainer.model, tokenizerJSON: encoder.encode(tokenizer), trainer: trainer, moments: moments,
                            dataPath: dataPath, tokenizerKind: tokenizerKind,
                            to: checkpointDirectory)
    }

    func run() throws -> Summary {
        var summary = Summary()
        let log: FileHandle? = try (primary ? logPath : nil).map { path in
            if !FileManager.default.fileExists(atPath: path) { _ = FileManager.default.createFile(atPath: path, contents: nil) }
            guard let handle = FileHandle(forWritingAtPath: path) else {
                throw InvalidArgument("--log", expected: "a writable file", got: path)
            }
            handle.seekToEndOfFile()
            return handle
        }
        defer { try? log?.close() }
        let total = trainer.options.steps
        let start = Date()
        var tokens = 0
        summary.firstValidation = try trainer.evaluate()
        summary.lastValidation = summary.firstValidation
        if let v = summary.firstValidation, primary { Self.standardError(String(format: "step %d: validation loss %.4f\n", trainer.step, v)) }
        var lastGoodCheckpointStep: Int? = nil
        while trainer.step < trainer.options.steps {
            let result: StepResult
            do {
                result = try trainer.trainStep()
            } catch let error as TrainingError {
                if primary { Self.standardError("\n") }
                let kept = checkpointDirectory.map { dir in
                    lastGoodCheckpointStep.map { "the last good checkpoint (step \($0)) is kept in \(dir)" } ?? "no checkpoint was written"
                } ?? "no --out directory was given"
                throw CommandFailure("\(error.description); \(kept)")
            }
            tokens += result.tokens
            let elapsed = Date().timeIntervalSince(start)
            let rate = Double(tokens) / max(elapsed, 1e-9)
            summary.firstLoss = summary.firstLoss ?? result.loss
            summary.lastLoss = result.loss
            summary.steps += 1
            var validation: Float? = nil
            let evaluateNow = result.step % evalEvery == 0 || result.step == total
            if evaluateNow {
                validation = try trainer.evaluate()
                if let validation { summary.lastValidation = validation }
            }
            let remaining = Double(total - result.step) * elapsed / Double(summary.steps)
            // On a terminal the progress line rewrites itself every step; into a file or pipe
            // (CI logs) it is written as whole lines, about twenty per run plus each validation.
            let interactive = isatty(STDERR_FILENO) != 0
            let communicationWait = trainer.takeCommunicationWait()
            if primary && (interactive || evaluateNow || result.step % max(1, total / 20) == 0) {
                var line = String(format: "step %d/%d | loss %.4f | lr %.2e | %.0f tok/s | ETA ", result.step, total, result.loss,
                                  result.learningRate, rate) + Self.duration(remaining)
                if let validation { line += String(format: " | val %.4f", validation) }
                Self.standardError(interactive ? "\r" + line + (validation == nil ? "   " : "\n") : line + "\n")
            }
            if let log {
                var record: [String: Any] = ["step": result.step, "train_loss": Double(result.loss), "lr": Double(result.learningRate),
                                             "tokens_per_second": rate, "elapsed_seconds": elapsed]
                record["val_loss"] = validation.map { Double($0) } ?? NSNull()
                record["world_size"] = trainer.worldSize
                record["global_batch"] = trainer.globalBatch
                record["grad_norm"] = result.gradientNorm
                record["communication_wait_seconds"] = communicationWait
                record["cpu_seconds"] = BenchServe.cpuSeconds()
                log.write(try JSONSerialization.data(withJSONObject: record, options: [.sortedKeys]))
                log.write(Data("\n".utf8))
            }
            if evaluateNow {
                try saveCheckpoint()
                if checkpointDirectory != nil { lastGoodCheckpointStep = result.step }
            }
            summary.seconds = elapsed
            summary.tokensPerSecond = rate
            if let timeLimit, elapsed >= timeLimit { break }
        }
        if primary && isatty(STDERR_FILENO) != 0 { Self.standardError("\n") }
        return summary
    }
}

/// Reads training text: a file, or every regular file in a folder (sorted by name, joined by newlines).
enum TrainingText {
    static func read(_ path: String) throws -> String {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw CommandFailure("--data: no file or folder at \(path)")
        }
        let files: [String]
        if isDirectory.boolValue {
            let names = try FileManager.default.contentsOfDirectory(atPath: path).filter { !$0.hasPrefix(".") }.sorted()
            files = names.map { (path as NSString).appendingPathComponent($0) }.filter {
                var d: ObjCBool = false
                return FileManager.default.fileExists(atPath: $0, isDirectory: &d) && !d.boolValue
            }
            if files.isEmpty { throw CommandFailure("--data: the folder \(path) holds no files") }
        } else {
            files = [path]
        }
        var parts: [String] = []
        for file in files {
            guard let data = FileManager.default.contents(atPath: file), let text = String(data: data, encoding: .utf8) else {
                throw CommandFailure("--data: \(file) is not readable UTF-8 text")
            }
            parts.append(text)
        }
        let text = parts.joined(separator: "\n")
        if text.isEmpty { throw CommandFailure("--data: \(path) is empty") }
        return text
    }
}

/// A command that could not finish, with the reason for the user (printed as "Error: …").
struct CommandFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
