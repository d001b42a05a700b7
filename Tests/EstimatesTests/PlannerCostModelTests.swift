import Estimates
import FlashCore
import Transformer
import XCTest

/// Each cost term of the planner against a hand computation (docs/planner.md §3), on a tiny GPT
/// and a cluster with round numbers and every efficiency 1, so that each figure below can be
/// checked with pencil and paper.
final class PlannerCostModelTests: XCTestCase {
    // L 2, H 2, C 8, F 32, context 4, V 10; learned positions, LayerNorm, GELU, biases, tied.
    let tiny = TransformerConfig(layers: 2, heads: 2, width: 8, mlpWidth: 32, context: 4, vocabularySize: 10)
    let cluster = Cluster(name: "round", peakFLOPS: 1e6, memoryBandwidth: 1e5, deviceMemory: 1e12, devicesPerNode: 8,
                          intraNodeBandwidth: 1e3, interNodeBandwidth: 1e2,
                          efficiency: AchievableEfficiency(matmul: 1, attention: 1, memory: 1, link: 1))

    func planner(batch: Int, devices: Int) throws -> Planner {
        let setup = TrainingSetup(model: tiny, sequenceLength: 4, parameterPrecision: .bf16, attention: .flash)
        return try Planner(PlanRequest(setup: setup, globalBatch: batch, devices: devices, cluster: cluster))
    }

    func plan(dp: Int = 1, tp: Int = 1, pp: Int = 1, cp: Int = 1, b: Int = 1, m: Int = 1, zero: Int = 0,
              recompute: Recomputation = .none, chunks: Int = 1) -> ParallelPlan {
        ParallelPlan(data: dp, tensor: tp, pipeline: pp, context: cp, microBatch: b, microBatches: m, recomputation: recompute,
                     zero: zero, schedule: chunks == 1 ? .oneFOneB : .interleaved(chunks: chunks))
    }

    func testCollectiveAndScheduleFormulas() {
        XCTAssertEqual(Planner.allReduceSeconds(bytes: 1e9, ranks: 4, bandwidth: 1e11), 2 * 0.75 * 1e9 / 1e11, accuracy: 1e-15)
        XCTAssertEqual(Planner.allReduceSeconds(bytes: 1e9, ranks: 1, bandwidth: 1e11), 0)
        XCTAssertEqual(Planner.bubbleFraction(stages: 4, microBatches: 8, chunks: 1), 3.0 / 8)
        XCTAssertEqual(Planner.bubbleFraction(stages: 4, microBatches: 8, chunks: 2), 3.0 / 16)
        XCTAssertEqual(Planner.inFlightFactor(layers: [2, 2, 2, 2], microBatches: 8, chunks: 1), 1)
        XCTAssertEqual(Planner.inFlightFactor(layers: [2, 2, 2, 2], microBatches: 2, chunks: 1), 0.5)
        XCTAssertEqual(Planner.inFlightFactor(layers: [2, 2, 2, 2], microBatches: 8, chunks: 2), 1 + 3.0 / 8)
        // Llama 3: 126 layers on 16 stages are 7, 8 × 14, 7; the second stage holds the most
        // (15 micro-batches of 8 layers = 120 of the 128 layer-equivalents).
        let llama = Planner.layersPerStage(126, stages: 16, uneven: true)
        XCTAssertEqual(llama, [7] + Array(repeating: 8, count: 14) + [7])
        XCTAssertEqual(Planner.inFlightFactor(layers: llama, microBatches: 32, chunks: 1), 120.0 / 128)
        XCTAssertEqual(Planner.layersPerStage(12, stages: 4, uneven: false), [3, 3, 3, 3])
    }

    func testElementwiseBytes() {
        // bf16: 2 norms 4C, 2 residual adds 6C, GELU 2F = 2·(32 + 48 + 64) = 288 bytes per token per layer.
        var setup = TrainingSetup(model: tiny, sequenceLength: 4, parameterPrecision: .bf16, attention: .flash)
        XCTAssertEqual(Planner.elementwiseBytesPerToken(setup).layer, 288)
        XCTAssertEqual(Planner.elementwiseBytesPerToken(setup).softmax, 0)
        // Standard attention with dropout: s·H·(2a + 2a + 1) = 4·2·9 = 72; residual masks add 2C = 16.
        setup.attention = .standard
        setup.model.dropout = 0.1
        XCTAssertEqual(Planner.elementwiseBytesPerToken(setup).softmax, 72)
        XCTAssertEqual(Planner.elementwiseBytesPerToken(setup).layer, 288 + 16)
    }

