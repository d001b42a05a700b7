import FlashCore

/// Keys and values of every position processed so far, per layer, as Float32 tensors
/// [1, capacity, kvHeads, headDim] (rotary embedding already applied to keys), so decoding a
/// token costs one new row per layer instead of recomputing the prefix. Attention reads the
/// filled prefix through `keys(layer:)`/`values(layer:)`, views that share the storage.
public final class LlamaKVCache {
    /// Positions the cache can hold.
    public let capacity: Int
    /// Decoder layers (one key and one value tensor each).
    public let layers: Int
    /// Floats per position: kvHeads × headDim.
    public let rowSize: Int
    /// Positions filled.
    public internal(set) var count: Int = 0
    let keyTensors: [Tensor]
    let valueTensors: [Tensor]
    /// Base addresses of `keyTensors`/`valueTensors`, where the model writes new rows.
    let keys: [UnsafeMutablePointer<Float>]
    let values: [UnsafeMutablePointer<Float>]

    /// An empty cache for `capacity` positions of a model shaped like `configuration`.
    public init(configuration: LlamaConfiguration, capacity: Int) {
        self.capacity = capacity
        layers = configuration.layers
        rowSize = configuration.keyValueHeads * configuration.headDimension
        let shape = [1, max(capacity, 1), configuration.keyValueHeads, configuration.headDimension]
        func make() -> Tensor {
            Tensor(storage: TensorStorage(byteCount: shape.reduce(1, *) * MemoryLayout<Float>.size), elementType: .float32,
                   shape: shape, strides: Tensor.contiguousStrides(shape), offset: 0)
        }
        keyTensors = (0..<layers).map { _ in make() }
        valueTensors = (0..<layers).map { _ in make() }
        keys = keyTensors.map(\.floatPointer)
        values = valueTensors.map(\.floatPointer)
    }

    /// The first `length` cached keys of `layer`: a [1, length, kvHeads, headDim] view.
    func keys(layer: Int, length: Int) throws -> Tensor { try keyTensors[layer].sliced(axis: 1, 0..<length) }

    /// The first `length` cached values of `layer`: a [1, length, kvHeads, headDim] view.
    func values(layer: Int, length: Int) throws -> Tensor { try valueTensors[layer].sliced(axis: 1, 0..<length) }

    /// Forgets every position (the memory is kept).
    public func reset() { count = 0 }
}
