import Estimates
import Foundation
import Transformer

/// The tables, the JSON object and the mpirun command `flash plan` prints.
enum PlanReport {
    static func print(_ result: Planner.Result, request: PlanRequest, searchSeconds: Double, command: String?) {
        let config = request.setup.model, cluster = request.cluster, best = result.best
        Swift.print("Model: \(config.layers) layers, width \(config.width), \(config.heads) heads"
                    + (config.kvHeads != config.heads ? " (\(config.kvHeads) KV)" : "")
                    + ", sequence \(request.setup.sequenceLength), global batch \(request.globalBatch) sequences, "
                    + "\(request.setup.attention.rawValue) attention, \(request.setup.parameterPrecision.rawValue)")
        Swift.print("Cluster: \(request.devices) × \(cluster.name), \(EstimateFormat.si(cluster.peakFLOPS, "FLOP/s")) peak, "
                    + "\(EstimateFormat.gibibytes(cluster.deviceMemory)) each, \(cluster.devicesPerNode) per node, links "
                    + "\(EstimateFormat.si(cluster.intraNodeBandwidth, "B/s")) inside / \(EstimateFormat.si(cluster.interNodeBandwidth, "B/s")) between nodes")
        Swift.print("\nPlan: \(best.plan)")
        Swift.print(String(format: "step %@, MFU %.1f%%, %@/s model and %@/s executed per device, memory %@ per device",
                           EstimateFormat.duration(best.time.total), 100 * best.mfu,
                           EstimateFormat.si(best.modelFLOPSPerDevice, "FLOP"), EstimateFormat.si(best.executedFLOPSPerDevice, "FLOP"),
                           EstimateFormat.gibibytes(best.memory.total)))
        Swift.print("\nStep time by term")
        EstimateFormat.table(["term", "seconds", "share"], best.time.terms.map {
            [$0.name, String(format: "%.4g", $0.seconds), String(format: "%.1f%%", 100 * $0.seconds / best.time.total)]
        } + [["total", String(format: "%.4g", best.time.total), ""]])
        Swift.print("\nMemory per device")
        let m = best.memory
        EstimateFormat.table(["item", "bytes"], [
            ["weights", EstimateFormat.gibibytes(m.weights)], ["gradients", EstimateFormat.gibibytes(m.gradients)],
            ["optimizer states", EstimateFormat.gibibytes(m.optimizerStates)],
            ["activations", EstimateFormat.gibibytes(m.activations)], ["workspace", EstimateFormat.gibibytes(m.workspace)],
            ["total", EstimateFormat.gibibytes(m.total)],
        ])
        if !result.alternatives.isEmpty {
            Swift.print("\nBest plan of the next families")
            EstimateFormat.table(["plan", "step", "vs best", "MFU", "memory"], result.alternatives.map {
                [$0.plan.description, EstimateFormat.duration($0.time.total), String(format: "%.2f×", $0.time.total / best.time.total),
                 String(format: "%.1f%%", 100 * $0.mfu), EstimateFormat.gibibytes($0.memory.total)]
            })
        }
        if !result.rejected.isEmpty {
            Swift.print("\nRejected families (\(result.rejected.count))")
            let shown = result.rejected.prefix(12)
            EstimateFormat.table(["family", "reason"], shown.map { [$0.family.description, $0.reason.description] })
            if result.rejected.count > shown.count { Swift.print("… and \(result.rejected.count - shown.count) more (--json lists all)") }
        }
        Swift.print(String(format: "\nsearched %d feasible plans in %.1f ms (exact over the cost model; docs/planner.md)",
                           result.plansEvaluated, searchSeconds * 1e3))
        if let command { Swift.print("\nRun it:\n  \(command)") }
    }

