import ArgumentParser
import Dispatch
import Estimates
import FlashAttention
import FlashCore
import Transformer

struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Find the fastest way to split a training job over a cluster (dp, tp, pp, cp, micro-batch, recomputation, ZeRO, schedule).",
        discussion: """
            Searches every dp × tp × pp × cp = --devices, every micro-batch, recomputation policy, ZeRO stage \
            and pipeline schedule, exactly, over the cost model of docs/planner.md, and prints the plan with the \
            least predicted step time that fits --device-memory, its cost by term, the best plan of the other \
            families and why the rest were rejected. Fix any choice with --dp/--tp/--pp/--cp/--micro-batch/\
            --recompute/--zero/--interleave to have that configuration evaluated and explained. The model flags \
            are those of `flash estimate`. --hardware cpu plans this project's trainer on --devices machines like \
            this one (data and context parallel, ZeRO 0/1) and prints the mpirun command that runs it.
            """)

    @OptionGroup var model: ModelOptions

    @Option(help: "Devices (GPUs, or machines with --hardware cpu).") var devices: Int
    @Option(help: "Sequences per optimizer step over all data-parallel ranks (default with a flash train preset: its batch × devices).")
    var globalBatch: Int?
    @Option(help: "Sequence length; default: the context.") var seq: Int?
    @Option(help: "Cluster: a100 (DGX A100 80 GB), h100 (HGX H100), cpu (machines like this one). Default a100; cpu with a flash train preset.")
    var hardware: String?
    @Option(help: "Memory per device in bytes (e.g. 80e9); default: the hardware's.") var deviceMemory: Double?
    @Option(help: "Peak FLOP/s per device; default: the hardware's.") var peakFlops: Double?
    @Option(help: "Memory bandwidth per device, bytes/s; default: the hardware's.") var memoryBandwidth: Double?
    @Option(help: "Link bandwidth per device inside a node, bytes/s per direction; default: the hardware's.") var intraNodeBandwidth: Double?
    @Option(help: "Link bandwidth per device between nodes, bytes/s per direction; default: the hardware's (cpu: 1.25e9, 10 Gb/s).")
    var interNodeBandwidth: Double?
    @Option(help: "Devices per node; default: the hardware's (8; 1 for cpu).") var devicesPerNode: Int?

    @Option(help: "Weight precision: fp32, bf16, fp16 (default bf16; fp32 with --hardware cpu).") var paramPrecision: String?
    @Option(help: "Optimizer: sgd, sgd-momentum, adam, adamw.") var optimizer = "adamw"
    @Option(help: "Attention implementation: standard, flash.") var attention = "flash"

    @Option(help: "Fix the data-parallel degree.") var dp: Int?
    @Option(help: "Fix the tensor-parallel degree.") var tp: Int?
    @Option(help: "Fix the pipeline-parallel degree.") var pp: Int?
    @Option(help: "Fix the context-parallel degree.") var cp: Int?
    @Option(help: "Fix the micro-batch (sequences per data-parallel rank per pass).") var microBatch: Int?
    @Option(help: "Fix recomputation: none, selective, full.") var recompute: String?
    @Option(help: "Fix the ZeRO stage (0-3; 0-1 with --hardware cpu).") var zero: Int?
    @Option(help: "Fix the pipeline interleaving factor (1 = 1F1B).") var interleave: Int?
    @Flag(help: "Allow pipeline stages of ⌈layers/pp⌉ layers with the first and last shorter (as Llama 3).") var unevenStages = false

    @Option(help: "How many alternative families to list.") var alternatives = 5
    @Flag(help: "Print JSON instead of tables.") var json = false

    func run() throws {
        do {
            let request = try makeRequest()
            let start = DispatchTime.now().uptimeNanoseconds
            let result = try Planner(request).plan(alternatives: alternatives)
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            let command = request.cluster.name == "cpu"
                ? PlanReport.trainCommand(result.best.plan, request: request, preset: model.trainingPreset) : nil
            if json { try EstimateFormat.printJSON(PlanReport.json(result, request: request, searchSeconds: seconds, command: command)) }
            else { PlanReport.print(result, request: request, searchSeconds: seconds, command: command) }
        } catch let error as InvalidArgument {
            throw Self.naming(error)
        }
    }

    private func makeRequest() throws -> PlanRequest {
        let config = try model.config()
        let training = model.trainingPreset != nil
        let hardwareName = hardware ?? (training ? "cpu" : "a100")
        guard var cluster = Cluster.named(hardwareName) else {
            throw InvalidArgument("--hardware", expected: "one of a100, h100, cpu", got: hardwareName)
        }
        let cpu = cluster.name == "cpu"
        if let interNodeBandwidth { cluster.interNodeBandwidth = interNodeBandwidth; if cpu { cluster.intraNodeBandwidth = interNodeBandwidth } }
        if let intraNodeBandwidth { cluster.intraNodeBandwidth = intraNodeBandwidth }
        if let deviceMemory { cluster.deviceMemory = deviceMemory }
        if let peakFlops { cluster.peakFLOPS = peakFlops }
        if let memoryBandwidth { cluster.memoryBandwidth = memoryBandwidth }
        if let devicesPerNode { cluster.devicesPerNode = devicesPerNode }

        let precision = try EstimateFormat.choice(paramPrecision ?? (cpu ? "fp32" : "bf16"), "--param-precision", as: NumericPrecision.self)
        let setup = TrainingSetup(
            model: config, sequenceLength: seq ?? config.context, parameterPrecision: precision,
            optimizer: try EstimateFormat.choice(optimizer, "--optimizer", as: Optimizer.self),
            attention: try EstimateFormat.choice(attention, "--attention", as: AttentionImplementation.self),
            memoryModel: cpu ? .projectTrainer : .textbook)
        guard let batch = globalBatch ?? model.trainingPreset.map({ $0.shape.batch * max(devices, 1) }) else {
            throw InvalidArgument("--global-batch", expected: "a value (sequences per step)", got: "nothing")
        }
        var space = cpu ? PlanSpace.projectTrainer : PlanSpace.megatron
        space.unevenPipelineStages = unevenStages
        let fixed = PlanConstraints(
            data: dp, tensor: tp, pipeline: pp, context: cp, microBatch: microBatch,
            recomputation: try recompute.map { try EstimateFormat.choice($0, "--recompute", as: Recomputation.self) },
            zero: zero, chunks: interleave)
        return PlanRequest(setup: setup, globalBatch: batch, devices: devices, cluster: cluster, fixed: fixed, space: space)
    }

    /// The flag a library field comes from, so that errors name what the user typed.
    private static let flags: [String: String] = [
        "devices": "--devices", "globalBatch": "--global-batch", "deviceMemory": "--device-memory",
        "peakFLOPS": "--peak-flops", "memoryBandwidth": "--memory-bandwidth", "intraNodeBandwidth": "--intra-node-bandwidth",
        "interNodeBandwidth": "--inter-node-bandwidth", "devicesPerNode": "--devices-per-node",
        "fixed.data": "--dp", "fixed.tensor": "--tp", "fixed.degrees": "--dp/--tp/--pp/--cp", "fixed.pipeline": "--pp", "fixed.context": "--cp",
        "fixed.microBatch": "--micro-batch", "fixed.zero": "--zero", "fixed.chunks": "--interleave",
        "fixed.recomputation": "--recompute", "sequenceLength": "--seq", "recomputation": "--recompute",
    ]

    static func naming(_ error: InvalidArgument) -> InvalidArgument {
        guard let flag = flags[error.argument] else { return EstimateCommand.naming(error) }
        return InvalidArgument("\(flag) (\(error.argument))", expected: error.expected, got: error.got)
    }
}
