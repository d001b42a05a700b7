// Parameters, training FLOPs and the attention IO of a GPT-2-small-sized configuration, from
// the formulas in Estimates.

import Estimates
import Transformer

// snippet.parameters
let gpt2 = TransformerConfig(layers: 12, heads: 12, width: 768, context: 1024, vocabularySize: 50257)
let parameters = try ParameterCount(gpt2)
print("GPT-2 small:", parameters.total, "parameters")   // 124,439,808 with tied embeddings
// snippet.end

// snippet.io
let attention = Estimates.AttentionProblem(batch: 1, heads: 12, queryLength: 1024, headDim: 64, elementBytes: 2)
let standard = try AttentionIO.standard(attention)
let flash = try AttentionIO.flash(attention, tiling: .paper(onChipBytes: 192 * 1024, headDim: 64, elementBytes: 2))
print("standard moves", standard.total.bytes / flash.total.bytes, "× the bytes flash does")
// snippet.end
