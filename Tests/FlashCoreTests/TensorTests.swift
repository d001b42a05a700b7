import FlashCore
import XCTest

/// Tensor views: strides, permute, slice, reshape, and the errors for bad arguments.
final class TensorTests: XCTestCase {
    func argument(_ body: () throws -> Void) -> String? {
        do { try body(); return nil } catch let error as InvalidArgument { return error.argument } catch { return "other" }
    }

    func testContiguousLayoutAndSubscripts() throws {
        let t = try Tensor(shape: [2, 3, 4], values: (0..<24).map(Float.init))
        XCTAssertEqual(t.strides, [12, 4, 1])
        XCTAssertEqual(Tensor.contiguousStrides([5]), [1])
        XCTAssertEqual(Tensor.contiguousStrides([]), [])
        XCTAssertTrue(t.isContiguous)
        XCTAssertEqual(t.elementCount, 24)
        XCTAssertEqual(t[1, 2, 3], 23)
        XCTAssertEqual(t[0, 1, 2], 6)
        t[1, 0, 0] = -1
        XCTAssertEqual(t.floats()[12], -1)
        XCTAssertEqual(t.floatPointer[12], -1)
        let zeros = try Tensor(zeros: [3, 0, 2])
        XCTAssertEqual(zeros.elementCount, 0)
        XCTAssertEqual(zeros.floats(), [])
    }

    func testPermutedSharesStorage() throws {
        let t = try Tensor(shape: [2, 3, 4], values: (0..<24).map(Float.init))
        let p = try t.permuted([2, 0, 1])
        XCTAssertEqual(p.shape, [4, 2, 3])
        XCTAssertEqual(p.strides, [1, 12, 4])
        XCTAssertFalse(p.isContiguous)
        for i in 0..<2 { for j in 0..<3 { for k in 0..<4 { XCTAssertEqual(p[k, i, j], t[i, j, k]) } } }
        p[3, 1, 2] = 100
        XCTAssertEqual(t[1, 2, 3], 100)
        // floats() walks the logical order; contiguous() copies into row-major strides.
        let copy = p.contiguous()
        XCTAssertTrue(copy.isContiguous)
        XCTAssertEqual(copy.floats(), p.floats())
        XCTAssertEqual(p.floats()[0..<3], [0, 4, 8])
    }

    func testSlicedViews() throws {
        let t = try Tensor(shape: [4, 5], values: (0..<20).map(Float.init))
        let rows = try t.sliced(axis: 0, 1..<3)
        XCTAssertEqual(rows.shape, [2, 5])
        XCTAssertEqual(rows.offset, 5)
        XCTAssertTrue(rows.isContiguous)
        XCTAssertEqual(rows.floats(), (5..<15).map(Float.init))
        let columns = try t.sliced(axis: 1, 2..<4)
        XCTAssertEqual(columns.shape, [4, 2])
        XCTAssertEqual(columns.strides, [5, 1])
        XCTAssertFalse(columns.isContiguous)
        XCTAssertEqual(columns.floats(), [2, 3, 7, 8, 12, 13, 17, 18])
        let both = try columns.sliced(axis: 0, 3..<4)
        XCTAssertEqual(both.floats(), [17, 18])
        XCTAssertEqual(both.floatPointer[0], 17)
        let empty = try t.sliced(axis: 1, 2..<2)
        XCTAssertEqual(empty.elementCount, 0)
    }

    func testReshaped() throws {
        let t = try Tensor(shape: [2, 6], values: (0..<12).map(Float.init))
        let r = try t.reshaped([3, 2, 2])
        XCTAssertEqual(r.strides, [4, 2, 1])
        XCTAssertEqual(r[2, 1, 0], 10)
        r[0, 0, 1] = 50
        XCTAssertEqual(t[0, 1], 50)
        // A contiguous slice (offset ≠ 0) reshapes too.
        let tail = try t.sliced(axis: 0, 1..<2).reshaped([3, 2])
        XCTAssertEqual(tail.floats(), (6..<12).map(Float.init))
    }

    func testInvalidArgumentsAreNamed() throws {
        let t = try Tensor(zeros: [2, 3])
        XCTAssertEqual(argument { _ = try Tensor(zeros: [2, -1]) }, "shape[1]")
        XCTAssertEqual(argument { _ = try Tensor(zeros: [Int.max, 4]) }, "shape")
        XCTAssertEqual(argument { _ = try Tensor(shape: [2, 2], values: [1, 2, 3]) }, "values.count")
        XCTAssertEqual(argument { _ = try t.permuted([0, 0]) }, "order")
        XCTAssertEqual(argument { _ = try t.permuted([0]) }, "order")
        XCTAssertEqual(argument { _ = try t.sliced(axis: 2, 0..<1) }, "axis")
        XCTAssertEqual(argument { _ = try t.sliced(axis: -1, 0..<1) }, "axis")
        XCTAssertEqual(argument { _ = try t.sliced(axis: 1, 1..<4) }, "range")
        XCTAssertEqual(argument { _ = try t.reshaped([4, 2]) }, "shape")
        XCTAssertEqual(argument { _ = try t.reshaped([-2, -3]) }, "shape[0]")
        XCTAssertEqual(argument { _ = try t.permuted([1, 0]).reshaped([6]) }, "tensor")
        let error = try XCTUnwrap({ () -> InvalidArgument? in
            do { _ = try t.sliced(axis: 1, 1..<4); return nil } catch let e as InvalidArgument { return e } catch { return nil }
        }())
        XCTAssertEqual(error.description, "invalid range: expected inside 0..<3, got 1..<4")
    }
}
