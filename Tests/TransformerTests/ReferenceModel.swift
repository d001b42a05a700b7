import Foundation
import Transformer

/// A plain Float64 mirror of the transformer's forward pass, written independently of the
/// library's kernels (loops, no GEMM, no flash attention), used as the reference for finite
/// differences: central differences of a Float64 function with h = 1e-5 are accurate to
/// ~1e-9, far below the Float32 gradients' own rounding (~1e-6 relative), so any mismatch
/// beyond that is a bug in the Float32 backward pass.
struct ReferenceModel {
    let config: TransformerConfig
    let layout: ParameterLayout

    init(_ config: TransformerConfig) {
        self.config = config
        layout = ParameterLayout(config)
    }

    /// Mean cross-entropy of the model with parameters `p` (flat, `layout` order).
    func loss(_ p: [Double], tokens: [Int], targets: [Int], batch: Int, time: Int) -> Double {
        let logits = self.logits(p, tokens: tokens, batch: batch, time: time)
        let v = config.vocabularySize
        var total = 0.0
        for r in 0..<(batch * time) {
            let row = Array(logits[(r * v)..<((r + 1) * v)])
            let m = row.max()!
            let lse = m + Foundation.log(row.reduce(0) { $0 + Foundation.exp($1 - m) })
            total += lse - row[targets[r]]
        }
        return total / Double(batch * time)
    }

    func offset(_ name: String) -> Int? { layout.entries.first { $0.name == name }?.offset }

    /// Logits [batch·time, V].
    func logits(_ p: [Double], tokens: [Int], batch: Int, time: Int) -> [Double] {
        let c = config.width, rows = batch * time
        var x = [Double](repeating: 0, count: rows * c)
        for r in 0..<rows {
            for j in 0..<c {
                x[r * c + j] = p[layout.tokenEmbedding + tokens[r] * c + j]
                if let pos = layout.positionEmbedding { x[r * c + j] += p[pos + (r % time) * c + j] }
            }
        }
        for l in 0..<config.layers {
            let n = "layers.\(l)."
            if config.normPlacement == .pre {
                let a = attention(p, norm(p, x, n + "norm1"), layer: n, batch: batch, time: time)
                let r = zip(x, a).map(+)
                let m = mlp(p, norm(p, r, n + "norm2"), layer: n)
                x = zip(r, m).map(+)
            } else {
                let r = norm(p, zip(x, attention(p, x, layer: n, batch: batch, time: time)).map(+), n + "norm1")
                x = norm(p, zip(r, mlp(p, r, layer: n)).map(+), n + "norm2")
            }
        }
        if config.normPlacement == .pre { x = norm(p, x, "final_norm") }
        let v = config.vocabularySize
        var logits = [Double](repeating: 0, count: rows * v)
        for r in 0..<rows {
            for k in 0..<v {
                var s = 0.0
                for j in 0..<c {
                    s += x[r * c + j] * (config.tiedEmbeddings ? p[layout.tokenEmbedding + k * c + j] : p[layout.head! + j * v + k])
                }
                logits[r * v + k] = s
            }
        }
        return logits
    }

    func linear(_ p: [Double], _ x: [Double], _ name: String, inFeatures k: Int, outFeatures n: Int) -> [Double] {
        let w = offset(name + ".weight")!, b = offset(name + ".bias")
        let rows = x.count / k
        var y = [Double](repeating: 0, count: rows * n)
        for r in 0..<rows {
            for j in 0..<n {
                var s = b.map { p[$0 + j] } ?? 0
                for i in 0..<k { s += x[r * k + i] * p[w + i * n + j] }
                y[r * n + j] = s
            }
        }
        return y
    }

