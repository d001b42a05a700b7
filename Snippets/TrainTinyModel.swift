// Train a tiny character-level GPT on a few sentences for a few steps, then sample from it.

import ModelFormats
import Transformer

// snippet.setup
let text = String(repeating: "the cat sat on the mat. the dog sat on the log. ", count: 40)
let tokenizer = CharTokenizer(corpus: text)
let config = TransformerConfig(layers: 2, heads: 2, width: 32, context: 32,
                               vocabularySize: tokenizer.vocabularySize)
let model = try TransformerModel(config: config, seed: 0)
// snippet.end

// snippet.train
let data = try TokenDataset(tokens: tokenizer.encode(text), validationFraction: 0.1, context: config.context)
let trainer = try Trainer(model: model, data: data,
                          options: TrainingOptions(steps: 30, batch: 4, learningRate: 3e-3, warmup: 5))
var first: Float = 0, last: Float = 0
for step in 0..<30 {
    let result = try trainer.trainStep()   // forward, backward, clip, AdamW
    if step == 0 { first = result.loss }
    last = result.loss
}
print("loss \(first) → \(last)")
// snippet.end

// snippet.generate
let generator = Generator(model: model)   // KV cache on
let tokens = try generator.generate(prompt: tokenizer.encode("the "), maxTokens: 20,
                                    choose: Generator.argmax)
print(tokenizer.decode(tokens))
// snippet.end

// snippet.hide
precondition(last < first, "training did not lower the loss (\(first) → \(last))")
// snippet.show
