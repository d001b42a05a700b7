import Foundation

/// Raw, 64-byte aligned memory shared by tensors and views of it.
///
/// Sendable as a raw pointer is: the pointer itself never changes; the bytes it points to have
/// no lock, so threads may read them together (weights) or write disjoint ranges (kernel
/// workers), and any other sharing of written bytes is the owner's to order.
public final class TensorStorage: @unchecked Sendable {
    /// The first byte (64-byte aligned).
    public let pointer: UnsafeMutableRawPointer
    /// Bytes allocated.
    public let byteCount: Int

    /// Zero-filled storage of `byteCount` bytes.
    public init(byteCount: Int) {
        self.byteCount = byteCount
        pointer = UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, 1), alignment: 64)
        pointer.initializeMemory(as: UInt8.self, repeating: 0, count: max(byteCount, 1))
    }

    deinit { pointer.deallocate() }
}

/// A strided n-dimensional view of typed elements in a `TensorStorage`.
///
/// Tensors have reference semantics for their data, like PyTorch's: a view made by `permuted`,
/// `sliced` or `reshaped` shares storage with its source, and writes through one are seen by
/// the other. `strides` and `offset` count elements, not bytes.
///
/// Sendable on the same terms as its `TensorStorage` (the view's fields are immutable).
public struct Tensor: @unchecked Sendable, CustomStringConvertible {
    /// How each element is stored (kernels compute in Float32 either way).
    public let elementType: ElementType
    /// Extent of each axis, outermost first.
    public let shape: [Int]
    /// Elements between neighbours along each axis (row-major contiguous: the products of the
    /// later extents).
    public let strides: [Int]
    /// Index of element [0, 0, …] in `storage`, in elements.
    public let offset: Int
    /// The memory this tensor views; other views may share it.
    public let storage: TensorStorage

    /// A zero-filled, contiguous (row-major) tensor.
    public init(zeros shape: [Int], elementType: ElementType = .float32) throws {
        try Tensor.validate(shape: shape, argument: "shape")
        let count = shape.reduce(1, *)
        self.init(storage: TensorStorage(byteCount: count * elementType.byteSize), elementType: elementType,
                  shape: shape, strides: Tensor.contiguousStrides(shape), offset: 0)
    }

    /// A contiguous tensor holding `values` (row-major), rounded to `elementType`.
    public init(shape: [Int], values: [Float], elementType: ElementType = .float32) throws {
        try self.init(zeros: shape, elementType: elementType)
        try InvalidArgument.require(values.count == elementCount, "values.count",
                                    expected: "\(elementCount) (the product of shape \(shape))", got: "\(values.count)")
        values.withUnsafeBufferPointer { source in
            let base = storage.pointer
            switch elementType {
            case .float32: base.assumingMemoryBound(to: Float.self).update(from: source.baseAddress!, count: values.count)
            case .float16: ElementConversion.narrow(source.baseAddress!, into: base.assumingMemoryBound(to: Float16.self), count: values.count)
            case .bfloat16: ElementConversion.narrow(source.baseAddress!, into: base.assumingMemoryBound(to: BFloat16.self), count: values.count)
            }
        }
    }

    /// A view of existing storage. Does not check that the addressed elements lie inside it:
    /// `permuted`, `sliced` and `reshaped` (which do check their arguments) build views safely.
    public init(storage: TensorStorage, elementType: ElementType, shape: [Int], strides: [Int], offset: Int) {
        self.storage = storage
        self.elementType = elementType
        self.shape = shape
        self.strides = strides
        self.offset = offset
    }

