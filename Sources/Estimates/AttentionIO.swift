import FlashCore

/// The IO model of attention after Dao et al. 2022 (FlashAttention, Section 3.2 and Appendix C):
/// exact counts of FLOPs and of bytes moved between main memory and on-chip memory for the
/// standard algorithm (which writes S, P and their gradients to main memory: Θ(N·d + N²)
/// accesses) and for FlashAttention (which streams tiles through on-chip memory of M elements:
/// Θ(N²·d²/M) accesses). Each input tile is counted once per time the algorithm loads it.
///
/// Counts are per (batch, head) problem and multiplied by batch · heads.
public enum AttentionIO {
    /// Non-matmul FLOPs per query-key pair and per row, the conventions docs/estimates.md lists.
    enum Work {
        /// Scale, then softmax: max, subtract, exp, sum, divide.
        static let standardForwardPerPair = 6.0
        /// Softmax backward dS = P∘(dP − rowsum(P∘dP)): multiply, add, subtract, multiply; scale.
        static let standardBackwardPerPair = 5.0
        /// Online softmax per score: scale, max, subtract, exp, sum.
        static let flashForwardPerPair = 5.0
        /// Recompute P = exp(scale·s − LSE): scale, subtract, exp; dS = P∘(dP − D): subtract,
        /// multiply; scale.
        static let flashBackwardPerPair = 6.0
        /// Dropout multiplies each kept probability (forward) and each gradient (backward) once.
        static let dropoutPerPair = 1.0
    }

    /// The standard algorithm (paper Algorithms 0 and 3): S = QKᵀ, P = softmax(S), O = PV, each
    /// a separate pass over main memory; dropout adds a pass that writes P's dropped copy and a
    /// one-byte mask. `separateMaskPass` adds the extra read and write of S (and of dS in the
    /// backward pass) an implementation makes when it applies the causal mask in its own kernel.
    public static func standard(_ problem: AttentionProblem, separateMaskPass: Bool = false) throws -> AttentionIOReport {
        try problem.validate()
        let nq = Double(problem.queryLength), nk = Double(problem.keyLength), d = Double(problem.headDim)
        let e = Double(problem.elementBytes)
        let scores = nq * nk
        let maskPass = separateMaskPass && problem.causal
        var forward = AttentionCost(), backward = AttentionCost()

        forward.matmulFLOPs = 4 * d * scores
        forward.otherFLOPs = scores * (Work.standardForwardPerPair + (problem.dropout ? Work.dropoutPerPair : 0))
        // S = QKᵀ: read Q, K; write S.
        forward.bytesRead += (nq + nk) * d * e
        forward.bytesWritten += scores * e
        if maskPass { forward.bytesRead += scores * e; forward.bytesWritten += scores * e }
        // P = softmax(S): read S, write P.
        forward.bytesRead += scores * e
        forward.bytesWritten += scores * e
        if problem.dropout {
            // Read P, write the dropped copy and the one-byte keep mask.
            forward.bytesRead += scores * e
            forward.bytesWritten += scores * (e + 1)
        }
        // O = PV: read P (dropped), V; write O.
        forward.bytesRead += scores * e + nk * d * e
        forward.bytesWritten += nq * d * e

        backward.matmulFLOPs = 8 * d * scores
        backward.otherFLOPs = scores * (Work.standardBackwardPerPair + (problem.dropout ? Work.dropoutPerPair : 0))
        // dV = Pᵀ·dO: read P, dO; write dV.
        backward.bytesRead += scores * e + nq * d * e
        backward.bytesWritten += nk * d * e
        // dP = dO·Vᵀ: read dO, V; write dP.
        backward.bytesRead += (nq + nk) * d * e
        backward.bytesWritten += scores * e
        if problem.dropout {
            // Read dP and the mask, write the undropped gradient.
            backward.bytesRead += scores * (e + 1)
            backward.bytesWritten += scores * e
        }
        // dS = P∘(dP − rowsum(P∘dP)): read P, dP; write dS.
        backward.bytesRead += 2 * scores * e
        backward.bytesWritten += scores * e
        if maskPass { backward.bytesRead += scores * e; backward.bytesWritten += scores * e }
        // dQ = dS·K and dK = dSᵀ·Q: read dS and K (then Q), write dQ (then dK).
        backward.bytesRead += 2 * (scores * e) + (nk + nq) * d * e
        backward.bytesWritten += (nq + nk) * d * e

        let instances = Double(problem.batch) * Double(problem.heads)
        return AttentionIOReport(implementation: "standard", forward: forward.scaled(by: instances),
                                 backward: backward.scaled(by: instances))
    }

