import XCTest
import Estimates

final class EstimatesSmokeTests: XCTestCase {
    func testModuleLoads() {}
}