    func norm(_ p: [Double], _ x: [Double], _ name: String) -> [Double] {
        let c = config.width, eps = Double(config.normEpsilon)
        let w = offset(name + ".weight")!, b = offset(name + ".bias")
        var y = x
        for r in 0..<(x.count / c) {
            let row = x[(r * c)..<((r + 1) * c)]
            if config.norm == .layerNorm {
                let mean = row.reduce(0, +) / Double(c)
                let variance = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(c)
                for j in 0..<c {
                    y[r * c + j] = (x[r * c + j] - mean) / (variance + eps).squareRoot() * p[w + j] + (b.map { p[$0 + j] } ?? 0)
                }
            } else {
                let meanSquare = row.reduce(0) { $0 + $1 * $1 } / Double(c)
                for j in 0..<c { y[r * c + j] = x[r * c + j] / (meanSquare + eps).squareRoot() * p[w + j] }
            }
        }
        return y
    }

    func attention(_ p: [Double], _ x: [Double], layer n: String, batch: Int, time: Int) -> [Double] {
        let h = config.heads, hkv = config.kvHeads, d = config.headDim, c = config.width
        let width = (h + 2 * hkv) * d
        var qkv = linear(p, x, n + "attention.qkv", inFeatures: c, outFeatures: width)
        if config.positionEncoding == .rotary {
            for r in 0..<(batch * time) {
                let pos = Double(r % time) / Double(config.ropeScaling)
                for head in 0..<(h + hkv) {
                    let base = r * width + head * d
                    for i in 0..<(d / 2) {
                        let angle = pos * Foundation.pow(Double(config.ropeTheta), -2 * Double(i) / Double(d))
                        let a = qkv[base + i], b = qkv[base + i + d / 2]
                        qkv[base + i] = a * Foundation.cos(angle) - b * Foundation.sin(angle)
                        qkv[base + i + d / 2] = b * Foundation.cos(angle) + a * Foundation.sin(angle)
                    }
                }
            }
        }
        let slopes = config.positionEncoding == .alibi ? ALiBi.slopes(heads: h).map(Double.init) : nil
        var out = [Double](repeating: 0, count: batch * time * c)
        for b in 0..<batch {
            for head in 0..<h {
                let kvHead = head / (h / hkv)
                for i in 0..<time {
                    var scores = [Double](repeating: 0, count: i + 1)
                    for j in 0...i {
                        var s = 0.0
                        for e in 0..<d { s += qkv[(b * time + i) * width + head * d + e] * qkv[(b * time + j) * width + (h + kvHead) * d + e] }
                        scores[j] = s / Double(d).squareRoot() - (slopes.map { $0[head] * Double(i - j) } ?? 0)
                    }
                    let m = scores.max()!
                    let e = scores.map { Foundation.exp($0 - m) }
                    let total = e.reduce(0, +)
                    for dim in 0..<d {
                        var o = 0.0
                        for j in 0...i { o += e[j] / total * qkv[(b * time + j) * width + (h + hkv + kvHead) * d + dim] }
                        out[(b * time + i) * c + head * d + dim] = o
                    }
                }
            }
        }
        return linear(p, out, n + "attention.proj", inFeatures: c, outFeatures: c)
    }

    func mlp(_ p: [Double], _ x: [Double], layer n: String) -> [Double] {
        let c = config.width, f = config.mlpWidth
        let up = linear(p, x, n + "mlp.up", inFeatures: c, outFeatures: f)
        let activation: [Double]
        switch config.activation {
        case .relu: activation = up.map { max($0, 0) }
        case .gelu: activation = up.map { 0.5 * $0 * (1 + Foundation.tanh((2 / Double.pi).squareRoot() * ($0 + 0.044715 * $0 * $0 * $0))) }
        case .swiglu:
            let gate = linear(p, x, n + "mlp.gate", inFeatures: c, outFeatures: f)
            activation = zip(gate, up).map { g, u in g / (1 + Foundation.exp(-g)) * u }
        }
        return linear(p, activation, n + "mlp.down", inFeatures: f, outFeatures: c)
    }
}
