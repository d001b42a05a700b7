import Foundation
import FlashCore

/// Keys and values in fixed-size blocks shared by many sequences (a paged KV cache): per layer
/// one pool of keys and one of values, each `[blockCount, blockSize, keyHeads, headDim]`
/// Float32 (keys stored after rotary rotation). Which blocks hold which sequence's positions is
/// the block manager's business; a forward pass gets each sequence's block table.
public final class PagedKVCache: @unchecked Sendable {
    public let layers: Int
    public let blockCount: Int
    public let blockSize: Int
    public let keyHeads: Int
    public let headDim: Int
    /// Per layer, the base of the key and value pools.
    public let keys: [UnsafeMutablePointer<Float>]
    public let values: [UnsafeMutablePointer<Float>]

    /// Floats per position (keyHeads × headDim) and per block.
    public var rowSize: Int { keyHeads * headDim }
    public var blockFloats: Int { blockSize * rowSize }
    /// Bytes of keys and values of all layers.
    public var bytes: Int { 2 * layers * blockCount * blockFloats * MemoryLayout<Float>.size }

    /// Throws `InvalidArgument` for a non-positive size or a pool larger than physical memory.
    public init(layers: Int, blockCount: Int, blockSize: Int, keyHeads: Int, headDim: Int) throws {
        for (name, value) in [("layers", layers), ("blockCount", blockCount), ("blockSize", blockSize),
                              ("keyHeads", keyHeads), ("headDim", headDim)] {
            try InvalidArgument.require(value > 0, name, expected: "> 0", got: "\(value)")
        }
        let floats = blockCount * blockSize * keyHeads * headDim
        let total = 2 * layers * floats * MemoryLayout<Float>.size
        try InvalidArgument.require(total < Int(clamping: ProcessInfo.processInfo.physicalMemory), "blockCount",
                                    expected: "a KV cache that fits in memory",
                                    got: "\(blockCount) blocks needing \(total >> 20) MiB")
        self.layers = layers
        self.blockCount = blockCount
        self.blockSize = blockSize
        self.keyHeads = keyHeads
        self.headDim = headDim
        // calloc: untouched blocks cost no physical memory until first written.
        func pool() -> UnsafeMutablePointer<Float> {
            calloc(floats, MemoryLayout<Float>.size)!.assumingMemoryBound(to: Float.self)
        }
        keys = (0..<layers).map { _ in pool() }
        values = (0..<layers).map { _ in pool() }
    }

    deinit {
        for p in keys { free(p) }
        for p in values { free(p) }
    }

    /// Float offset of `position`'s row in a pool, for a sequence with block table `table`.
    @inline(__always)
    public func offset(position: Int, table: [Int32]) -> Int {
        (Int(table[position / blockSize]) * blockSize + position % blockSize) * rowSize
    }

    /// Copies block `source` over block `destination` in every layer (copy-on-write).
    public func copyBlock(from source: Int, to destination: Int) {
        let n = blockFloats
        for l in 0..<layers {
            (keys[l] + destination * n).update(from: keys[l] + source * n, count: n)
            (values[l] + destination * n).update(from: values[l] + source * n, count: n)
        }
    }
}
