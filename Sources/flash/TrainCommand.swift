import ArgumentParser
import Foundation
import Distributed
import FlashAttention
import FlashCore
import ModelFormats
import Transformer

/// Model sizes the commands share (defined in the Transformer module).
extension TrainingPreset: ExpressibleByArgument {}
extension AttentionImplementation: ExpressibleByArgument {}
extension TransformerConfig.PositionEncoding: ExpressibleByArgument {}
extension TransformerConfig.Norm: ExpressibleByArgument {}
extension TransformerConfig.NormPlacement: ExpressibleByArgument {}
extension TransformerConfig.Activation: ExpressibleByArgument {}

/// `flash train`: trains a decoder-only transformer on a text file, a folder of text files, or
/// the built-in corpus, writing checkpoints that `flash generate` reads.
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a transformer language model on text.",
        discussion: """
            Data: --data FILE or FOLDER (every file in it, by name); without --data, the corpus \
            shipped in the package. The last --validation-fraction of the tokens is held out. \
            A progress line (step, loss, tokens/s, ETA) goes to stderr; every --eval-every steps \
            the validation loss is printed and a checkpoint is written atomically to --out. \
            --resume continues the run saved in --out bit for bit (its saved options and data \
            source; --threads, --log and --eval-every may change). A NaN/Inf loss stops the run \
            and keeps the last good checkpoint.

            Distributed: `mpirun -np P flash train … [--zero 1] [--context-parallel C]` trains on P \
            ranks (Open MPI, loaded at run time): P/C data-parallel groups of C ranks that split \
            each sequence (ring attention). --batch is sequences per group: P ranks × B sequences \
            (C = 1) see exactly the tokens one process with P·B sees. Rank 0 alone prints, logs and \
            writes checkpoints; --resume works for any rank count that divides the saved global batch.
            """)

    @Option(help: "Training text: a file or a folder of text files (default: the built-in corpus).") var data: String?
    @Option(help: "Size preset: tiny, small or nanogpt (6 layers × 6 heads × 384 wide, context 256).") var preset: TrainingPreset = .small
    @Option(help: "Transformer blocks.") var layers: Int?
    @Option(help: "Attention heads.") var heads: Int?
    @Option(name: .customLong("kv-heads"), help: "Key/value heads (GQA; 1 = multi-query). Default: --heads.") var kvHeads: Int?
    @Option(help: "Model width.") var width: Int?
    @Option(name: .customLong("mlp-width"), help: "MLP hidden width (default 4 × width).") var mlpWidth: Int?
    @Option(help: "Context length (tokens per training window).") var context: Int?
    @Option(help: "Position encoding: learned, rotary, alibi or none.") var position: TransformerConfig.PositionEncoding = .learned
    @Option(name: .customLong("rope-theta"), help: "Rotary base θ.") var ropeTheta: Float = 10_000
    @Option(name: .customLong("rope-scaling"), help: "Rotary linear position interpolation factor (≥ 1).") var ropeScaling: Float = 1
    @Option(help: "Norm: layerNorm or rmsNorm.") var norm: TransformerConfig.Norm = .layerNorm
    @Option(help: "Norm placement: pre or post.") var placement: TransformerConfig.NormPlacement = .pre
    @Option(help: "MLP activation: gelu, relu or swiglu.") var activation: TransformerConfig.Activation = .gelu
    @Flag(name: .customLong("no-bias"), help: "No biases in linear layers and norms.") var noBias = false
    @Flag(help: "Separate output head instead of tied embeddings.") var untied = false
    @Option(help: "Sequences per micro-batch.") var batch: Int?
    @Option(help: "Micro-batches per optimizer step (gradient accumulation).") var accumulate = 1
    @Option(help: "Optimizer steps.") var steps = 1000
    @Option(help: "Peak learning rate.") var lr: Float = 1e-3
    @Option(help: "Linear warm-up steps.") var warmup = 100
    @Option(name: .customLong("weight-decay"), help: "AdamW weight decay (weight matrices only).") var weightDecay: Float = 0.1
    @Flag(name: .customLong("decay-embeddings"), help: "Apply the weight decay to the embeddings too (as nanoGPT, which decays every 2-D tensor).") var decayEmbeddings = false
    @Option(help: "AdamW β₁.") var beta1: Float = 0.9
    @Option(help: "AdamW β₂ (nanoGPT's tiny-Shakespeare recipe uses 0.99).") var beta2: Float = 0.95
    @Option(help: "Dropout probability.") var dropout: Float = 0
    @Option(name: .customLong("grad-clip"), help: "Gradient-norm clip (0 = off).") var gradClip: Float = 1
    @Option(help: "Random seed (weights, data windows, dropout).") var seed: UInt64 = 1337
    @Option(name: .customLong("eval-every"), help: "Validation loss and checkpoint every K steps.") var evalEvery = 100
    @Option(name: .customLong("eval-batches"), help: "Batches of --batch validation windows averaged for one validation loss.") var evalBatches = 4
    @Option(name: .customLong("validation-fraction"), help: "Fraction of tokens held out for validation.") var validationFraction = 0.1
    @Option(help: "Tokenizer: char or bpe.") var tokenizer: String = "char"
    @Option(name: .customLong("bpe-vocab"), help: "BPE vocabulary size (≥ 256).") var bpeVocab = 512
    @Option(help: "Checkpoint directory.") var out: String = "checkpoint"
    @Option(help: "Attention algorithm: flash or standard.") var attention: AttentionImplementation = .flash
    @Option(help: "Threads (default: all cores).") var threads: Int?
    @Flag(help: "Continue the run saved in --out.") var resume = false
    @Option(help: "Append one JSON line per step to FILE.") var log: String?
    @Option(help: "ZeRO stage under mpirun: 0 (every rank keeps AdamW's moments) or 1 (moments sharded over the data-parallel ranks).") var zero = 0
    @Option(name: .customLong("context-parallel"), help: "Ranks that split each sequence (ring attention, zigzag order); must divide the number of ranks, and 2 × it the context.") var contextParallel = 1

    func validate() throws {
        for (name, value) in [("--layers", layers), ("--heads", heads), ("--kv-heads", kvHeads), ("--width", width),
                              ("--mlp-width", mlpWidth), ("--context", context), ("--batch", batch), ("--threads", threads)] {
            if let value, value < 1 { throw ValidationError("\(name) must be ≥ 1, got \(value)") }
        }
        if steps < 1 { throw ValidationError("--steps must be ≥ 1, got \(steps)") }
        if accumulate < 1 { throw ValidationError("--accumulate must be ≥ 1, got \(accumulate)") }
        if evalEvery < 1 { throw ValidationError("--eval-every must be ≥ 1, got \(evalEvery)") }
        if warmup < 0 { throw ValidationError("--warmup must be ≥ 0, got \(warmup)") }
        if !(lr > 0 && lr.isFinite) { throw ValidationError("--lr must be a positive number, got \(lr)") }
        if !(dropout >= 0 && dropout < 1) { throw ValidationError("--dropout must be in [0, 1), got \(dropout)") }
        if !(weightDecay >= 0) { throw ValidationError("--weight-decay must be ≥ 0, got \(weightDecay)") }
        for (name, value) in [("--beta1", beta1), ("--beta2", beta2)] where !(value >= 0 && value < 1) {
            throw ValidationError("\(name) must be in [0, 1), got \(value)")
        }
        if evalBatches < 1 { throw ValidationError("--eval-batches must be ≥ 1, got \(evalBatches)") }
        if !(validationFraction >= 0 && validationFraction < 1) { throw ValidationError("--validation-fraction must be in [0, 1)") }
        if !["char", "bpe"].contains(tokenizer) { throw ValidationError("--tokenizer must be char or bpe, got \(tokenizer)") }
        if bpeVocab < 256 { throw ValidationError("--bpe-vocab must be ≥ 256, got \(bpeVocab)") }
        if zero != 0 && zero != 1 { throw ValidationError("--zero must be 0 or 1, got \(zero)") }
        if contextParallel < 1 { throw ValidationError("--context-parallel must be ≥ 1, got \(contextParallel)") }
    }

    /// Refuses to start unless every rank was given the same run: a hash of the model, the
    /// options, the data's tokens and the parallel layout, compared with rank 0's.
    static func checkRanksAgree(_ communicator: Communicator?, config: TransformerConfig, options: TrainingOptions,
                                tokens: TokenDataset, layout: String) throws {
        guard let communicator, communicator.size > 1 else { return }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var signature = String(decoding: try encoder.encode(config), as: UTF8.self)
        signature += String(decoding: try encoder.encode(options), as: UTF8.self) + layout
        var data: UInt64 = 0xcbf2_9ce4_8422_2325
        for token in tokens.training + tokens.validation { data = (data ^ UInt64(UInt32(bitPattern: token))) &* 0x100_0000_01b3 }
        signature += " data \(tokens.training.count)+\(tokens.validation.count) \(data)"
        do {
            try communicator.requireIdentical(stableHash(signature), "the configuration (model flags, training options, data, --zero, --context-parallel)")
        } catch let error as CommunicationError {
            throw CommandFailure("\(error.description); start every rank with the same arguments and data")
        }
    }

    /// An error every rank finds alike (it depends on the arguments and the world size only):
    /// rank 0 reports it and the others exit with the same failure status silently, so the
    /// message is printed once instead of once per rank, interleaved.
    static func sameOnEveryRank(_ message: String, rank: Int) -> Error {
        rank == 0 ? CommandFailure(message) : ExitCode.failure
    }

    static func makeTokenizer(kind: String, text: String, bpeVocabulary: Int) throws -> AnyTokenizer {
        if kind == "bpe" {
            TrainingSession.standardError("training a byte-level BPE tokenizer (\(bpeVocabulary) tokens)...\n")
            return .bytePair(try BPETokenizer.train(corpus: text, vocabularySize: bpeVocabulary))
        }
        return .character(CharTokenizer(corpus: text))
    }

    func run() throws {
        if let threads { Parallel.defaultThreads = threads }
        let communicator = try MPICommunicator.worldIfLaunched()
        let world = communicator?.size ?? 1, rank = communicator?.rank ?? 0
        guard world % contextParallel == 0 else {
            throw Self.sameOnEveryRank("--context-parallel \(contextParallel) must divide the number of ranks (\(world))", rank: rank)
        }
        let layout = " world \(world) zero \(zero) context-parallel \(contextParallel)"
        let dataParallel: Communicator? = world > 1 ? communicator : nil
        let primary = rank == 0
        let session: TrainingSession
        if resume {
            let state = try Checkpoint.loadTrainingState(from: out)
            let model = try Checkpoint.loadModel(from: out)
            let tokenizer = try JSONDecoder().decode(AnyTokenizer.self, from: Checkpoint.loadTokenizerJSON(from: out))
            let source = data ?? state.dataPath
            let text = try source.map(TrainingText.read) ?? BuiltinCorpus.text()
            let dataset = try TokenDataset(tokens: tokenizer.encode(text), validationFraction: state.options.validationFraction,
                                           context: model.config.context)
            model.attentionImplementation = attention
            model.threads = threads
            // The checkpoint fixes the global batch; it must split evenly over this run's ranks.
            var options = state.options
            let globalBatch = options.batch * (state.dataParallelSize ?? 1), groups = world / contextParallel
            guard globalBatch % groups == 0 else {
                throw Self.sameOnEveryRank("--resume: the checkpoint's global batch of \(globalBatch) sequences does not split over \(groups) data-parallel groups", rank: rank)
            }
            options.batch = globalBatch / groups
            try Self.checkRanksAgree(dataParallel, config: model.config, options: options, tokens: dataset, layout: layout)
            let trainer = try Trainer(model: model, data: dataset, options: options, communicator: dataParallel, zeroStage: zero,
                                      contextParallel: contextParallel)
            try Checkpoint.restore(trainer, from: out)
            if primary { TrainingSession.standardError("resuming \(out) at step \(trainer.step) of \(state.options.steps)\n") }
            session = TrainingSession(trainer: trainer, tokenizer: tokenizer, evalEvery: evalEvery, checkpointDirectory: out,
                                      dataPath: source, logPath: log, primary: primary)
        } else {
            let text = try data.map(TrainingText.read) ?? BuiltinCorpus.text()
            let tokenizer = try Self.makeTokenizer(kind: self.tokenizer, text: text, bpeVocabulary: bpeVocab)
            let shape = preset.shape
            let config = TransformerConfig(
                layers: layers ?? shape.layers, heads: heads ?? shape.heads, kvHeads: kvHeads, width: width ?? shape.width,
                mlpWidth: mlpWidth, context: context ?? shape.context, vocabularySize: tokenizer.vocabularySize,
                positionEncoding: position, ropeTheta: ropeTheta, ropeScaling: ropeScaling, norm: norm, normPlacement: placement, activation: activation,
                bias: !noBias, tiedEmbeddings: !untied, dropout: dropout)
            let model = try TransformerModel(config: config, seed: seed)
            model.attentionImplementation = attention
            model.threads = threads
            let dataset = try TokenDataset(tokens: tokenizer.encode(text), validationFraction: validationFraction, context: config.context)
            let options = TrainingOptions(steps: steps, batch: batch ?? shape.batch, accumulate: accumulate, learningRate: lr,
                                          warmup: warmup,
                                          optimizer: AdamW.Options(beta1: beta1, beta2: beta2, weightDecay: weightDecay,
                                                                   decayEmbeddings: decayEmbeddings),
                                          gradientClip: gradClip, seed: seed, validationFraction: validationFraction,
                                          evaluationBatches: evalBatches)
            try Self.checkRanksAgree(dataParallel, config: config, options: options, tokens: dataset, layout: layout)
            let trainer = try Trainer(model: model, data: dataset, options: options, communicator: dataParallel, zeroStage: zero,
                                      contextParallel: contextParallel)
            if primary { TrainingSession.standardError("""
                model: \(config.layers) layers × \(config.heads) heads × \(config.width) wide, context \(config.context), \
                vocabulary \(config.vocabularySize) (\(self.tokenizer)), \(model.parameterCount) parameters
                data: \(dataset.training.count) training + \(dataset.validation.count) validation tokens; \
                \(trainer.tokensPerStep) tokens per step, attention \(attention.rawValue), threads \(threads ?? Parallel.defaultThreads), \
                ISA \(VectorISA.compiled.rawValue)\
                \(world > 1 ? "\n\(world / contextParallel) data-parallel groups × \(options.batch) sequences (global batch \(trainer.globalBatch)), ZeRO-\(zero)" : "")\
                \(contextParallel > 1 ? ", each sequence split over \(contextParallel) ranks (ring attention)" : "")

                """) }
            session = TrainingSession(trainer: trainer, tokenizer: tokenizer, evalEvery: evalEvery, checkpointDirectory: out,
                                      dataPath: data.map { URL(fileURLWithPath: $0).standardizedFileURL.path }, logPath: log,
                                      primary: primary)
        }
        defer { communicator?.finalize() }
        if session.trainer.step >= session.trainer.options.steps {
            if primary { print("\(out) is already at step \(session.trainer.step) of \(session.trainer.options.steps): nothing to do") }
            return
        }
        let summary = try session.run()
        try session.saveCheckpoint()
        let validation = summary.lastValidation.map { String(format: ", validation loss %.4f", $0) } ?? ""
        if primary {
            print("trained to step \(session.trainer.step): " + String(format: "loss %.4f", summary.lastLoss ?? .nan) + validation
                  + String(format: "; %.0f tokens/s; checkpoint in ", summary.tokensPerSecond) + out)
        }
    }
}
