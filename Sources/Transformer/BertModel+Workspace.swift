import Foundation
import FlashCore

/// The activation buffers of one forward pass, carved from one storage that is kept and reused
/// by the next pass: a stream of batches then does not map and zero fresh pages on every call
/// (which cost more than a tenth of a batch-32 forward).
final class BertWorkspace {
    private var storage = TensorStorage(byteCount: 0)

    /// Views for a batch padded to [batch, length]: hidden [batch, length, hidden], the fused
    /// projection [rows, 3·hidden], the attention output [batch, length, heads, headDim], the
    /// post-attention states [rows, hidden] and the feed-forward activations [rows, intermediate].
    func buffers(batch: Int, length: Int, configuration c: BertConfiguration)
        -> (hidden: Tensor, qkv: Tensor, context: Tensor, attended: Tensor, intermediate: Tensor) {
        let rows = batch * length
        let (h, i) = (c.hiddenSize, c.intermediateSize)
        let floats = rows * (6 * h + i)
        if storage.byteCount < floats * 4 { storage = TensorStorage(byteCount: floats * 4) }
        var offset = 0
        func view(_ shape: [Int]) -> Tensor {
            let tensor = Tensor(storage: storage, elementType: .float32, shape: shape, strides: Tensor.contiguousStrides(shape), offset: offset)
            offset += shape.reduce(1, *)
            return tensor
        }
        return (view([batch, length, h]), view([rows, 3 * h]), view([batch, length, c.headCount, c.headDimension]),
                view([rows, h]), view([rows, i]))
    }
}

extension BertModel {
    /// Runs `body` with a workspace no other call is using: the model's cached one when it is
    /// free, else a fresh one (concurrent callers each get their own).
    func withWorkspace<R>(_ body: (BertWorkspace) throws -> R) rethrows -> R {
        workspaceLock.lock()
        let workspace = cachedWorkspace ?? BertWorkspace()
        cachedWorkspace = nil
        workspaceLock.unlock()
        defer {
            workspaceLock.lock()
            cachedWorkspace = workspace
            workspaceLock.unlock()
        }
        return try body(workspace)
    }
}
