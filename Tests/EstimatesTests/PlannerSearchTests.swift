import Estimates
import FlashCore
import Transformer
import XCTest

/// The search: constraints always hold, the pruned search finds the same optimum as brute force
/// over every plan, and impossible requests get errors that say what would work.
final class PlannerSearchTests: XCTestCase {
    func request(_ config: TransformerConfig, sequence: Int, batch: Int, devices: Int, memory: Double,
                 space: PlanSpace = .megatron) -> PlanRequest {
        var cluster = Cluster.a100
        cluster.deviceMemory = memory
        cluster.devicesPerNode = 4
        let setup = TrainingSetup(model: config, sequenceLength: sequence, parameterPrecision: .bf16, attention: .flash)
        return PlanRequest(setup: setup, globalBatch: batch, devices: devices, cluster: cluster, space: space)
    }

    /// Every plan of the space, evaluated without pruning.
    func bruteForce(_ planner: Planner) throws -> PlanEvaluation? {
        let r = planner.request, config = r.setup.model
        var best: PlanEvaluation?
        let g = r.devices
        for t in 1...g where g % t == 0 && config.heads % t == 0 {
            for p in 1...(g / t) where (g / t) % p == 0 && config.layers % p == 0 {
                for c in 1...(g / t / p) where (g / t / p) % c == 0 && r.setup.sequenceLength % c == 0 {
                    let d = g / (t * p * c)
                    for b in 1...max(1, r.globalBatch) where r.globalBatch % (d * b) == 0 {
                        let m = r.globalBatch / (d * b)
                        for v in 1...(config.layers / p) where (config.layers / p) % v == 0 && (v == 1 || (p > 1 && m % p == 0)) {
                            for zero in 0...3 where d * c > 1 || zero == 0 {
                                for recompute in Recomputation.allCases {
                                    let plan = ParallelPlan(data: d, tensor: t, pipeline: p, context: c, microBatch: b,
                                                            microBatches: m, recomputation: recompute, zero: zero,
                                                            schedule: v == 1 ? .oneFOneB : .interleaved(chunks: v))
                                    let e = try planner.evaluate(plan)
                                    guard e.memory.total <= r.cluster.deviceMemory else { continue }
                                    if best == nil || e.time.total < best!.time.total { best = e }
                                }
                            }
                        }
                    }
                }
            }
        }
        return best
    }

    func testPrunedSearchEqualsBruteForceAndRespectsConstraints() throws {
        var generator = SplitMix64(seed: 12)
        var checked = 0
        for _ in 0..<24 {
            let heads = [2, 4, 6, 8].randomElement(using: &generator)!
            let config = TransformerConfig(layers: [2, 4, 6].randomElement(using: &generator)!, heads: heads,
                                           width: heads * [16, 32].randomElement(using: &generator)!, context: 256,
                                           vocabularySize: 1000)
            let devices = [1, 2, 4, 6, 8, 12, 16].randomElement(using: &generator)!
            let batch = [4, 8, 12, 16].randomElement(using: &generator)!
            let sequence = [64, 256].randomElement(using: &generator)!
            // A memory between the smallest plan's and comfortable, so that memory binds.
            let memory = [2e6, 8e6, 3e7, 1e9].randomElement(using: &generator)!
            let planner = try Planner(request(config, sequence: sequence, batch: batch, devices: devices, memory: memory))
            let expected = try bruteForce(planner)
            do {
                let result = try planner.plan()
                let best = result.best, plan = best.plan
                XCTAssertEqual(best.time.total, expected!.time.total, accuracy: 1e-12 * best.time.total)
                XCTAssertLessThanOrEqual(best.memory.total, memory)
                XCTAssertEqual(plan.devices, devices)
                XCTAssertEqual(config.heads % plan.tensor, 0)
                XCTAssertEqual(config.layers % plan.pipeline, 0)
                XCTAssertEqual(sequence % plan.context, 0)
                XCTAssertEqual(batch, plan.data * plan.microBatch * plan.microBatches)
                for alternative in result.alternatives {
                    XCTAssertLessThanOrEqual(alternative.memory.total, memory)
                    XCTAssertGreaterThanOrEqual(alternative.time.total, best.time.total)
                }
                checked += 1
            } catch is PlanError {
                XCTAssertNil(expected, "the search found nothing where brute force found \(expected!.plan)")
            }
        }
        XCTAssertGreaterThan(checked, 0)
    }

    func testFixedChoicesAreEvaluatedAsGiven() throws {
        let config = TransformerConfig(layers: 4, heads: 4, width: 64, context: 128, vocabularySize: 1000)
        var r = request(config, sequence: 128, batch: 8, devices: 8, memory: 1e9)
        r.fixed = PlanConstraints(data: 2, tensor: 2, pipeline: 2, microBatch: 2, recomputation: .full, zero: 1, chunks: 2)
        let best = try Planner(r).plan().best.plan
        XCTAssertEqual(best, ParallelPlan(data: 2, tensor: 2, pipeline: 2, context: 1, microBatch: 2, microBatches: 2,
                                          recomputation: .full, zero: 1, schedule: .interleaved(chunks: 2)))
    }

