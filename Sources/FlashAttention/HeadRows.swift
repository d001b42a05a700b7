import CacheHints
import FlashCore

/// A tensor addressed as (sequence, token, head, dim): [B, N, H, D] views (any strides), the
/// packed [totalTokens, H, D] tensors of variable-length batches (sequence stride 0, tokens
/// counted from the start of the packed axis), and LSE tensors ([B, H, N] or [H, totalTokens],
/// with D = 1).
struct HeadRows {
    let tensor: Tensor
    let sequenceStride: Int
    let tokenStride: Int
    let headStride: Int
    let dimStride: Int

    /// Storage offset of element 0 of (sequence, absolute token, head).
    @inline(__always)
    func offset(sequence: Int, token: Int, head: Int) -> Int {
        tensor.offset + sequence * sequenceStride + token * tokenStride + head * headStride
    }

    /// Reads `count` elements starting at storage offset `offset` (step `dimStride`), as Float32.
    @inline(__always)
    func load(at offset: Int, count: Int, into destination: UnsafeMutablePointer<Float>) {
        let raw = tensor.storage.pointer
        switch tensor.elementType {
        case .float32:
            let source = raw.assumingMemoryBound(to: Float.self) + offset
            if dimStride == 1 {
                Self.copy(source, to: destination, count: count)
            } else {
                for d in 0..<count { destination[d] = source[d * dimStride] }
            }
        case .float16:
            let source = raw.assumingMemoryBound(to: Float16.self) + offset
            for d in 0..<count { destination[d] = Float(source[d * dimStride]) }
        case .bfloat16:
            let source = raw.assumingMemoryBound(to: BFloat16.self) + offset
            for d in 0..<count { destination[d] = source[d * dimStride].floatValue }
        }
    }

    /// Asks for the `count` elements at storage offset `offset` (step `dimStride`) in the
    /// caches ahead of a `load`: the row-by-row packing walks rows at a token stride that
    /// crosses a page every few rows, where the hardware prefetchers stop, and it stalled on
    /// every row's first load (training step at width 128: ~5% of it in those stalls).
    @inline(__always)
    func prefetch(at offset: Int, count: Int) {
        let bytes = tensor.elementType.byteSize
        let first = tensor.storage.pointer + offset * bytes
        var line = 0
        while line < ((count - 1) * dimStride + 1) * bytes {
            flash_prefetch_l1(first + line)
            line += 64
        }
    }

    /// Copies one head row (D floats, typically 32–128) in 16-float vectors, inline: as a
    /// `memmove` call per row, the backward's packing and stores were ~5% of a width-128
    /// training step (`perf record`).
    @inline(__always)
    static func copy(_ source: UnsafePointer<Float>, to destination: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        while i + 16 <= count {
            UnsafeMutableRawPointer(destination + i).storeBytes(of: UnsafeRawPointer(source + i).loadUnaligned(as: SIMD16<Float>.self),
                                                                as: SIMD16<Float>.self)
            i += 16
        }
        while i < count { destination[i] = source[i]; i += 1 }
    }

    /// One element as Float32.
    @inline(__always)
    func load(at offset: Int) -> Float { tensor.load(at: offset) }

    /// Writes `count` Float32 values (the tensor is Float32, checked at validation).
    @inline(__always)
    func store(_ source: UnsafePointer<Float>, count: Int, at offset: Int) {
        let destination = tensor.storage.pointer.assumingMemoryBound(to: Float.self) + offset
        if dimStride == 1 {
            Self.copy(source, to: destination, count: count)
        } else {
            for d in 0..<count { destination[d * dimStride] = source[d] }
        }
    }

    /// Writes one Float32 value.
    @inline(__always)
    func store(_ value: Float, at offset: Int) {
        tensor.storage.pointer.assumingMemoryBound(to: Float.self)[offset] = value
    }

    /// True when rows can be used in place as Float32 tiles of width `width` (no conversion,
    /// unit stride along D, no padding needed).
    func readableInPlace(headDim: Int, width: Int) -> Bool {
        tensor.elementType == .float32 && (dimStride == 1 || headDim == 1) && headDim == width
    }

