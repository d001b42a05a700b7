import Foundation
import FlashCore

/// Keys and values in fixed-size blocks shared by many sequences (a paged KV cache): per layer
/// one pool of keys and one of values, each `[blockCount, blockSize, keyHeads, headDim]`
/// (keys stored after rotary rotation). Which blocks hold which sequence's positions is the
/// block manager's business; a forward pass gets each sequence's block table.
///
/// The pools hold Float32 or Float16 (`elementType`). Float16 halves the cache's memory and
/// the bytes a decode step streams through its attention (on a 135M-parameter model at a
/// 576-token context, ~26 MB of Float32 keys and values per token against ~96 MB of weights);
/// it is llama.cpp's default cache type. Rows are rounded to Float16 once when stored and
/// widened to Float32 when attention reads them; all arithmetic stays Float32.
///
/// Not locked: its owner runs one forward pass (or block copy) on it at a time; in serving,
/// only the engine's loop thread touches it (through the `Scheduler` it owns).
public final class PagedKVCache: @unchecked Sendable {
    public let layers: Int
    public let blockCount: Int
    public let blockSize: Int
    public let keyHeads: Int
    public let headDim: Int
    /// The pools' element type: `.float32` or `.float16`.
    public let elementType: ElementType
    /// Per layer, the base of the key and value pools (elements of `elementType`).
    public let keys: [UnsafeMutableRawPointer]
    public let values: [UnsafeMutableRawPointer]

    /// Elements per position (keyHeads × headDim) and per block.
    public var rowSize: Int { keyHeads * headDim }
    public var blockElements: Int { blockSize * rowSize }
    /// Bytes of keys and values of all layers.
    public var bytes: Int { 2 * layers * blockCount * blockElements * elementType.byteSize }
    /// Bytes of keys and values one position takes in all layers.
    public var bytesPerPosition: Int { 2 * layers * rowSize * elementType.byteSize }

    /// Throws `InvalidArgument` for a non-positive size, an element type other than Float32 or
    /// Float16, or a pool larger than physical memory.
    public init(layers: Int, blockCount: Int, blockSize: Int, keyHeads: Int, headDim: Int, elementType: ElementType = .float32) throws {
        for (name, value) in [("layers", layers), ("blockCount", blockCount), ("blockSize", blockSize),
                              ("keyHeads", keyHeads), ("headDim", headDim)] {
            try InvalidArgument.require(value > 0, name, expected: "> 0", got: "\(value)")
        }
        try InvalidArgument.require(elementType != .bfloat16, "elementType", expected: "F32 or F16", got: elementType.rawValue)
        let elements = blockCount * blockSize * keyHeads * headDim
        let total = 2 * layers * elements * elementType.byteSize
        try InvalidArgument.require(total < Int(clamping: ProcessInfo.processInfo.physicalMemory), "blockCount",
                                    expected: "a KV cache that fits in memory",
                                    got: "\(blockCount) blocks needing \(total >> 20) MiB")
        self.layers = layers
        self.blockCount = blockCount
        self.blockSize = blockSize
        self.keyHeads = keyHeads
        self.headDim = headDim
        self.elementType = elementType
        // calloc: untouched blocks cost no physical memory until first written.
        func pool() -> UnsafeMutableRawPointer { calloc(elements, elementType.byteSize)! }
        keys = (0..<layers).map { _ in pool() }
        values = (0..<layers).map { _ in pool() }
    }

    deinit {
        for p in keys { free(p) }
        for p in values { free(p) }
    }

    /// Element offset of `position`'s row in a pool, for a sequence with block table `table`.
    @inline(__always)
    public func offset(position: Int, table: [Int32]) -> Int {
        (Int(table[position / blockSize]) * blockSize + position % blockSize) * rowSize
    }

    /// Stores one position's key and value rows (`rowSize` Float32 each) at element `offset`
    /// of layer `layer`'s pools, rounded to Float16 when the pools hold halves.
    @inline(__always)
    public func store(layer: Int, offset: Int, key: UnsafePointer<Float>, value: UnsafePointer<Float>) {
        let n = rowSize
        if elementType == .float16 {
            HalfRows.narrow(key, into: keys[layer].assumingMemoryBound(to: Float16.self) + offset, count: n)
            HalfRows.narrow(value, into: values[layer].assumingMemoryBound(to: Float16.self) + offset, count: n)
        } else {
            (keys[layer].assumingMemoryBound(to: Float.self) + offset).update(from: key, count: n)
            (values[layer].assumingMemoryBound(to: Float.self) + offset).update(from: value, count: n)
        }
    }

    /// Copies block `source` over block `destination` in every layer (copy-on-write).
    public func copyBlock(from source: Int, to destination: Int) {
        let n = blockElements * elementType.byteSize
        for l in 0..<layers {
            (keys[l] + destination * n).copyMemory(from: keys[l] + source * n, byteCount: n)
            (values[l] + destination * n).copyMemory(from: values[l] + source * n, byteCount: n)
        }
    }
}
