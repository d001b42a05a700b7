import XCTest
import ModelFormats

final class ModelFormatsSmokeTests: XCTestCase {
    func testModuleLoads() {}
}