    /// Float32 pointer to storage offset `offset` (for tensors `readableInPlace`).
    @inline(__always)
    func floatPointer(at offset: Int) -> UnsafePointer<Float> {
        UnsafePointer(tensor.storage.pointer.assumingMemoryBound(to: Float.self) + offset)
    }

    /// A [B, N, H, D] tensor (or [B, H, N] LSE when `lse`).
    static func batched(_ tensor: Tensor, lse: Bool = false) -> HeadRows {
        lse ? HeadRows(tensor: tensor, sequenceStride: tensor.strides[0], tokenStride: tensor.strides[2],
                       headStride: tensor.strides[1], dimStride: 1)
            : HeadRows(tensor: tensor, sequenceStride: tensor.strides[0], tokenStride: tensor.strides[1],
                       headStride: tensor.strides[2], dimStride: tensor.strides[3])
    }

    /// A packed [totalTokens, H, D] tensor (or [H, totalTokens] LSE when `lse`).
    static func packed(_ tensor: Tensor, lse: Bool = false) -> HeadRows {
        lse ? HeadRows(tensor: tensor, sequenceStride: 0, tokenStride: tensor.strides[1],
                       headStride: tensor.strides[0], dimStride: 1)
            : HeadRows(tensor: tensor, sequenceStride: 0, tokenStride: tensor.strides[0],
                       headStride: tensor.strides[1], dimStride: tensor.strides[2])
    }
}

/// An additive bias or keep-mask broadcast over [B|1, H|1, Nq|1, Nk|1] (stride 0 on broadcast axes).
struct BroadcastLogits {
    let tensor: Tensor
    let sequenceStride: Int
    let headStride: Int
    let queryStride: Int
    let keyStride: Int

    init(_ tensor: Tensor) {
        // Left-pad lower-rank tensors with broadcast axes, like NumPy/PyTorch broadcasting.
        let missing = 4 - tensor.rank
        let shape = [Int](repeating: 1, count: missing) + tensor.shape
        let strides = [Int](repeating: 0, count: missing) + tensor.strides
        func effective(_ axis: Int) -> Int { shape[axis] == 1 ? 0 : strides[axis] }
        self.tensor = tensor
        sequenceStride = effective(0)
        headStride = effective(1)
        queryStride = effective(2)
        keyStride = effective(3)
    }

    @inline(__always)
    func offset(sequence: Int, head: Int, query: Int, key: Int) -> Int {
        tensor.offset + sequence * sequenceStride + head * headStride + query * queryStride + key * keyStride
    }
}

/// Where a forward pass writes its per-row log-sum-exp: the Float32 LSE and its rounding
/// error (see `AttentionOutput.logSumExpResidual`), two tensors of the same layout.
struct LogSumExpRows {
    let value: HeadRows
    /// Absent when a caller of the backward has only the LSE (then P loses its low bits
    /// under huge logits, as documented on `Attention.backward`).
    let residual: HeadRows?

    /// Stores m + log l of row (sequence, token, head), given its max m and sum l (0 when
    /// every key is masked: LSE −Inf, residual 0).
    @inline(__always)
    func store(maximum: Float, sum: Float, sequence s: Int, token: Int, head h: Int) {
        let (high, low) = AttentionMath.splitLogSumExp(maximum: maximum, sum: sum)
        value.store(high, at: value.offset(sequence: s, token: token, head: h))
        if let residual { residual.store(low, at: residual.offset(sequence: s, token: token, head: h)) }
    }

    /// The saved (LSE, residual) of row (sequence, token, head); residual 0 when absent.
    @inline(__always)
    func load(sequence s: Int, token: Int, head h: Int) -> (high: Float, low: Float) {
        let high = value.load(at: value.offset(sequence: s, token: token, head: h))
        guard let residual, high.isFinite else { return (high, 0) }
        return (high, residual.load(at: residual.offset(sequence: s, token: token, head: h)))
    }
}
