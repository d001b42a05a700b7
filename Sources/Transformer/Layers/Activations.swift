import Foundation
import FlashCore

/// The MLP nonlinearities, forward and backward, elementwise over flat buffers.
public enum Activations {
    typealias Vector = VectorMath.Vector
    /// Elements per parallel work item.
    static let chunk = 4096

    /// Runs `body(start, count)` over `count` elements in chunks, in parallel.
    static func chunked(_ count: Int, threads: Int?, _ body: (Int, Int) -> Void) {
        let chunks = (count + chunk - 1) / chunk
        Parallel.forEach(chunks, threads: threads) { i in
            let start = i * chunk
            body(start, min(chunk, count - start))
        }
    }

    /// Loads up to 16 values (zero-padded) at `p`.
    static func load(_ p: UnsafePointer<Float>, _ n: Int) -> Vector {
        if n >= Vector.scalarCount { return UnsafeRawPointer(p).loadUnaligned(as: Vector.self) }
        var v = Vector()
        for j in 0..<n { v[j] = p[j] }
        return v
    }

    static func store(_ v: Vector, _ p: UnsafeMutablePointer<Float>, _ n: Int) {
        if n >= Vector.scalarCount { UnsafeMutableRawPointer(p).storeBytes(of: v, as: Vector.self); return }
        for j in 0..<n { p[j] = v[j] }
    }

    /// e^x, 16 lanes, for arguments the callers keep where results matter in [−87, 88]:
    /// VectorMath.exp's Cephes method with the clamp done by `pointwiseMin/Max` and a single
    /// 2ⁿ scale. (`SIMD.clamped`, which VectorMath.exp uses, is not specialised for
    /// SIMD16<Float> and cost ~10% of a training step in profiles.) Arguments below −87.3 give
    /// e^−87.3 ≈ 1e−38 instead of 0; above 88.3, e^88.3 ≈ 2e38 — both harmless in 1/(1 + e).
    static func exp(_ x: Vector) -> Vector {
        let c = pointwiseMin(pointwiseMax(x, Vector(repeating: -87.3)), Vector(repeating: 88.3))
        let magic: Float = 12_582_912  // 1.5·2²³: adding it rounds to an integer held in the low mantissa bits
        let biased = c * 1.442_695_040_888_963 + magic
        let n = biased - magic
        var r = c.addingProduct(n, Vector(repeating: -0.693_359_375))
        r = r.addingProduct(n, Vector(repeating: 2.121_944_4e-4))
        var p = Vector(repeating: 1.987_569_15e-4)
        p = p * r + 1.398_199_950_7e-3
        p = p * r + 8.333_451_907_3e-3
        p = p * r + 4.166_579_589_4e-2
        p = p * r + 1.666_666_545_9e-1
        p = p * r + 5.000_000_120_1e-1
        p = (p * r * r + r) + 1
        let exponent = unsafeBitCast(biased, to: SIMD16<Int32>.self) &- 0x4B40_0000
        return p * unsafeBitCast((exponent &+ 127) &<< 23, to: Vector.self)
    }

    /// σ(x) = 1/(1 + e^−x).
    static func sigmoid(_ x: Vector) -> Vector { 1 / (1 + exp(-x)) }

    /// Calls `body(offset, lanes)` for every 16-lane group of `count` elements from `start`.
    static func lanes(_ start: Int, _ count: Int, _ body: (Int, Int) -> Void) {
        var i = 0
        while i < count { body(start + i, min(Vector.scalarCount, count - i)); i += Vector.scalarCount }
    }

    // MARK: GELU (tanh form, GPT-2)

    /// output[i] = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
    public static func geluForward(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, count: Int, threads: Int? = nil) {
        let k: Float = 0.797_884_560_802_865_4
        chunked(count, threads: threads) { start, n in
            lanes(start, n) { o, l in
                // 0.5·(1 + tanh(u)) = σ(2u): one exponential.
                let x = load(input + o, l)
                let cube: Vector = x * x * x
                store(x * sigmoid(2 * k * (x + 0.044_715 * cube)), output + o, l)
            }
        }
    }

    /// inputGradient[i] = outputGradient[i]·gelu′(x); in place is allowed (inputGradient == outputGradient).
    /// With s = σ(2u) = 0.5·(1 + tanh(u)), u = √(2/π)·(x + 0.044715·x³):
    /// gelu′(x) = s + 2·x·s·(1 − s)·√(2/π)·(1 + 3·0.044715·x²).
    public static func geluBackward(input: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                                    inputGradient: UnsafeMutablePointer<Float>, count: Int, threads: Int? = nil) {
        let k: Float = 0.797_884_560_802_865_4
        chunked(count, threads: threads) { start, n in
            lanes(start, n) { o, l in
                let x = load(input + o, l)
                let cube: Vector = x * x * x
                let s = sigmoid(2 * k * (x + 0.044_715 * cube))
                let inner: Vector = k * (1 + 0.134_145 * x * x)  // d/dx of k·(x + 0.044715·x³)
                let derivative: Vector = s + 2 * x * s * (1 - s) * inner
                store(load(outputGradient + o, l) * derivative, inputGradient + o, l)
            }
        }
    }

    // MARK: ReLU

    /// output[i] = max(x, 0)
    public static func reluForward(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, count: Int, threads: Int? = nil) {
        chunked(count, threads: threads) { start, n in
            for i in start..<(start + n) { output[i] = max(input[i], 0) }
        }
    }

    /// inputGradient[i] = outputGradient[i] where x > 0, else 0 (in place allowed).
    public static func reluBackward(input: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                                    inputGradient: UnsafeMutablePointer<Float>, count: Int, threads: Int? = nil) {
        chunked(count, threads: threads) { start, n in
            for i in start..<(start + n) { inputGradient[i] = input[i] > 0 ? outputGradient[i] : 0 }
        }
    }

    // MARK: SwiGLU

    /// output[i] = silu(gate[i])·up[i], silu(g) = g·σ(g)
    public static func swigluForward(gate: UnsafePointer<Float>, up: UnsafePointer<Float>,
                                     output: UnsafeMutablePointer<Float>, count: Int, threads: Int? = nil) {
        chunked(count, threads: threads) { start, n in
            lanes(start, n) { o, l in
                let g = load(gate + o, l)
                store(g * sigmoid(g) * load(up + o, l), output + o, l)
            }
        }
    }

    /// gateGradient = dy·up·σ(g)·(1 + g·(1 − σ(g))), upGradient = dy·silu(g).
    /// `upGradient` may alias `outputGradient`.
    public static func swigluBackward(gate: UnsafePointer<Float>, up: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                                      gateGradient: UnsafeMutablePointer<Float>, upGradient: UnsafeMutablePointer<Float>,
                                      count: Int, threads: Int? = nil) {
        chunked(count, threads: threads) { start, n in
            lanes(start, n) { o, l in
                let g = load(gate + o, l), u = load(up + o, l), dy = load(outputGradient + o, l)
                let sigma = sigmoid(g)
                store(dy * u * sigma * (1 + g * (1 - sigma)), gateGradient + o, l)
                store(dy * g * sigma, upGradient + o, l)
            }
        }
    }
}
