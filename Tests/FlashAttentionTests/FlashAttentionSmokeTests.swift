import XCTest
import FlashAttention

final class FlashAttentionSmokeTests: XCTestCase {
    func testModuleLoads() {}
}
