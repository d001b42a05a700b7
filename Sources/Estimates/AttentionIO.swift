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

        let instances = Double(problem.batch * problem.heads)
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
        func rows(_ i: Int) -> Double { Double(min(br, nq - i * br)) }
        func columns(_ j: Int) -> Double { Double(min(bc, nk - j * bc)) }
        // A tile is computed when its most permissive entry (last row, first column) is visible.
        func visible(_ i: Int, _ j: Int) -> Bool {
            !problem.causal || j * bc <= min(nq, (i + 1) * br) - 1 + nk - nq
        }
        let dropoutWork = problem.dropout ? Work.dropoutPerPair : 0
        var forward = AttentionCost(), backward = AttentionCost()
        var pairs = 0.0, rowVisits = 0.0

        switch tiling.schedule {
        case .queryOuter:
            for i in 0..<queryTiles {
                var anyVisible = false
                for j in 0..<keyTiles where visible(i, j) {
                    anyVisible = true
                    forward.bytesRead += 2 * columns(j) * d * e          // K_j, V_j
                    pairs += rows(i) * columns(j)
                    rowVisits += rows(i)
                }
                if anyVisible { forward.bytesRead += rows(i) * d * e }  // Q_i, once
                forward.bytesWritten += rows(i) * (d * e + st)         // O_i, LSE_i
            }
            // Per row and visited tile: new max, correction exp(m_old − m_new) (2), rescale ℓ and
            // the d outputs. Per row at the end: divide O by ℓ (d), LSE = m + log ℓ (2).
            forward.otherFLOPs = pairs * (Work.flashForwardPerPair + dropoutWork) + rowVisits * (d + 4)
                + Double(nq) * (d + 2)
        case .paper:
            // Algorithm 2 initialises O = 0, ℓ = 0, m = −∞ in HBM.
            forward.bytesWritten += Double(nq) * (d * e + 2 * st)
            for j in 0..<keyTiles {
                var anyVisible = false
                for i in 0..<queryTiles where visible(i, j) {
                    anyVisible = true
                    // Read Q_i, O_i, ℓ_i, m_i; write O_i, ℓ_i, m_i.
                    forward.bytesRead += rows(i) * (2 * d * e + 2 * st)
                    forward.bytesWritten += rows(i) * (d * e + 2 * st)
                    pairs += rows(i) * columns(j)
                    rowVisits += rows(i)
                }
                if anyVisible { forward.bytesRead += 2 * columns(j) * d * e }  // K_j, V_j
            }
            // Per row and visit (Algorithm 2, lines 11–13): m_new (1); ℓ_new from two rescaled
            // sums (2 subtract, 2 exp, 2 multiply, 1 add); O_i updated per element with two
            // rescalings, an add and a divide (4d); the two factors combined with 1/ℓ_new (2).
            forward.otherFLOPs = pairs * (Work.flashForwardPerPair + dropoutWork) + rowVisits * (4 * d + 10)
        }
        forward.matmulFLOPs = 4 * d * pairs

        // Backward: K/V blocks outer in both schedules (Algorithm 4; FlashAttention-2 Algorithm 2).
        var backwardRowVisits = 0.0
        switch tiling.schedule {
        case .queryOuter:
            // D = rowsum(dO∘O): read dO and O, write D. dQ starts at zero in main memory.
            backward.bytesRead += 2 * Double(nq) * d * e
            backward.bytesWritten += Double(nq) * (st + d * e)
            backward.otherFLOPs += 2 * Double(nq) * d
        case .paper:
            // dQ, dK, dV initialised to zero in HBM.
            backward.bytesWritten += Double(nq + nk) * d * e + Double(nk) * d * e
        }
        for j in 0..<keyTiles {
            var anyVisible = false
            for i in 0..<queryTiles where visible(i, j) {
                anyVisible = true
                backwardRowVisits += rows(i)
                switch tiling.schedule {
                case .queryOuter:
                    // Read Q_i, dO_i, dQ_i, LSE_i, D_i; write dQ_i.
                    backward.bytesRead += rows(i) * (3 * d * e + 2 * st)
                case .paper:
                    // Read Q_i, O_i, dO_i, dQ_i, ℓ_i, m_i; write dQ_i.
                    backward.bytesRead += rows(i) * (4 * d * e + 2 * st)
                }
                backward.bytesWritten += rows(i) * d * e
            }
            if anyVisible { backward.bytesRead += 2 * columns(j) * d * e }  // K_j, V_j
            backward.bytesWritten += 2 * columns(j) * d * e                   // dK_j, dV_j
        }
        // S recomputed, then dV, dP, dQ, dK: five products against the forward's two.
        backward.matmulFLOPs = 10 * d * pairs
        switch tiling.schedule {
        case .queryOuter:
            backward.otherFLOPs += pairs * (Work.flashBackwardPerPair + 2 * dropoutWork)
        case .paper:
            // Also divides by ℓ when recomputing P, and forms D_i = rowsum(dO_i∘O_i) per visit.
            backward.otherFLOPs += pairs * (Work.flashBackwardPerPair + 1 + 2 * dropoutWork) + backwardRowVisits * 2 * d
        }

        let instances = Double(problem.batch * problem.heads)
        return AttentionIOReport(implementation: "flash", forward: forward.scaled(by: instances),
                                 backward: backward.scaled(by: instances))
    }
}
