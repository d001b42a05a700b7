import Estimates
import Foundation
import Transformer

/// The tables and the JSON object `flash estimate` prints.
enum EstimateReport {
    static func printTables(_ estimate: TrainingEstimate, preset: ModelPreset?, presetName: String? = nil) throws {
        let setup = estimate.setup, config = setup.model, p = estimate.parameters
        let fits = try estimate.largestMicroBatches()   // may throw: before anything is printed
        print("Model: \(presetName ?? preset?.name ?? "custom") — \(config.layers) layers, width \(config.width), \(config.heads) heads"
              + (config.kvHeads != config.heads ? " (\(config.kvHeads) KV)" : "")
              + ", MLP \(config.mlpWidth) \(config.activation.rawValue), vocabulary \(config.vocabularySize), "
              + "\(config.positionEncoding.rawValue) positions, \(config.norm.rawValue), "
              + (config.tiedEmbeddings ? "tied head" : "untied head") + (config.bias ? ", biases" : ""))
        print("\nParameters")
        EstimateFormat.table(["component", "parameters", "share"],
            p.components.filter { $0.count > 0 }.map {
                [$0.name, EstimateFormat.grouped($0.count), String(format: "%.1f%%", 100 * Double($0.count) / Double(p.total))]
            } + [["embedding", EstimateFormat.grouped(p.embedding), ""],
                 ["non-embedding", EstimateFormat.grouped(p.nonEmbedding), ""],
                 ["total", EstimateFormat.grouped(p.total), ""]])
        if let preset {
            let match = preset.publishedIsRounded ? "rounded headline" : (preset.publishedParameters == p.total ? "exact match" : "MISMATCH")
            print("published: \(EstimateFormat.grouped(preset.publishedParameters)) (\(match); \(preset.source))")
        }

        let f = estimate.flops
        print("\nFLOPs per token (sequence \(setup.sequenceLength), \(setup.attention.rawValue) attention, causal)")
        EstimateFormat.table(["pass", "matmul", "attention", "total"], [
            ["forward", EstimateFormat.si(f.forwardMatmul, "FLOP"), EstimateFormat.si(f.forwardAttention, "FLOP"), EstimateFormat.si(f.forward, "FLOP")],
            ["backward", EstimateFormat.si(f.backwardMatmul, "FLOP"), EstimateFormat.si(f.backwardAttention, "FLOP"), EstimateFormat.si(f.backward, "FLOP")],
            ["training", "", "", EstimateFormat.si(f.perTokenTraining, "FLOP")],
            ["+ recomputation (\(setup.recomputation.rawValue))", "", "", EstimateFormat.si(f.recomputation, "FLOP")],
            ["6·N (all parameters)", "", "", EstimateFormat.si(f.sixN, "FLOP")],
            ["6·N (non-embedding)", "", "", EstimateFormat.si(f.sixNNonEmbedding, "FLOP")],
        ])
        if setup.trainingTokens > 0 {
            print(String(format: "run: %@ tokens → %@ (6·N·D: %@); %@ on %d device(s) at %@/s peak, MFU %.0f%%",
                         EstimateFormat.si(setup.trainingTokens, ""), EstimateFormat.si(estimate.trainingFLOPs, "FLOP"),
                         EstimateFormat.si(estimate.sixNDFLOPs, "FLOP"), EstimateFormat.duration(estimate.trainingSeconds),
                         setup.parallelism.devices, EstimateFormat.si(estimate.peakFLOPS, "FLOP"), 100 * estimate.utilisation))
        }

        let m = estimate.memory
        print("\nTraining memory per device (micro-batch \(setup.microBatch), \(setup.optimizer.rawValue), "
              + "weights \(setup.parameterPrecision.rawValue), grads \(setup.gradientPrecision.rawValue), "
              + "optimizer \(setup.optimizerPrecision.rawValue), recompute \(setup.recomputation.rawValue), "
              + "dp \(setup.parallelism.data) tp \(setup.parallelism.tensor) pp \(setup.parallelism.pipeline), "
              + "\(setup.memoryModel == .projectTrainer ? "this project's trainer" : "textbook") buffers)")
        EstimateFormat.table(["item", "bytes"], [
            ["weights", EstimateFormat.gibibytes(m.weights)],
            ["gradients", EstimateFormat.gibibytes(m.gradients)],
            ["optimizer states", EstimateFormat.gibibytes(m.optimizerStates)],
            [String(format: "  = %.0f bytes/parameter", m.bytesPerParameter), ""],
            ["activations", EstimateFormat.gibibytes(m.activations)],
            ["  per layer per sequence", EstimateFormat.gibibytes(m.activationsPerLayerPerSequence)],
            ["  of which N² scores", EstimateFormat.gibibytes(m.attentionScoresPerLayerPerSequence)],
            ["backward workspace", EstimateFormat.gibibytes(m.workspace)],
            ["  of which attention's", EstimateFormat.gibibytes(m.attentionWorkspace)],
            ["total", EstimateFormat.gibibytes(m.total)],
        ])
        if let budget = estimate.memoryBudget, let fits {
            print("largest micro-batch in \(EstimateFormat.gibibytes(budget)): standard \(fits.standard), flash \(fits.flash)")
        }
    }

    static func json(_ estimate: TrainingEstimate, preset: ModelPreset?, presetName: String? = nil) throws -> [String: Any] {
        let setup = estimate.setup, config = setup.model, p = estimate.parameters, f = estimate.flops, m = estimate.memory
        var parameters: [String: Any] = [
            "total": p.total, "embedding": p.embedding, "non_embedding": p.nonEmbedding,
            "components": Dictionary(uniqueKeysWithValues: p.components.map { ($0.name, $0.count) }),
        ]
        if let preset {
            parameters["published"] = preset.publishedParameters
            parameters["published_source"] = preset.source
        }
        var memory: [String: Any] = [
            "weights_bytes": m.weights, "gradients_bytes": m.gradients, "optimizer_bytes": m.optimizerStates,
            "activations_bytes": m.activations, "workspace_bytes": m.workspace, "total_bytes": m.total,
            "backward_buffers_bytes": m.backwardBuffers, "attention_workspace_bytes": m.attentionWorkspace,
            "model_states_bytes": m.modelStates, "bytes_per_parameter": m.bytesPerParameter,
            "parameters_per_device": m.parametersPerDevice,
            "activations_per_layer_per_sequence_bytes": m.activationsPerLayerPerSequence,
            "attention_scores_per_layer_per_sequence_bytes": m.attentionScoresPerLayerPerSequence,
        ]
        if let budget = estimate.memoryBudget, let fits = try estimate.largestMicroBatches() {
            memory["budget_bytes"] = budget
            memory["largest_micro_batch"] = ["standard": fits.standard, "flash": fits.flash]
        }
        let encoder = JSONEncoder()
        let model = try JSONSerialization.jsonObject(with: try encoder.encode(config))
        return [
            "preset": (presetName ?? preset?.name) as Any? ?? NSNull(),
            "model": model,
            "setup": [
                "micro_batch": setup.microBatch, "sequence_length": setup.sequenceLength, "training_tokens": setup.trainingTokens,
                "parameter_precision": setup.parameterPrecision.rawValue, "gradient_precision": setup.gradientPrecision.rawValue,
                "optimizer_precision": setup.optimizerPrecision.rawValue, "activation_precision": setup.activationPrecision.rawValue,
                "optimizer": setup.optimizer.rawValue, "attention": setup.attention.rawValue,
                "recomputation": setup.recomputation.rawValue, "memory_model": setup.memoryModel.rawValue,
                "parallelism": ["data": setup.parallelism.data, "tensor": setup.parallelism.tensor, "pipeline": setup.parallelism.pipeline],
            ] as [String: Any],
            "parameters": parameters,
            "flops": [
                "forward": ["matmul": f.forwardMatmul, "attention": f.forwardAttention, "total": f.forward],
                "backward": ["matmul": f.backwardMatmul, "attention": f.backwardAttention, "total": f.backward],
                "recomputation_per_token": f.recomputation,
                "per_token_training": f.perTokenTraining,
                "attention_pairs_per_sequence": f.attentionPairsPerSequence,
                "per_token_executed": f.perTokenExecuted,
                "per_token_6n": f.sixN,
                "per_token_6n_non_embedding": f.sixNNonEmbedding,
                "training_run": estimate.trainingFLOPs,
                "training_run_executed": estimate.executedFLOPs,
                "training_run_6nd": estimate.sixNDFLOPs,
                "training_seconds": estimate.trainingSeconds,
                "peak_flops_per_device": estimate.peakFLOPS,
                "mfu": estimate.utilisation,
                "devices": setup.parallelism.devices,
            ] as [String: Any],
            "memory": memory,
        ]
    }
}
