import Estimates
import Foundation

/// Main-memory traffic and matrix-product FLOPs one attention run made, forward and backward.
struct MeasuredTraffic {
    var forwardRead = 0.0, forwardWritten = 0.0, backwardRead = 0.0, backwardWritten = 0.0
    var forwardMatmulFLOPs = 0.0, backwardMatmulFLOPs = 0.0
}

/// Something that runs FlashAttention on a problem with given tiles and reports the traffic it
/// made. `TiledAttentionSimulation` does so today; when the FlashAttention kernels get traffic
/// counters, a second conformer wraps `Attention.forward/backward` and the same test checks them.
protocol AttentionTrafficSource {
    func run(_ problem: AttentionProblem, _ tiling: FlashTiling) -> MeasuredTraffic
}

/// FlashAttention executed in Float64 with every load from and store to "main memory" going
/// through counters: the FlashAttention-1 paper's Algorithms 2 and 4 (`.paper`) and
/// FlashAttention-2's loop order (`.queryOuter`), causal tiles skipped whole. It computes real
/// outputs and gradients so a test can check it is attention and not just a loop that counts.
struct TiledAttentionSimulation: AttentionTrafficSource {
    var q: [[Double]], k: [[Double]], v: [[Double]], dO: [[Double]]
    var output: [[Double]] = [], dQ: [[Double]] = [], dK: [[Double]] = [], dV: [[Double]] = []

    init(queries: Int, keys: Int, headDim: Int, seed: UInt64) {
        var rng = SplitMix(seed: seed)
        func matrix(_ rows: Int) -> [[Double]] { (0..<rows).map { _ in (0..<headDim).map { _ in rng.double() * 2 - 1 } } }
        q = matrix(queries); k = matrix(keys); v = matrix(keys); dO = matrix(queries)
    }

    func run(_ problem: AttentionProblem, _ tiling: FlashTiling) -> MeasuredTraffic {
        var copy = self
        return copy.execute(problem, tiling)
    }

