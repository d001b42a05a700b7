// Exact attention two ways — FlashAttention and the standard algorithm — on the same inputs,
// forward and backward.

import FlashAttention
import FlashCore

// snippet.hide
var state: UInt64 = 42
func random() -> Float {
    state = state &* 6364136223846793005 &+ 1442695040888963407
    return Float(state >> 40) / Float(1 << 24) * 2 - 1
}
// snippet.show

// snippet.inputs
// [batch, sequence, heads, headDim]: here 1 sequence of 256 tokens, 4 heads of width 64.
let shape = [1, 256, 4, 64]
let count = shape.reduce(1, *)
let q = try Tensor(shape: shape, values: (0..<count).map { _ in random() })
let k = try Tensor(shape: shape, values: (0..<count).map { _ in random() })
let v = try Tensor(shape: shape, values: (0..<count).map { _ in random() })
// snippet.end

// snippet.forward
let flash = try Attention.forward(query: q, key: k, value: v,
                                  descriptor: AttentionDescriptor(causal: true))
let standard = try Attention.forward(query: q, key: k, value: v,
                                     descriptor: AttentionDescriptor(causal: true, implementation: .standard))
let difference = zip(flash.output.floats(), standard.output.floats()).map { abs($0 - $1) }.max()!
print("largest difference flash vs standard:", difference)   // ~1e-7: the same exact attention
// snippet.end

// snippet.backward
// The backward takes the forward's output and log-sum-exp (one Float per query row and head),
// and recomputes P tile by tile instead of storing it.
let outputGradient = try Tensor(shape: shape, values: (0..<count).map { _ in random() })
let gradients = try Attention.backward(query: q, key: k, value: v,
                                       output: flash.output, logSumExp: flash.logSumExp,
                                       outputGradient: outputGradient,
                                       descriptor: AttentionDescriptor(causal: true))
print("dQ, dK, dV:", gradients.query.shape, gradients.key.shape, gradients.value.shape)
// snippet.end

// snippet.hide
precondition(difference < 1e-4, "flash and standard attention disagree by \(difference)")
// snippet.show
