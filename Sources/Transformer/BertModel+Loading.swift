import Foundation
import FlashCore
import ModelFormats

extension BertModel {
    /// Loads `config.json` and `model.safetensors` from a Hugging Face BERT directory.
    public convenience init(directory: String) throws {
        let configuration = try BertConfiguration(contentsOf: (directory as NSString).appendingPathComponent("config.json"))
        let weightsPath = (directory as NSString).appendingPathComponent("model.safetensors")
        guard FileManager.default.fileExists(atPath: weightsPath) else { throw BertModelError.missingFile(weightsPath) }
        // Only the Float tensors the encoder uses: checkpoints also carry an Int64
        // `position_ids` buffer and the (unused) pooler, which need not be read.
        let tensors = try Safetensors.read(path: weightsPath, including: { !$0.hasSuffix("position_ids") && !$0.contains("pooler.") }).tensors
        try self.init(configuration: configuration, tensors: tensors)
    }

    /// Builds the model from named tensors (Hugging Face names, with or without the `bert.`
    /// prefix of `BertForMaskedLM`-style checkpoints). Every tensor is checked for presence and
    /// shape; F16/BF16 weights are widened to Float32.
    public convenience init(configuration c: BertConfiguration, tensors: [String: Tensor]) throws {
        let prefix = tensors["bert.embeddings.word_embeddings.weight"] != nil ? "bert." : ""
        func tensor(_ name: String, _ shape: [Int]) throws -> Tensor {
            guard let t = tensors[prefix + name] else { throw BertModelError.missingTensor(prefix + name) }
            guard t.shape == shape else { throw BertModelError.wrongShape(tensor: prefix + name, expected: shape, got: t.shape) }
            let weights = t.elementType == .float32 && t.isContiguous ? t : t.contiguous(as: .float32)
            // A NaN or Inf weight would turn every embedding into NaN without a word.
            guard Self.allFinite(weights.floatPointer, count: weights.elementCount) else { throw BertModelError.nonFiniteWeight(tensor: prefix + name) }
            return weights
        }
        func matrix(_ name: String, _ shape: [Int]) throws -> Tensor { try Self.transposed(try tensor(name, shape)) }
        func norm(_ name: String) throws -> BertLayerNormWeights {
            BertLayerNormWeights(gamma: try tensor(name + ".weight", [c.hiddenSize]), beta: try tensor(name + ".bias", [c.hiddenSize]))
        }
        let (h, i) = (c.hiddenSize, c.intermediateSize)
        var layers: [BertBlockWeights] = []
        for l in 0..<c.layerCount {
            let p = "encoder.layer.\(l)."
            let parts = try ["query", "key", "value"].map { (try tensor(p + "attention.self.\($0).weight", [h, h]),
                                                             try tensor(p + "attention.self.\($0).bias", [h])) }
            layers.append(BertBlockWeights(
                qkvWeight: try Self.transposed(try Self.concatenateRows(parts.map(\.0))), qkvBias: try Self.concatenateRows(parts.map(\.1)),
                attentionOutputWeight: try matrix(p + "attention.output.dense.weight", [h, h]),
                attentionOutputBias: try tensor(p + "attention.output.dense.bias", [h]),
                attentionNorm: try norm(p + "attention.output.LayerNorm"),
                intermediateWeight: try matrix(p + "intermediate.dense.weight", [i, h]),
                intermediateBias: try tensor(p + "intermediate.dense.bias", [i]),
                outputWeight: try matrix(p + "output.dense.weight", [h, i]),
                outputBias: try tensor(p + "output.dense.bias", [h]),
                outputNorm: try norm(p + "output.LayerNorm")))
        }
        self.init(configuration: c,
                  wordEmbeddings: try tensor("embeddings.word_embeddings.weight", [c.vocabularySize, h]),
                  positionEmbeddings: try tensor("embeddings.position_embeddings.weight", [c.maxPositions, h]),
                  tokenTypeEmbeddings: try tensor("embeddings.token_type_embeddings.weight", [c.tokenTypeCount, h]),
                  embeddingNorm: try norm("embeddings.LayerNorm"), layers: layers)
    }

    /// Whether all `count` values are finite (x − x is 0 for finite x, NaN for NaN and ±Inf).
    static func allFinite(_ values: UnsafePointer<Float>, count: Int) -> Bool {
        var accumulator = SIMD16<Float>()
        var i = 0
        while i + 16 <= count {
            let v = UnsafeRawPointer(values + i).loadUnaligned(as: SIMD16<Float>.self)
            accumulator += v - v
            i += 16
        }
        var tail: Float = 0
        while i < count { tail += values[i] - values[i]; i += 1 }
        return (accumulator.sum() + tail) == 0
    }

    /// A contiguous copy of a contiguous Float32 matrix, transposed.
    static func transposed(_ matrix: Tensor) throws -> Tensor {
        let (rows, columns) = (matrix.shape[0], matrix.shape[1])
        let result = try Tensor(zeros: [columns, rows])
        let (source, destination) = (matrix.floatPointer, result.floatPointer)
        for r in 0..<rows { for c in 0..<columns { destination[c * rows + r] = source[r * columns + c] } }
        return result
    }

    /// Stacks contiguous Float32 tensors along their first axis (Q, K, V → the fused QKV).
    static func concatenateRows(_ parts: [Tensor]) throws -> Tensor {
        let rest = Array(parts[0].shape.dropFirst())
        let result = try Tensor(zeros: [parts.map { $0.shape[0] }.reduce(0, +)] + rest)
        var offset = 0
        for part in parts {
            (result.floatPointer + offset).update(from: part.floatPointer, count: part.elementCount)
            offset += part.elementCount
        }
        return result
    }
}