    mutating func execute(_ problem: AttentionProblem, _ tiling: FlashTiling) -> MeasuredTraffic {
        let nq = problem.queryLength, nk = problem.keyLength, d = problem.headDim
        let e = Double(problem.elementBytes), st = Double(problem.statisticBytes)
        let scale = 1 / Double(d).squareRoot()
        let br = tiling.queryTile, bc = tiling.keyTile
        let rowTiles = stride(from: 0, to: nq, by: br).map { $0..<min($0 + br, nq) }
        let columnTiles = stride(from: 0, to: nk, by: bc).map { $0..<min($0 + bc, nk) }
        func allowed(_ i: Int, _ j: Int) -> Bool { !problem.causal || j <= i + nk - nq }
        func visible(_ rows: Range<Int>, _ columns: Range<Int>) -> Bool {
            rows.contains { i in columns.contains { j in allowed(i, j) } }
        }
        var traffic = MeasuredTraffic()
        var read = 0.0, written = 0.0, fmas = 0.0
        func load(_ rows: Int, elements: Bool) { read += Double(rows) * (elements ? Double(d) * e : st) }
        func store(_ rows: Int, elements: Bool) { written += Double(rows) * (elements ? Double(d) * e : st) }
        func dot(_ a: [Double], _ b: [Double]) -> Double { fmas += Double(d); return zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }

        // Forward.
        var o = [[Double]](repeating: [Double](repeating: 0, count: d), count: nq)
        var rowMax = [Double](repeating: -.infinity, count: nq), rowSum = [Double](repeating: 0, count: nq)
        var lse = [Double](repeating: -.infinity, count: nq)
        switch tiling.schedule {
        case .queryOuter:
            for rows in rowTiles {
                let tiles = columnTiles.filter { visible(rows, $0) }
                if !tiles.isEmpty { load(rows.count, elements: true) }                      // Q_i
                for columns in tiles {
                    load(2 * columns.count, elements: true)                                  // K_j, V_j
                    for i in rows {
                        let s = columns.map { j in (dot(q[i], k[j]) * scale, allowed(i, j)) }
                        let tileMax = s.filter(\.1).map(\.0).max() ?? -.infinity
                        let newMax = max(rowMax[i], tileMax)
                        if newMax == -.infinity { fmas += Double(columns.count * d); continue }
                        let correction = exp(rowMax[i] - newMax)
                        rowSum[i] *= correction
                        for x in 0..<d { o[i][x] *= correction }
                        for (offset, (score, keep)) in s.enumerated() {
                            let p = keep ? exp(score - newMax) : 0
                            rowSum[i] += p
                            for x in 0..<d { o[i][x] += p * v[columns.lowerBound + offset][x] }
                        }
                        fmas += Double(columns.count * d)
                        rowMax[i] = newMax
                    }
                }
                for i in rows where rowSum[i] > 0 {
                    for x in 0..<d { o[i][x] /= rowSum[i] }
                    lse[i] = rowMax[i] + log(rowSum[i])
                }
                store(rows.count, elements: true); store(rows.count, elements: false)       // O_i, LSE_i
            }
        case .paper:
            store(nq, elements: true); store(2 * nq, elements: false)                        // O, ℓ, m = 0, 0, −∞
            for columns in columnTiles {
                let tiles = rowTiles.filter { visible($0, columns) }
                if !tiles.isEmpty { load(2 * columns.count, elements: true) }               // K_j, V_j
                for rows in tiles {
                    load(2 * rows.count, elements: true); load(2 * rows.count, elements: false)   // Q_i, O_i, ℓ_i, m_i
                    for i in rows {
                        let s = columns.map { j in (dot(q[i], k[j]) * scale, allowed(i, j)) }
                        let tileMax = s.filter(\.1).map(\.0).max() ?? -.infinity
                        fmas += Double(columns.count * d)
                        guard tileMax > -.infinity else { continue }
                        let p = s.map { $0.1 ? exp($0.0 - tileMax) : 0 }
                        let tileSum = p.reduce(0, +)
                        let newMax = max(rowMax[i], tileMax)
                        let oldWeight = rowSum[i] * exp(rowMax[i] - newMax), tileWeight = exp(tileMax - newMax)
                        let newSum = oldWeight + tileSum * tileWeight
                        for x in 0..<d {
                            var pv = 0.0
                            for (offset, weight) in p.enumerated() { pv += weight * v[columns.lowerBound + offset][x] }
                            o[i][x] = (oldWeight * o[i][x] + tileWeight * pv) / newSum
                        }
                        rowMax[i] = newMax
                        rowSum[i] = newSum
                    }
                    store(rows.count, elements: true); store(2 * rows.count, elements: false)     // O_i, ℓ_i, m_i
                }
            }
            for i in 0..<nq where rowSum[i] > 0 { lse[i] = rowMax[i] + log(rowSum[i]) }
        }
        output = o
        (traffic.forwardRead, traffic.forwardWritten, traffic.forwardMatmulFLOPs) = (read, written, 2 * fmas)
        (read, written, fmas) = (0, 0, 0)

        // Backward: K/V blocks outer.
        var gq = [[Double]](repeating: [Double](repeating: 0, count: d), count: nq)
        var gk = [[Double]](repeating: [Double](repeating: 0, count: d), count: nk), gv = gk
        var rowDot = [Double](repeating: 0, count: nq)
        switch tiling.schedule {
        case .queryOuter:
            load(2 * nq, elements: true)                                                     // O, dO
            for i in 0..<nq { rowDot[i] = zip(dO[i], o[i]).reduce(0) { $0 + $1.0 * $1.1 } }
            store(nq, elements: false); store(nq, elements: true)                            // D; dQ = 0
        case .paper:
            store(nq + 2 * nk, elements: true)                                               // dQ, dK, dV = 0
        }
        for columns in columnTiles {
            let tiles = rowTiles.filter { visible($0, columns) }
            if !tiles.isEmpty { load(2 * columns.count, elements: true) }                   // K_j, V_j
            for rows in tiles {
                switch tiling.schedule {
                case .queryOuter:
                    load(3 * rows.count, elements: true); load(2 * rows.count, elements: false)   // Q, dO, dQ; LSE, D
                case .paper:
                    load(4 * rows.count, elements: true); load(2 * rows.count, elements: false)   // Q, O, dO, dQ; ℓ, m
                    for i in rows { rowDot[i] = zip(dO[i], o[i]).reduce(0) { $0 + $1.0 * $1.1 } }
                }
                for i in rows {
                    for j in columns {
                        let s = dot(q[i], k[j]) * scale
                        let p = allowed(i, j) && lse[i] > -.infinity ? exp(s - lse[i]) : 0
                        for x in 0..<d { gv[j][x] += p * dO[i][x] }
                        let dp = dot(dO[i], v[j])
                        let ds = p * (dp - rowDot[i]) * scale
                        for x in 0..<d { gq[i][x] += ds * k[j][x]; gk[j][x] += ds * q[i][x] }
                        fmas += Double(3 * d)                                                // dV, dQ, dK
                    }
                }
                store(rows.count, elements: true)                                           // dQ_i
            }
            store(2 * columns.count, elements: true)                                         // dK_j, dV_j
        }
        (dQ, dK, dV) = (gq, gk, gv)
        (traffic.backwardRead, traffic.backwardWritten, traffic.backwardMatmulFLOPs) = (read, written, 2 * fmas)
        return traffic
    }

    /// softmax(scale·QKᵀ + mask)·V and its gradients, row by row, for comparison.
    func reference(causal: Bool) -> (o: [[Double]], dQ: [[Double]], dK: [[Double]], dV: [[Double]]) {
        let nq = q.count, nk = k.count, d = q[0].count, scale = 1 / Double(d).squareRoot()
        var o = [[Double]](repeating: [Double](repeating: 0, count: d), count: nq)
        var gq = o, gk = [[Double]](repeating: [Double](repeating: 0, count: d), count: nk), gv = gk
        for i in 0..<nq {
            let keys = (0..<nk).filter { !causal || $0 <= i + nk - nq }
            guard !keys.isEmpty else { continue }
            let s = keys.map { j in zip(q[i], k[j]).reduce(0) { $0 + $1.0 * $1.1 } * scale }
            let m = s.max()!
            let w = s.map { exp($0 - m) }, total = w.reduce(0, +)
            let p = w.map { $0 / total }
            for (n, j) in keys.enumerated() { for x in 0..<d { o[i][x] += p[n] * v[j][x] } }
            let dp = keys.map { j in zip(dO[i], v[j]).reduce(0) { $0 + $1.0 * $1.1 } }
            let rowDot = zip(p, dp).reduce(0) { $0 + $1.0 * $1.1 }
            for (n, j) in keys.enumerated() {
                let ds = p[n] * (dp[n] - rowDot) * scale
                for x in 0..<d {
                    gv[j][x] += p[n] * dO[i][x]
                    gq[i][x] += ds * k[j][x]
                    gk[j][x] += ds * q[i][x]
                }
            }
        }
        return (o, gq, gk, gv)
    }
}