    func testComputeTermByHand() throws {
        // Per token: layer matmul 2·(C·3C + C² + 2·C·F) = 2·768 = 1536 FLOPs; tied head 2·C·V = 160;
        // causal flash attention 4·H·D·(s(s+1)/2)/s = 4·2·4·10/4 = 80 per layer, backward 2.5×.
        // One sequence (4 tokens): 4·[3·(2·1536 + 160) + 3.5·2·80]/1e6 + 4·3·2·288/1e5.
        let flopTime: Double = 4 * (3 * (2 * 1536.0 + 160) + 3.5 * 2 * 80) / 1e6
        let byteTime: Double = 4 * 3 * 2 * 288 / 1e5
        let expected = flopTime + byteTime
        let evaluation = try planner(batch: 1, devices: 1).evaluate(plan())
        XCTAssertEqual(evaluation.time.compute, expected, accuracy: 1e-12)
        XCTAssertEqual(evaluation.time.tensorParallel, 0)
        XCTAssertEqual(evaluation.time.bubble, 0)
        XCTAssertEqual(evaluation.time.dataParallel, 0)
        // Full recomputation reruns both layers' forward (matmul, attention, element-wise), not the head.
        let full = try planner(batch: 1, devices: 1).evaluate(plan(recompute: .full))
        let rerunFLOPs: Double = 4 * (2 * 1536.0 + 2 * 80) / 1e6
        let rerunBytes: Double = 4 * 2 * 288 / 1e5
        XCTAssertEqual(full.time.compute - evaluation.time.compute, rerunFLOPs + rerunBytes, accuracy: 1e-12)
        // MFU: model FLOPs of the step over peak × time.
        XCTAssertEqual(evaluation.mfu, evaluation.modelFLOPs / (1e6 * evaluation.time.total), accuracy: 1e-12)
    }

    func testTensorParallelTermByHand() throws {
        // tp 2: half the compute; 2 layers × 4 all-reduces of s·C·a = 64 bytes, ring 2(t−1)/t, intra-node 1e3 B/s.
        let one = try planner(batch: 1, devices: 1).evaluate(plan())
        let two = try planner(batch: 1, devices: 2).evaluate(plan(tp: 2))
        XCTAssertEqual(two.time.compute, one.time.compute / 2, accuracy: 1e-12)
        XCTAssertEqual(two.time.tensorParallel, 2 * 4 * (2 * 0.5 * 64 / 1e3), accuracy: 1e-12)
        // Full recomputation adds the 2 forward all-reduces per layer again: 6 per layer.
        let full = try planner(batch: 1, devices: 2).evaluate(plan(tp: 2, recompute: .full))
        XCTAssertEqual(full.time.tensorParallel, 2 * 6 * (2 * 0.5 * 64 / 1e3), accuracy: 1e-12)
    }

    func testDataParallelTermByHand() throws {
        // Parameters: V·C + context·C + 2 layers × (768 weights + 72 biases + 32 norm) + final norm 16 = 1872,
        // bf16 gradients 3744 bytes; dp 2 all-reduce 2·(1/2)·3744 / 1e3 s. It is smaller than one bucket,
        // so none of it overlaps the backward pass.
        let evaluation = try planner(batch: 2, devices: 2).evaluate(plan(dp: 2))
        XCTAssertEqual(try ParameterCount(tiny).total, 1872)
        XCTAssertEqual(evaluation.time.dataParallel, 3744 / 1e3, accuracy: 1e-12)
        // Over 16 devices the group spans two nodes: the inter-node link, 2·(15/16)·3744 / 1e2.
        let wide = try planner(batch: 16, devices: 16).evaluate(plan(dp: 16))
        XCTAssertEqual(wide.time.dataParallel, 2 * 15.0 / 16 * 3744 / 1e2, accuracy: 1e-12)
    }

