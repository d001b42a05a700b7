// The bytes the flash and standard kernels count in their own tile loops, next to the IO
// model of the FlashAttention paper evaluated with the kernel's tile sizes. Prints JSON;
// scripts/plot_tutorial_figures.py draws it.

import Estimates
import FlashAttention
import FlashCore

// snippet.hide
var lines: [String] = []
// snippet.show
for n in [256, 512, 1024, 2048] {
    // snippet.count
    let d = 64
    let x = try Tensor(zeros: [1, n, 1, d])
    let (_, counted) = try Attention.forwardCountingTraffic(
        query: x, key: x, value: x, descriptor: AttentionDescriptor(implementation: .flash))
    let (_, countedStandard) = try Attention.forwardCountingTraffic(
        query: x, key: x, value: x, descriptor: AttentionDescriptor(implementation: .standard))

    let problem = Estimates.AttentionProblem(batch: 1, heads: 1, queryLength: n, headDim: d, elementBytes: 4)
    let model = try AttentionIO.flash(problem, tiling: .cpuKernel(headDim: d))  // the kernel's Br, Bc
    let modelStandard = try AttentionIO.standard(problem)
    print("N = \(n): flash counted \(counted.totalBytes) B, model \(Int(model.forward.bytes)) B")
    // snippet.end
    // snippet.hide
    lines.append("""
        {"n": \(n), "head_dim": \(d), "flash_counted": \(counted.totalBytes), "flash_model": \(model.forward.bytes), \
        "standard_counted": \(countedStandard.totalBytes), "standard_model": \(modelStandard.forward.bytes)}
        """)
    // snippet.show
}
// snippet.hide
print("[" + lines.joined(separator: ",\n") + "]")
// snippet.show
