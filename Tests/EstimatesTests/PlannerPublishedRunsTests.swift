import Estimates
import XCTest

/// The planner against published large-scale runs (docs/planner.md, "Published runs"): its
/// prediction for each published layout is within 15% of the published throughput, and its own
/// choice is predicted at least as fast as the published layout.
final class PlannerPublishedRunsTests: XCTestCase {
    func testPublishedLayoutsWithinFifteenPercent() throws {
        let runs = try PublishedRun.all()
        XCTAssertEqual(runs.filter { $0.name.hasPrefix("megatron") }.count, 10)
        XCTAssertGreaterThanOrEqual(runs.filter { $0.name.hasPrefix("llama") }.count, 1)
        for run in runs {
            let published = try Planner(run.request(fixingPublishedLayout: true)).plan()
            let predicted = run.predictedTFLOPS(published.best)
            let error = predicted / run.published_tflops_per_device - 1
            print(String(format: "%@: published %.0f TFLOP/s, predicted %.1f (%+.1f%%) with %@", run.name,
                         run.published_tflops_per_device, predicted, 100 * error, published.best.plan.description))
            XCTAssertLessThanOrEqual(abs(error), 0.15, run.name)
            XCTAssertEqual(published.best.plan.tensor, run.tensor)
            XCTAssertEqual(published.best.plan.pipeline, run.pipeline)
            XCTAssertLessThanOrEqual(published.best.memory.total, Cluster.named(run.hardware)!.deviceMemory, run.name)

            let free = try Planner(run.request(fixingPublishedLayout: false)).plan()
            print("  planner's choice: \(free.best.plan), \(String(format: "%.3f", free.best.time.total)) s vs "
                  + String(format: "%.3f", published.best.time.total) + " s")
            XCTAssertLessThanOrEqual(free.best.time.total, published.best.time.total * (1 + 1e-12), run.name)
        }
    }
}