    func testPipelineTermsByHand() throws {
        // pp 2, m 4: the busiest stage is the last (1 layer and the head); bubble (p − 1)/m of the
        // ideal m micro-batch times; 2 transfers of s·C·a = 64 bytes per micro-batch, intra-node.
        let evaluation = try planner(batch: 4, devices: 2).evaluate(plan(pp: 2, m: 4))
        let lastStageFLOPs: Double = 4 * (3 * (1536.0 + 160) + 3.5 * 80) / 1e6
        let lastStage = lastStageFLOPs + 4 * 3 * 288 / 1e5
        XCTAssertEqual(evaluation.time.compute, 4 * lastStage, accuracy: 1e-12)
        XCTAssertEqual(evaluation.time.pipelineTransfers, 4 * 2 * 64 / 1e3, accuracy: 1e-12)
        XCTAssertEqual(evaluation.time.bubble, 1.0 / 4 * (evaluation.time.compute + evaluation.time.pipelineTransfers),
                       accuracy: 1e-12)
    }

    func testContextParallelTermByHand() throws {
        // cp 2: each device computes 2 of the 4 tokens; per layer 1 ring step forward passes K and V
        // of 2 tokens (2·2·C·a = 64 bytes, 0.064 s) against a block of 2·80/2 = 80 FLOPs (8e-5 s);
        // backward passes K, V, dK, dV (0.128 s) against 2.5× that block.
        let evaluation = try planner(batch: 1, devices: 2).evaluate(plan(cp: 2))
        let forward = 64 / 1e3 - 2 * 80.0 / 2 / 1e6
        let backward = 128 / 1e3 - 2.5 * 2 * 80.0 / 2 / 1e6
        XCTAssertEqual(evaluation.time.contextParallel, 2 * (forward + backward), accuracy: 1e-12)
        // On a fast link the transfer hides behind the block's compute.
        var fast = cluster
        fast.intraNodeBandwidth = 1e12
        let setup = TrainingSetup(model: tiny, sequenceLength: 4, parameterPrecision: .bf16, attention: .flash)
        let hidden = try Planner(PlanRequest(setup: setup, globalBatch: 1, devices: 2, cluster: fast)).evaluate(plan(cp: 2))
        XCTAssertEqual(hidden.time.contextParallel, 0)
    }

    func testZeroShardsTheEstimatorsStates() throws {
        var setup = TrainingSetup(model: tiny, sequenceLength: 4, parameterPrecision: .bf16, attention: .flash)
        let states = try MemoryEstimate(setup)
        let planner = try planner(batch: 4, devices: 4)
        for zero in 0...3 {
            let memory = try planner.evaluate(plan(dp: 4, zero: zero)).memory
            XCTAssertEqual(memory.optimizerStates, states.optimizerStates / (zero >= 1 ? 4 : 1), accuracy: 1e-9)
            XCTAssertEqual(memory.gradients, states.gradients / (zero >= 2 ? 4 : 1), accuracy: 1e-9)
            XCTAssertEqual(memory.weights, states.weights / (zero >= 3 ? 4 : 1), accuracy: 1e-9)
            XCTAssertEqual(memory.activations, states.activations, accuracy: 1e-9)
        }
        // ZeRO-3 gathers the weights twice and reduce-scatters the gradients once per micro-batch:
        // 3·(3/4)·(1872·2 bytes) / 1e3 s, less the micro-batch's compute it hides behind.
        let zero3 = try planner.evaluate(plan(dp: 4, zero: 3))
        XCTAssertEqual(zero3.time.zeroGathers, 3 * 0.75 * 3744 / 1e3 - zero3.time.compute, accuracy: 1e-12)
        XCTAssertEqual(zero3.time.dataParallel, 0)
        setup.microBatch = 2
        let two = try MemoryEstimate(setup)
        XCTAssertEqual(try planner.evaluate(plan(dp: 2, b: 2)).memory.activations, two.activations, accuracy: 1e-9)
    }
}