    static func json(_ result: Planner.Result, request: PlanRequest, searchSeconds: Double, command: String?) throws -> [String: Any] {
        let cluster = request.cluster
        var object: [String: Any] = [
            "devices": request.devices, "global_batch": request.globalBatch, "sequence": request.setup.sequenceLength,
            "cluster": ["name": cluster.name, "peak_flops": cluster.peakFLOPS, "device_memory": cluster.deviceMemory,
                        "memory_bandwidth": cluster.memoryBandwidth, "devices_per_node": cluster.devicesPerNode,
                        "intra_node_bandwidth": cluster.intraNodeBandwidth, "inter_node_bandwidth": cluster.interNodeBandwidth],
            "best": evaluation(result.best),
            "alternatives": result.alternatives.map(evaluation),
            "rejected": result.rejected.map { ["family": family($0.family), "reason": $0.reason.description] },
            "plans_evaluated": result.plansEvaluated, "search_seconds": searchSeconds,
        ]
        if let command { object["command"] = command }
        return object
    }

    static func family(_ family: ParallelFamily) -> [String: Any] {
        ["dp": family.data, "tp": family.tensor, "pp": family.pipeline, "cp": family.context]
    }

    static func evaluation(_ evaluation: PlanEvaluation) -> [String: Any] {
        let plan = evaluation.plan, m = evaluation.memory
        var time: [String: Any] = [:]
        for term in evaluation.time.terms { time[term.name] = term.seconds }
        time["total"] = evaluation.time.total
        return [
            "plan": family(plan.family).merging([
                "micro_batch": plan.microBatch, "micro_batches": plan.microBatches, "recompute": plan.recomputation.rawValue,
                "zero": plan.zero, "interleave": plan.schedule.chunks,
            ]) { $1 },
            "step_seconds": time, "mfu": evaluation.mfu,
            "model_flops_per_device": evaluation.modelFLOPSPerDevice, "executed_flops_per_device": evaluation.executedFLOPSPerDevice,
            "memory": ["weights": m.weights, "gradients": m.gradients, "optimizer_states": m.optimizerStates,
                       "activations": m.activations, "workspace": m.workspace, "total": m.total],
        ]
    }

    /// The `mpirun … flash train …` command that runs `plan` with this project's trainer:
    /// one process per machine, `--batch` sequences per data-parallel rank per micro-batch.
    static func trainCommand(_ plan: ParallelPlan, request: PlanRequest, preset: TrainingPreset?) -> String {
        let config = request.setup.model
        var flags: [String] = []
        if let preset {
            flags.append("--preset \(preset.rawValue)")
            let shape = preset.shape
            if config.layers != shape.layers { flags.append("--layers \(config.layers)") }
            if config.heads != shape.heads { flags.append("--heads \(config.heads)") }
            if config.width != shape.width { flags.append("--width \(config.width)") }
        } else {
            flags += ["--layers \(config.layers)", "--heads \(config.heads)", "--width \(config.width)"]
        }
        if config.kvHeads != config.heads { flags.append("--kv-heads \(config.kvHeads)") }
        if config.mlpWidth != 4 * config.width { flags.append("--mlp-width \(config.mlpWidth)") }
        if request.setup.sequenceLength != preset?.shape.context { flags.append("--context \(request.setup.sequenceLength)") }
        if config.positionEncoding != .learned { flags.append("--position \(config.positionEncoding.rawValue)") }
        if config.norm != .layerNorm { flags.append("--norm \(config.norm.rawValue)") }
        if config.normPlacement != .pre { flags.append("--placement \(config.normPlacement.rawValue)") }
        if config.activation != .gelu { flags.append("--activation \(config.activation.rawValue)") }
        if !config.bias { flags.append("--no-bias") }
        if !config.tiedEmbeddings { flags.append("--untied") }
        flags.append("--batch \(plan.microBatch)")
        if plan.microBatches > 1 { flags.append("--accumulate \(plan.microBatches)") }
        flags += ["--context-parallel \(plan.context)", "--zero \(plan.zero)"]
        return "mpirun -np \(plan.devices) flash train " + flags.joined(separator: " ")
    }
}
