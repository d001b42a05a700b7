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

    /// σ(x) = 1/(1 + e^−x). Inlined: as a call, its 16-lane argument and result travel through
    /// memory, and the call was 3% of a tiny-Shakespeare training step (`perf record`).
    @inline(__always)
    static func sigmoid(_ x: Vector) -> Vector { 1 / (1 + VectorMath.exp(-x)) }

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
                let x = VectorMath.load(input + o, count: l)
                let cube: Vector = x * x * x
                VectorMath.store(x * sigmoid(2 * k * (x + 0.044_715 * cube)), to: output + o, count: l)
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
                let x = VectorMath.load(input + o, count: l)
                let cube: Vector = x * x * x
                let s = sigmoid(2 * k * (x + 0.044_715 * cube))
                let inner: Vector = k * (1 + 0.134_145 * x * x)  // d/dx of k·(x + 0.044715·x³)
                let derivative: Vector = s + 2 * x * s * (1 - s) * inner
                VectorMath.store(VectorMath.load(outputGradient + o, count: l) * derivative, to: inputGradient + o, count: l)
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
                let g = VectorMath.load(gate + o, count: l)
                VectorMath.store(g * sigmoid(g) * VectorMath.load(up + o, count: l), to: output + o, count: l)
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
                let g = VectorMath.load(gate + o, count: l), u = VectorMath.load(up + o, count: l), dy = VectorMath.load(outputGradient + o, count: l)
                let sigma = sigmoid(g)
                VectorMath.store(dy * u * sigma * (1 + g * (1 - sigma)), to: gateGradient + o, count: l)
                VectorMath.store(dy * g * sigma, to: upGradient + o, count: l)
            }
        }
    }
}