    /// Row-major strides for `shape`.
    public static func contiguousStrides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var running = 1
        for axis in stride(from: shape.count - 1, through: 0, by: -1) {
            strides[axis] = running
            running *= shape[axis]
        }
        return strides
    }

    static func validate(shape: [Int], argument: String) throws {
        for (axis, size) in shape.enumerated() {
            try InvalidArgument.require(size >= 0, "\(argument)[\(axis)]", expected: "a size ≥ 0", got: "\(size)")
        }
        var total = 1
        for size in shape {
            let (product, overflow) = total.multipliedReportingOverflow(by: size)
            try InvalidArgument.require(!overflow && product <= Int(Int32.max) * 64, argument,
                                        expected: "a total element count that fits in memory", got: "\(shape)")
            total = product
        }
    }

    /// Number of axes.
    public var rank: Int { shape.count }
    /// Number of elements (the product of `shape`).
    public var elementCount: Int { shape.reduce(1, *) }
    /// Whether the elements lie row-major with no gaps (any tensor of ≤ 1 element is).
    public var isContiguous: Bool { strides == Tensor.contiguousStrides(shape) || elementCount <= 1 }

    /// `Tensor<F32>[2, 3]`: element type and shape.
    public var description: String { "Tensor<\(elementType.rawValue)>\(shape)" }

    /// The same data with axes reordered: result axis `i` is source axis `order[i]`. No copy.
    public func permuted(_ order: [Int]) throws -> Tensor {
        try InvalidArgument.require(order.sorted() == Array(0..<rank), "order",
                                    expected: "a permutation of 0..<\(rank)", got: "\(order)")
        return Tensor(storage: storage, elementType: elementType, shape: order.map { shape[$0] },
                      strides: order.map { strides[$0] }, offset: offset)
    }

    /// The sub-range `range` of `axis`. No copy.
    public func sliced(axis: Int, _ range: Range<Int>) throws -> Tensor {
        try InvalidArgument.require(axis >= 0 && axis < rank, "axis", expected: "0..<\(rank)", got: "\(axis)")
        try InvalidArgument.require(range.lowerBound >= 0 && range.upperBound <= shape[axis], "range",
                                    expected: "inside 0..<\(shape[axis])", got: "\(range)")
        var newShape = shape
        newShape[axis] = range.count
        return Tensor(storage: storage, elementType: elementType, shape: newShape, strides: strides,
                      offset: offset + range.lowerBound * strides[axis])
    }

    /// The same elements under another shape; needs a contiguous tensor. No copy.
    public func reshaped(_ newShape: [Int]) throws -> Tensor {
        try Tensor.validate(shape: newShape, argument: "shape")
        try InvalidArgument.require(newShape.reduce(1, *) == elementCount, "shape",
                                    expected: "\(elementCount) elements", got: "\(newShape)")
        try InvalidArgument.require(isContiguous, "tensor", expected: "a contiguous tensor", got: "strides \(strides)")
        return Tensor(storage: storage, elementType: elementType, shape: newShape,
                      strides: Tensor.contiguousStrides(newShape), offset: offset)
    }

    /// Storage offset of the element at `index` (one entry per axis).
    @inlinable
    public func elementOffset(_ index: [Int]) -> Int {
        var position = offset
        for axis in 0..<index.count { position += index[axis] * strides[axis] }
        return position
    }

    /// Reads element `position` of the storage (an offset from `elementOffset`) as Float32.
    @inlinable
    public func load(at position: Int) -> Float {
        switch elementType {
        case .float32: return storage.pointer.assumingMemoryBound(to: Float.self)[position]
        case .float16: return Float(storage.pointer.assumingMemoryBound(to: Float16.self)[position])
        case .bfloat16: return storage.pointer.assumingMemoryBound(to: BFloat16.self)[position].floatValue
        }
    }

    /// Writes `value` (rounded to the element type) at storage offset `position`.
    @inlinable
    public func store(_ value: Float, at position: Int) {
        switch elementType {
        case .float32: storage.pointer.assumingMemoryBound(to: Float.self)[position] = value
        case .float16: storage.pointer.assumingMemoryBound(to: Float16.self)[position] = Float16(value)
        case .bfloat16: storage.pointer.assumingMemoryBound(to: BFloat16.self)[position] = BFloat16(value)
        }
    }

    /// Element at `index` as Float32.
    public subscript(_ index: Int...) -> Float {
        get { load(at: elementOffset(index)) }
        nonmutating set { store(newValue, at: elementOffset(index)) }
    }

    /// Calls `body` with each storage offset in row-major order of the logical elements.
    @inlinable
    public func forEachOffset(_ body: (Int) -> Void) {
        if elementCount == 0 { return }
        var index = [Int](repeating: 0, count: rank)
        var position = offset
        while true {
            body(position)
            var axis = rank - 1
            while axis >= 0 {
                index[axis] += 1
                position += strides[axis]
                if index[axis] < shape[axis] { break }
                position -= index[axis] * strides[axis]
                index[axis] = 0
                axis -= 1
            }
            if axis < 0 { return }
        }
    }

    /// All elements as Float32, in row-major logical order.
    public func floats() -> [Float] {
        var result = [Float]()
        result.reserveCapacity(elementCount)
        forEachOffset { result.append(load(at: $0)) }
        return result
    }

    /// A contiguous copy in `elementType` (default: the same type).
    public func contiguous(as newType: ElementType? = nil) -> Tensor {
        let result = try! Tensor(zeros: shape, elementType: newType ?? elementType)
        var i = 0
        forEachOffset { position in
            result.store(load(at: position), at: i)
            i += 1
        }
        return result
    }

    /// Pointer to the first element of a Float32 tensor (at `offset`).
    public var floatPointer: UnsafeMutablePointer<Float> {
        precondition(elementType == .float32, "floatPointer needs a Float32 tensor")
        return storage.pointer.assumingMemoryBound(to: Float.self) + offset
    }
}
