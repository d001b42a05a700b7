import FlashCore

/// How one line of a score tile is laid out: every element either shares a query (a row of
/// S, elements are consecutive keys) or shares a key (a row of Sᵀ, consecutive queries).
enum LogitLine {
    case alongKeys
    case alongQueries
}

/// Lane index vectors for position-dependent terms (ALiBi distances, dropout counters).
enum Lanes {
    typealias Vector = SIMD16<Float>

    /// 0, 1, …, 15.
    static let iota = Vector(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
    static let iotaInteger = SIMD16<UInt32>(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
}

extension AttentionProblem {
    /// Turns one line of scaled dot products scale·q_i·k_j into logits, in place: softcap
    /// s ← cap·tanh(s/cap), then + bias − slope·|i + Nk − Nq − j| (ALiBi), then −Inf wherever
    /// the causal/window band, key padding or keep-mask hides the logit. (The kernels fold the
    /// scale into their Q operand, or into the GEMM's alpha, so it costs nothing here.) The
    /// line is query `query` with keys `key`…`key+count−1` (`.alongKeys`) or key `key` with
    /// queries `query`…`query+count−1` (`.alongQueries`).
    ///
    /// `derivative`, when given, receives ∂s/∂(q·k) per element (scale, times 1 − tanh² under
    /// softcap), which the backward pass needs. `fullyVisible` (the caller proved that the band
    /// and padding masks hide nothing in this line) makes a line without elementwise terms a no-op.
    @inline(__always)
    func prepareLogits(
        _ values: UnsafeMutablePointer<Float>, count: Int, sequence s: Int, head h: Int,
        query i0: Int, key j0: Int, line: LogitLine, fullyVisible: Bool,
        derivative: UnsafeMutablePointer<Float>? = nil
    ) {
        if count <= 0 { return }
        typealias Vector = SIMD16<Float>
        if let cap = softcap {
            let inverseCap = 1 / cap
            let scaleVector = Vector(repeating: scale)
            var e = 0
            while e < count {
                let lanes = min(16, count - e)
                let t = VectorMath.tanh(VectorMath.load(values + e, count: lanes) * inverseCap)
                VectorMath.store(t * cap, to: values + e, count: lanes)
                if let derivative { VectorMath.store(scaleVector * (1 - t * t), to: derivative + e, count: lanes) }
                e += 16
            }
        } else {
            derivative?.update(repeating: scale, count: count)
        }
        if fullyVisible && !hasElementwiseTerms { return }
        let off = diagonal(s)
        if let slopes = alibiSlopes {
            // |i + off − j| = |c + sign·e| for element e of the line.
            let c = Float(i0 + off - j0)
            let sign: Float = line == .alongQueries ? 1 : -1
            let negativeSlope = Vector(repeating: -slopes[h])
            var e = 0
            while e < count {
                let lanes = min(16, count - e)
                let distance = (Vector(repeating: c) + sign * (Lanes.iota + Float(e)))
                let absolute = distance.replacing(with: -distance, where: distance .< 0)
                VectorMath.store(VectorMath.load(values + e, count: lanes).addingProduct(negativeSlope, absolute), to: values + e, count: lanes)
                e += 16
            }
        }
        if let bias {
            let base = bias.offset(sequence: s, head: h, query: i0, key: j0)
            let step = line == .alongQueries ? bias.queryStride : bias.keyStride
            for e in 0..<count { values[e] += bias.tensor.load(at: base + e * step) }
        }
        // The visible band as a range [low, high) of element indices.
        var low = 0, high = count
        switch line {
        case .alongKeys:
            let first = i0 + off - leftReach
            let last = min(i0 + off + rightReach, validKeys[s] - 1)
            low = max(0, min(count, first - j0))
            high = max(low, min(count, last - j0 + 1))
        case .alongQueries:
            if j0 >= validKeys[s] {
                high = 0
            } else {
                let first = j0 - off - rightReach
                let last = j0 - off + leftReach
                low = max(0, min(count, first - i0))
                high = max(low, min(count, last - i0 + 1))
            }
        }
        if low > 0 { values.update(repeating: -.infinity, count: low) }
        if high < count { (values + high).update(repeating: -.infinity, count: count - high) }
        if let keepMask {
            let base = keepMask.offset(sequence: s, head: h, query: i0, key: j0)
            let step = line == .alongQueries ? keepMask.queryStride : keepMask.keyStride
            for e in low..<high where keepMask.tensor.load(at: base + e * step) == 0 { values[e] = -.infinity }
        }
    }

    /// Applies the dropout mask to one line of P (or dP): kept entries are scaled by 1/(1 − p),
    /// dropped ones become 0. The mask is `AttentionDropout.keeps` of each element's coordinates.
    @inline(__always)
    func applyDropout(
        _ values: UnsafeMutablePointer<Float>, count: Int, sequence s: Int, head h: Int,
        query i0: Int, key j0: Int, line: LogitLine
    ) {
        let keepScale = 1 / (1 - dropoutProbability)
        let threshold = SIMD16<UInt32>(repeating: AttentionDropout.threshold(dropoutProbability))
        let headKey = AttentionDropout.headKey(seed: dropoutSeed, batch: dropoutSequenceOffset + s, head: h)
        let queryMultiplier = AttentionDropout.queryMultiplier
        let keyMultiplier = AttentionDropout.keyMultiplier
        let fixedRowKey = AttentionDropout.mix(headKey ^ (UInt32(truncatingIfNeeded: i0) &* queryMultiplier))
        let fixedKey = UInt32(truncatingIfNeeded: j0) &* keyMultiplier
        var e = 0
        while e < count {
            let lanes = min(16, count - e)
            let index = Lanes.iotaInteger &+ UInt32(truncatingIfNeeded: e)
            let hash: SIMD16<UInt32>
            switch line {
            case .alongKeys:
                let keys = index &+ UInt32(truncatingIfNeeded: j0)
                hash = AttentionDropout.mix(SIMD16(repeating: fixedRowKey) ^ (keys &* keyMultiplier))
            case .alongQueries:
                let queries = index &+ UInt32(truncatingIfNeeded: i0)
                let rowKeys = AttentionDropout.mix(SIMD16(repeating: headKey) ^ (queries &* queryMultiplier))
                hash = AttentionDropout.mix(rowKeys ^ SIMD16(repeating: fixedKey))
            }
            var v = VectorMath.load(values + e, count: lanes) * keepScale
            v.replace(with: 0, where: hash .< threshold)
            VectorMath.store(v, to: values + e, count: lanes)
            e += 16
        }
    }
}
