import Foundation
import FlashCore

/// The activation buffers of one forward pass, carved from one storage that is kept and reused
/// by the next pass: a stream of batches then does not map and zero fresh pages on every call
/// (which cost more than a tenth of a batch-32 forward).
final class BertWorkspace {
    private var storage = TensorStorage(byteCount: 0)

    /// The buffers of one forward pass over `rows` tokens from `batch` sequences.
    struct Buffers {
        /// Packed [rows, ·]: hidden states, the fused Q/K/V projection, the attention output,
        /// the post-attention states and the feed-forward activations.
        var hidden, qkv, context, attended, intermediate: Tensor
        /// Padded [batch·longest, ·] copies of Q/K/V and the attention output.
        var paddedQKV, paddedContext: Tensor
    }

    func buffers(rows: Int, batch: Int, longest: Int, configuration c: BertConfiguration) -> Buffers {
        let (h, i) = (c.hiddenSize, c.intermediateSize)
        let paddedRows = batch * longest
        let floats = rows * (6 * h + i) + paddedRows * 4 * h
        if storage.byteCount < floats * 4 { storage = TensorStorage(byteCount: floats * 4) }
        var offset = 0
        func view(_ shape: [Int]) -> Tensor {
            let tensor = Tensor(storage: storage, elementType: .float32, shape: shape, strides: Tensor.contiguousStrides(shape), offset: offset)
            offset += shape.reduce(1, *)
            return tensor
        }
        return Buffers(hidden: view([rows, h]), qkv: view([rows, 3 * h]), context: view([rows, h]), attended: view([rows, h]),
                       intermediate: view([rows, i]), paddedQKV: view([paddedRows, 3 * h]), paddedContext: view([paddedRows, h]))
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
