import Estimates
import Foundation
import Transformer

/// One published training run from Fixtures/published_parallel_runs.json.
struct PublishedRun: Decodable {
    var name: String
    var source: String
    var verified: Bool
    var architecture: String
    var layers: Int
    var heads: Int
    var kv_heads: Int
    var width: Int
    var mlp_width: Int
    var vocab: Int
    var sequence: Int
    var hardware: String
    var devices: Int
    var global_batch: Int
    var tensor: Int
    var pipeline: Int
    var context: Int
    var recompute: String?
    var zero: Int?
    var published_tflops_per_device: Double
    var published_percent_of_peak: Double
    var flops_convention: String

    static func all() throws -> [PublishedRun] {
        struct File: Decodable { var runs: [PublishedRun] }
        let url = try XCTUnwrapURL(Bundle.module.url(forResource: "published_parallel_runs", withExtension: "json",
                                                     subdirectory: "Fixtures"))
        return try JSONDecoder().decode(File.self, from: Data(contentsOf: url)).runs
    }

    private static func XCTUnwrapURL(_ url: URL?) throws -> URL {
        guard let url else { throw CocoaError(.fileNoSuchFile) }
        return url
    }

    /// Megatron's GPT (Narayanan et al. 2021: learned positions, LayerNorm, GELU, biases, tied
    /// head, dropout 0.1, no FlashAttention in 2021, FP16 with FP32 Adam states) or Llama 3
    /// (rotary, RMSNorm, SwiGLU, no biases, untied, no dropout, flash attention, BF16).
    var setup: TrainingSetup {
        let gpt = architecture == "gpt"
        let config = gpt
            ? TransformerConfig(layers: layers, heads: heads, kvHeads: kv_heads, width: width, mlpWidth: mlp_width,
                                context: sequence, vocabularySize: vocab, dropout: 0.1)
            : TransformerConfig(layers: layers, heads: heads, kvHeads: kv_heads, width: width, mlpWidth: mlp_width,
                                context: sequence, vocabularySize: vocab, positionEncoding: .rotary, norm: .rmsNorm,
                                activation: .swiglu, bias: false, tiedEmbeddings: false)
        return TrainingSetup(model: config, sequenceLength: sequence, parameterPrecision: gpt ? .fp16 : .bf16,
                             attention: gpt ? .standard : .flash)
    }

    func request(fixingPublishedLayout: Bool) -> PlanRequest {
        let fixed = fixingPublishedLayout
            ? PlanConstraints(data: devices / (tensor * pipeline * context), tensor: tensor, pipeline: pipeline, context: context,
                              recomputation: recompute.flatMap(Recomputation.init(rawValue:)), zero: zero)
            : PlanConstraints()
        // Llama 3 spreads 126 layers over 16 stages, one layer short on the first and last.
        var space = PlanSpace.megatron
        space.unevenPipelineStages = architecture == "llama"
        return PlanRequest(setup: setup, globalBatch: global_batch, devices: devices, cluster: Cluster.named(hardware)!,
                           fixed: fixed, space: space)
    }

    /// The predicted per-device throughput in the run's own convention.
    func predictedTFLOPS(_ evaluation: PlanEvaluation) -> Double {
        (flops_convention == "executed" ? evaluation.executedFLOPSPerDevice : evaluation.modelFLOPSPerDevice) / 1e12
    }
}
