/// Keys and values of every position processed so far, per layer, laid out [position, kvHead,
/// headDim] (Float32, rotary embedding already applied to keys), so decoding a token costs one
/// new row per layer instead of recomputing the prefix.
public final class LlamaKVCache {
    public let capacity: Int
    public let layers: Int
    /// Floats per position: kvHeads × headDim.
    public let rowSize: Int
    /// Positions filled.
    public internal(set) var count: Int = 0
    let keys: [UnsafeMutablePointer<Float>]
    let values: [UnsafeMutablePointer<Float>]

    public init(configuration: LlamaConfiguration, capacity: Int) {
        self.capacity = capacity
        layers = configuration.layers
        rowSize = configuration.keyValueHeads * configuration.headDimension
        keys = (0..<layers).map { _ in UnsafeMutablePointer<Float>.allocate(capacity: max(1, capacity * configuration.keyValueHeads * configuration.headDimension)) }
        values = (0..<layers).map { _ in UnsafeMutablePointer<Float>.allocate(capacity: max(1, capacity * configuration.keyValueHeads * configuration.headDimension)) }
    }

    /// Forgets every position (the memory is kept).
    public func reset() { count = 0 }

    deinit {
        for p in keys { p.deallocate() }
        for p in values { p.deallocate() }
    }
}
