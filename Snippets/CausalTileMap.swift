// Which tiles of the score matrix the flash kernel computes under a causal mask, from the
// kernel's own tile table and mask tests. Prints JSON; scripts/plot_tutorial_figures.py draws it.

import FlashAttention
import FlashCore

// snippet.tilemap
let (n, d) = (1024, 64)
let q = try Tensor(zeros: [1, n, 1, d])
let tiles = AttentionTiles.forHeadDimension(d)               // Br × Bc = 128 × 128 for d = 64
let map = try Attention.tileMap(query: q, key: q, value: q,
                                descriptor: AttentionDescriptor(causal: true))
let computed = map.joined().filter { $0 != .skipped }.count
print("causal: \(computed) of \(map.joined().count) tiles computed")   // 36 of 64
// snippet.end

// snippet.hide
let window = try Attention.tileMap(query: q, key: q, value: q,
                                   descriptor: AttentionDescriptor(causal: true, windowLeft: 255))
func rows(_ map: [[TileCoverage]]) -> String {
    "[" + map.map { "[" + $0.map { "\"\($0.rawValue)\"" }.joined(separator: ",") + "]" }.joined(separator: ",") + "]"
}
print("""
    {"n": \(n), "head_dim": \(d), "query_rows": \(tiles.queryRows), "key_columns": \(tiles.keyColumns), \
    "causal": \(rows(map)), "causal_window_256": \(rows(window))}
    """)
// snippet.show