    func testRejectionsNameTheConstraint() throws {
        let config = TransformerConfig(layers: 6, heads: 6, width: 96, context: 128, vocabularySize: 1000)
        let result = try Planner(request(config, sequence: 128, batch: 6, devices: 4, memory: 1e9)).plan()
        let reasons = Dictionary(result.rejected.map { ($0.family, $0.reason) }, uniquingKeysWith: { a, _ in a })
        XCTAssertEqual(reasons[ParallelFamily(data: 1, tensor: 4, pipeline: 1, context: 1)], .headsNotDivisible(heads: 6))
        XCTAssertEqual(reasons[ParallelFamily(data: 1, tensor: 1, pipeline: 4, context: 1)], .layersNotDivisible(layers: 6))
        XCTAssertEqual(reasons[ParallelFamily(data: 4, tensor: 1, pipeline: 1, context: 1)], .batchNotDivisible(globalBatch: 6))
        var standard = request(config, sequence: 128, batch: 6, devices: 2, memory: 1e9)
        standard.setup.attention = .standard
        let rejected = try Planner(standard).plan().rejected
        XCTAssertTrue(rejected.contains { $0.family.context == 2 && $0.reason == .contextParallelNeedsFlash })
    }

    func testErrors() throws {
        let config = TransformerConfig(layers: 4, heads: 4, width: 64, context: 128, vocabularySize: 1000)
        XCTAssertThrowsError(try Planner(request(config, sequence: 128, batch: 8, devices: 0, memory: 1e9))) { error in
            XCTAssertEqual((error as? InvalidArgument)?.argument, "devices")
        }
        // Too little memory: the error names the smallest memory that works on these devices and
        // the fewest devices that work with this memory, and both claims hold.
        let tight = 1.5e6
        do {
            _ = try Planner(request(config, sequence: 128, batch: 8, devices: 2, memory: tight)).plan()
            XCTFail("expected out of memory")
        } catch let PlanError.outOfMemory(devices, _, smallestMemory, smallestDevices) {
            XCTAssertEqual(devices, 2)
            XCTAssertGreaterThan(smallestMemory, tight)
            let enough = try Planner(request(config, sequence: 128, batch: 8, devices: 2, memory: smallestMemory)).plan()
            XCTAssertEqual(enough.best.memory.total, smallestMemory, accuracy: 1e-6 * smallestMemory)
            let more = try XCTUnwrap(smallestDevices)
            XCTAssertGreaterThan(more, 2)
            XCTAssertLessThanOrEqual(try Planner(request(config, sequence: 128, batch: 8, devices: more, memory: tight)).plan()
                .best.memory.total, tight)
        }
        // A split that cannot exist: 3 heads, 3 layers, sequence 9, batch 3 over 2 devices.
        let odd = TransformerConfig(layers: 3, heads: 3, width: 48, context: 9, vocabularySize: 100)
        XCTAssertThrowsError(try Planner(request(odd, sequence: 9, batch: 3, devices: 2, memory: 1e9)).plan()) { error in
            guard case let PlanError.cannotSplit(devices, nearest) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(devices, 2)
            XCTAssertEqual(nearest.first, 1)
            XCTAssertTrue(nearest.contains(3))
            XCTAssertTrue("\(error)".contains("device counts that can: 1, 3"))
        }
    }

    func testProjectTrainerSpace() throws {
        let config = TransformerConfig(layers: 4, heads: 4, width: 64, context: 128, vocabularySize: 100)
        var setup = TrainingSetup(model: config, attention: .flash, memoryModel: .projectTrainer)
        setup.sequenceLength = 128
        let result = try Planner(PlanRequest(setup: setup, globalBatch: 16, devices: 4, cluster: .cpu(), space: .projectTrainer)).plan()
        XCTAssertEqual(result.best.plan.tensor, 1)
        XCTAssertEqual(result.best.plan.pipeline, 1)
        XCTAssertLessThanOrEqual(result.best.plan.zero, 1)
        XCTAssertTrue(result.rejected.contains { $0.reason == .notSupported(what: "tensor parallelism") })
        // The trainer's zig-zag ring attention needs 2·cp blocks: sequence 9 allows cp 3 elsewhere, not here.
        let short = TransformerConfig(layers: 2, heads: 2, width: 16, context: 9, vocabularySize: 50)
        var shortSetup = TrainingSetup(model: short, attention: .flash, memoryModel: .projectTrainer)
        shortSetup.sequenceLength = 9
        let zigzag = try Planner(PlanRequest(setup: shortSetup, globalBatch: 1, devices: 3, cluster: .cpu(), space: .projectTrainer))
        XCTAssertThrowsError(try zigzag.plan())
    }
}

/// A seeded generator, so that the random cases are the same on every run.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