    /// FlashAttention with the given tiles and loop order. Under a causal mask, tiles entirely
    /// above the diagonal are skipped and every other tile is computed whole, as kernels do.
    public static func flash(_ problem: AttentionProblem, tiling: FlashTiling) throws -> AttentionIOReport {
        try problem.validate()
        try tiling.validate()
        let nq = problem.queryLength, nk = problem.keyLength
        let d = Double(problem.headDim), e = Double(problem.elementBytes), st = Double(problem.statisticBytes)
        let br = tiling.queryTile, bc = tiling.keyTile
        let queryTiles = (nq + br - 1) / br, keyTiles = (nk + bc - 1) / bc
        try InvalidArgument.require(queryTiles <= 1 << 26, "queryTile", expected: "at least ⌈queryLength / 2^26⌉ (\((nq + (1 << 26) - 1) >> 26))",
                                    got: "\(br)")
        // Query tile i computes a prefix of the key tiles: those whose first column some row of
        // the tile sees (its last row sees the most). Everything below is a sum over these prefixes.
        var rowVisits = 0.0           // Σ over computed tiles of their rows
        var pairs = 0.0               // Σ over computed tiles of rows × columns
        var keyTileLoads = 0.0        // query-outer: K/V tile columns loaded, Σ over query tiles
        var queryRowsWithWork = 0.0   // rows of query tiles that compute at least one tile
        var columnsSeenByLast = 0.0   // columns of the key tiles any query tile computes
        for i in 0..<queryTiles {
            let rows = Double(min(br, nq - i * br))
            let lastRow = min(nq, (i + 1) * br) - 1
            let limit = lastRow + nk - nq
            let count = !problem.causal ? keyTiles : (limit < 0 ? 0 : min(keyTiles, limit / bc + 1))
            let columns = Double(min(nk, count * bc))
            rowVisits += rows * Double(count)
            pairs += rows * columns
            keyTileLoads += columns
            if count > 0 { queryRowsWithWork += rows }
            if i == queryTiles - 1 { columnsSeenByLast = columns }
        }
        let dropoutWork = problem.dropout ? Work.dropoutPerPair : 0
        var forward = AttentionCost(), backward = AttentionCost()

        switch tiling.schedule {
        case .queryOuter:
            // Q_i once (when the tile has work), K_j and V_j for every computed tile, O_i and LSE_i once.
            forward.bytesRead = queryRowsWithWork * d * e + 2 * keyTileLoads * d * e
            if tiling.packsKeysAndValuesFirst { forward.bytesRead += 2 * Double(nk) * d * e }
            forward.bytesWritten = Double(nq) * (d * e + st)
            // Per row and visited tile: new max, correction exp(m_old − m_new) (2), rescale ℓ and
            // the d outputs. Per row at the end: divide O by ℓ (d), LSE = m + log ℓ (2).
            forward.otherFLOPs = pairs * (Work.flashForwardPerPair + dropoutWork) + rowVisits * (d + 4)
                + Double(nq) * (d + 2)
        case .paper:
            // Algorithm 2: O = 0, ℓ = 0, m = −∞ initialised in HBM; K_j, V_j once; per computed
            // tile, read Q_i, O_i, ℓ_i, m_i and write O_i, ℓ_i, m_i.
            forward.bytesWritten = Double(nq) * (d * e + 2 * st) + rowVisits * (d * e + 2 * st)
            forward.bytesRead = 2 * columnsSeenByLast * d * e + rowVisits * (2 * d * e + 2 * st)
            // Per row and visit (Algorithm 2, lines 11–13): m_new (1); ℓ_new from two rescaled
            // sums (2 subtract, 2 exp, 2 multiply, 1 add); O_i updated per element with two
            // rescalings, an add and a divide (4d); the two factors combined with 1/ℓ_new (2).
            forward.otherFLOPs = pairs * (Work.flashForwardPerPair + dropoutWork) + rowVisits * (4 * d + 10)
        }
        forward.matmulFLOPs = 4 * d * pairs

        // Backward: K/V blocks outer in both schedules (Algorithm 4; FlashAttention-2 Algorithm 2).
        // K_j, V_j read once; dK_j, dV_j written once each (zeros when no tile is computed);
        // dQ_i read and written per computed tile.
        backward.bytesRead = 2 * columnsSeenByLast * d * e
        backward.bytesWritten = 2 * Double(nk) * d * e + rowVisits * d * e
        switch tiling.schedule {
        case .queryOuter:
            // D = rowsum(dO∘O): read dO and O, write D; dQ starts at zero in main memory.
            backward.bytesRead += 2 * Double(nq) * d * e
            backward.bytesWritten += Double(nq) * (st + d * e)
            // Per computed tile: read Q_i, dO_i, dQ_i, LSE_i, D_i.
            backward.bytesRead += rowVisits * (3 * d * e + 2 * st)
            backward.otherFLOPs = 2 * Double(nq) * d + pairs * (Work.flashBackwardPerPair + 2 * dropoutWork)
        case .paper:
            // dQ, dK, dV initialised to zero in HBM; per computed tile read Q_i, O_i, dO_i, dQ_i, ℓ_i, m_i.
            backward.bytesWritten += Double(nq + 2 * nk) * d * e
            backward.bytesRead += rowVisits * (4 * d * e + 2 * st)
            // Also divides by ℓ when recomputing P, and forms D_i = rowsum(dO_i∘O_i) per visit.
            backward.otherFLOPs = pairs * (Work.flashBackwardPerPair + 1 + 2 * dropoutWork) + rowVisits * 2 * d
        }
        // S recomputed, then dV, dP, dQ, dK: five products against the forward's two.
        backward.matmulFLOPs = 10 * d * pairs

        let instances = Double(problem.batch) * Double(problem.heads)
        return AttentionIOReport(implementation: "flash", forward: forward.scaled(by: instances),
                                 backward: backward.scaled(by: instances))
    }
}
