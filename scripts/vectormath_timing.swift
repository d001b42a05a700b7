// Timing harness for FlashCore's VectorMath (used for the "Vector math" figures in
// BENCHMARKS.md). Compile it together with a copy of VectorMath.swift, the same flags as the
// FlashCore target, and run; compare two versions of the file by building it twice:
//
//   swiftc -Ounchecked -wmo -Xcc -march=native -module-name VM \
//       scripts/vectormath_timing.swift Sources/FlashCore/VectorMath.swift -o /tmp/vectormath && /tmp/vectormath
//
// Each line: best of 30 runs after a warm-up, in ms and ns per element, over 2^20 floats in
// [−80, 80] (shuffled). The elementwise rows include a 4 MiB copy that restores the input
// (the "copy only" row).
import Foundation

func time(_ name: String, elements: Int, reps: Int = 30, _ body: () -> Void) {
    body()
    var best = Double.infinity
    for _ in 0..<reps {
        let start = DispatchTime.now().uptimeNanoseconds
        body()
        best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start))
    }
    print(name.padding(toLength: 20, withPad: " ", startingAt: 0)
          + String(format: "%8.3f ms  %6.3f ns/element", best / 1e6, best / Double(elements)))
}

@main
enum VectorMathTiming {
    static func main() {
        let n = 1 << 20
        var source = (0..<n).map { Float(-80 + 160 * Double(($0 &* 2_654_435_761) % n) / Double(n)) }
        var buffer = source
        var sink: Float = 0
        buffer.withUnsafeMutableBufferPointer { b in
            source.withUnsafeMutableBufferPointer { s in
                let p = b.baseAddress!, q = s.baseAddress!
                time("exp 1M", elements: n) { p.update(from: q, count: n); VectorMath.exp(p, count: n) }
                time("tanh 1M", elements: n) { p.update(from: q, count: n); VectorMath.tanh(p, count: n) }
                time("geluTanh 1M", elements: n) { p.update(from: q, count: n); VectorMath.geluTanh(p, count: n) }
                time("silu 1M", elements: n) { p.update(from: q, count: n); VectorMath.silu(p, count: n) }
                time("copy only 1M", elements: n) { p.update(from: q, count: n); sink += p[5] }
                time("max 1M", elements: n) { sink += VectorMath.max(q, count: n) }
                time("max rows of 64", elements: n) {
                    for r in 0..<(n / 64) { sink += VectorMath.max(q + r * 64, count: 64) }
                }
                time("sum 1M", elements: n) { sink += VectorMath.sum(q, count: n) }
                time("dot rows of 64", elements: n) {
                    for r in 0..<(n / 64 - 1) { sink += VectorMath.dot(q + r * 64, q + r * 64 + 64, count: 64) }
                }
                time("softmax rows 1000", elements: n) {
                    p.update(from: q, count: n)
                    for r in 0..<(n / 1000) { sink += VectorMath.softmax(p + r * 1000, count: 1000) }
                }
                time("softmax rows of 64", elements: n) {
                    p.update(from: q, count: n)
                    for r in 0..<(n / 64) { sink += VectorMath.softmax(p + r * 64, count: 64) }
                }
            }
        }
        if sink == 1 { print("") }   // keeps the reductions from being optimised away
    }
}
