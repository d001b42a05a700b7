import CompilerTarget
import FlashCore
import XCTest

/// The ISA the manifest chose must be the one the C compiler targets under the same -march:
/// a wrong guess would build register tiles for the wrong register file.
final class VectorISATests: XCTestCase {
    func testCompiledISAAgreesWithTheCompilersTargetMacros() {
        let expected: VectorISA
        if FLASH_CC_HAS_AVX512 == 1 {
            expected = .avx512
        } else if FLASH_CC_HAS_AVX2_FMA == 1 {
            expected = .avx2
        } else if FLASH_CC_HAS_NEON == 1 {
            expected = .neon
        } else {
            expected = .generic
        }
        XCTAssertEqual(VectorISA.compiled, expected)
        XCTAssertEqual(MemoryLayout<FloatVector>.size, 4 * VectorISA.compiled.floatLanes)
    }
}
