import XCTest
import FlashCore
import FlashAttention

/// Deterministic pseudo-random numbers for test inputs.
struct TestRandom {
    var state: UInt64
    init(_ seed: UInt64) { state = seed &* 6_364_136_223_846_793_005 &+ 1 }
    mutating func next() -> Double {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return Double(state >> 11) / Double(1 << 53)
    }
    /// Uniform in [−1, 1) times `scale`.
    mutating func values(_ count: Int, scale: Double = 1) -> [Float] {
        (0..<count).map { _ in Float((next() * 2 - 1) * scale) }
    }
}

/// One attention configuration, run through flash, standard and the Float64 reference.
struct AttentionCase {
    var batch = 1, queryLength = 8, keyLength = 8, queryHeads = 1, keyHeads = 1, headDim = 16
    var causal = false
    var windowLeft: Int?
    var windowRight: Int?
    var softcap: Float?
    var alibi = false
    /// Bias shape (broadcast over [B, Hq, Nq, Nk]); nil for none.
    var biasShape: [Int]?
    var keepMaskShape: [Int]?
    var keyLengths: [Int]?
    var dropout: Float = 0
    var elementType: ElementType = .float32
    var inputScale = 1.0
    var seed: UInt64 = 1

    var descriptionText: String {
        "B\(batch) Nq\(queryLength) Nk\(keyLength) Hq\(queryHeads) Hkv\(keyHeads) D\(headDim) causal \(causal) "
            + "window \(String(describing: windowLeft)),\(String(describing: windowRight)) softcap \(String(describing: softcap)) "
            + "alibi \(alibi) bias \(String(describing: biasShape)) keep \(String(describing: keepMaskShape)) "
            + "keyLengths \(String(describing: keyLengths)) dropout \(dropout) \(elementType)"
    }
}

/// Inputs of a case as tensors plus their exact values in Double.
struct AttentionInputs {
    let query: Tensor, key: Tensor, value: Tensor, outputGradient: Tensor
    let descriptor: AttentionDescriptor
    let reference: ReferenceAttention
    let q: [Double], k: [Double], v: [Double], dO: [Double]

    init(_ c: AttentionCase) throws {
        var random = TestRandom(c.seed)
        let qShape = [c.batch, c.queryLength, c.queryHeads, c.headDim]
        let kShape = [c.batch, c.keyLength, c.keyHeads, c.headDim]
        query = try Tensor(shape: qShape, values: random.values(qShape.reduce(1, *), scale: c.inputScale), elementType: c.elementType)
        key = try Tensor(shape: kShape, values: random.values(kShape.reduce(1, *), scale: c.inputScale), elementType: c.elementType)
        value = try Tensor(shape: kShape, values: random.values(kShape.reduce(1, *)), elementType: c.elementType)
        outputGradient = try Tensor(shape: qShape, values: random.values(qShape.reduce(1, *)), elementType: c.elementType)
        (q, k, v, dO) = (query.floats().map(Double.init), key.floats().map(Double.init),
                         value.floats().map(Double.init), outputGradient.floats().map(Double.init))
        var descriptor = AttentionDescriptor(causal: c.causal, windowLeft: c.windowLeft, windowRight: c.windowRight,
                                             softcap: c.softcap, keyLengths: c.keyLengths,
                                             dropoutProbability: c.dropout, dropoutSeed: c.seed &+ 77)
        var reference = ReferenceAttention(batch: c.batch, queryLength: c.queryLength, keyLength: c.keyLength,
                                           queryHeads: c.queryHeads, keyHeads: c.keyHeads, headDim: c.headDim,
                                           scale: Double(Float(1 / Double(c.headDim).squareRoot())))
        reference.causal = c.causal
        reference.windowLeft = c.windowLeft
        reference.windowRight = c.windowRight
        reference.softcap = c.softcap.map(Double.init)
        reference.keyLengths = c.keyLengths
        reference.dropout = Double(c.dropout)
        reference.dropoutSeed = c.seed &+ 77
        if c.alibi {
            let slopes = (0..<c.queryHeads).map { Float(pow(2, -8 * Double($0 + 1) / Double(c.queryHeads))) }
            descriptor.alibiSlopes = slopes
            reference.alibiSlopes = slopes.map(Double.init)
        }
        let full = [c.batch, c.queryHeads, c.queryLength, c.keyLength]
        if let shape = c.biasShape {
            let values = random.values(shape.reduce(1, *), scale: 2)
            descriptor.bias = try Tensor(shape: shape, values: values)
            reference.bias = AttentionInputs.broadcast(values.map(Double.init), shape: shape, to: full)
        }
        if let shape = c.keepMaskShape {
            let values = (0..<shape.reduce(1, *)).map { _ in random.next() < 0.7 ? Float(1) : 0 }
            descriptor.keepMask = try Tensor(shape: shape, values: values)
            reference.keep = AttentionInputs.broadcast(values.map(Double.init), shape: shape, to: full).map { $0 != 0 }
        }
        self.descriptor = descriptor
        self.reference = reference
    }

    /// Expands a broadcastable array (shape left-padded with 1s) to the full 4-D shape.
    static func broadcast(_ values: [Double], shape: [Int], to full: [Int]) -> [Double] {
        let padded = [Int](repeating: 1, count: 4 - shape.count) + shape
        let strides = [padded[1] * padded[2] * padded[3], padded[2] * padded[3], padded[3], 1]
        var result = [Double]()
        result.reserveCapacity(full.reduce(1, *))
        for a in 0..<full[0] { for b in 0..<full[1] { for c in 0..<full[2] { for d in 0..<full[3] {
            let index = [a, b, c, d].enumerated().reduce(0) { $0 + (padded[$1.offset] == 1 ? 0 : $1.element * strides[$1.offset]) }
            result.append(values[index])
        }}}}
        return result
    }
}

/// Largest absolute difference, treating equal infinities as equal and NaN as infinitely wrong.
func maxError(_ actual: [Float], _ expected: [Double]) -> Double {
    precondition(actual.count == expected.count)
    var worst = 0.0
    for (a, e) in zip(actual, expected) {
        if a.isNaN || e.isNaN { return .infinity }
        if a.isInfinite || e.isInfinite {
            if Double(a) != e { return .infinity }
            continue
        }
        worst = max(worst, abs(Double(a) - e))
    }
    return worst
}

extension XCTestCase {
    /// FlashAttention's own rule: the flash result's error against the Float64 reference is at
    /// most twice the standard Float32 implementation's, plus a small absolute slack (scaled
    /// by the size of the values).
    func assertFlashAccurate(_ flash: [Float], standard: [Float], reference: [Double], _ what: String,
                             _ c: AttentionCase, file: StaticString = #filePath, line: UInt = #line) {
        let magnitude = reference.lazy.filter { $0.isFinite }.map(abs).max() ?? 1
        let flashError = maxError(flash, reference)
        let standardError = maxError(standard, reference)
        let slack = 1e-5 * max(1, magnitude)
        XCTAssertLessThanOrEqual(standardError, 1e-3 * max(1, magnitude) + (c.elementType == .float32 ? 0 : 1e-3),
                                 "standard \(what) far from reference: \(c.descriptionText)", file: file, line: line)
        XCTAssertLessThanOrEqual(flashError, 2 * standardError + slack,
                                 "flash \(what) error \(flashError) vs standard \(standardError): \(c.descriptionText)",
                                 file: file, line: line)
    }

    /// Runs a case through both implementations and the reference, forward and backward.
    func checkCase(_ c: AttentionCase, backward: Bool = true, file: StaticString = #filePath, line: UInt = #line) throws {
        let inputs = try AttentionInputs(c)
        var flashDescriptor = inputs.descriptor
        flashDescriptor.implementation = .flash
        var standardDescriptor = inputs.descriptor
        standardDescriptor.implementation = .standard
        let flash = try Attention.forward(query: inputs.query, key: inputs.key, value: inputs.value, descriptor: flashDescriptor)
        let standard = try Attention.forward(query: inputs.query, key: inputs.key, value: inputs.value, descriptor: standardDescriptor)
        let reference = inputs.reference.forward(query: inputs.q, key: inputs.k, value: inputs.v)
        assertFlashAccurate(flash.output.floats(), standard: standard.output.floats(), reference: reference.output, "O", c, file: file, line: line)
        assertFlashAccurate(flash.logSumExp.floats(), standard: standard.logSumExp.floats(), reference: reference.lse, "LSE", c, file: file, line: line)
        guard backward else { return }
        let flashGradients = try Attention.backward(
            query: inputs.query, key: inputs.key, value: inputs.value, output: flash.output, logSumExp: flash.logSumExp, logSumExpResidual: flash.logSumExpResidual,
            outputGradient: inputs.outputGradient, descriptor: flashDescriptor)
        let standardGradients = try Attention.backward(
            query: inputs.query, key: inputs.key, value: inputs.value, output: standard.output, logSumExp: standard.logSumExp, logSumExpResidual: standard.logSumExpResidual,
            outputGradient: inputs.outputGradient, descriptor: standardDescriptor)
        let expected = inputs.reference.backward(query: inputs.q, key: inputs.k, value: inputs.v, outputGradient: inputs.dO)
        assertFlashAccurate(flashGradients.query.floats(), standard: standardGradients.query.floats(), reference: expected.query, "dQ", c, file: file, line: line)
        assertFlashAccurate(flashGradients.key.floats(), standard: standardGradients.key.floats(), reference: expected.key, "dK", c, file: file, line: line)
        assertFlashAccurate(flashGradients.value.floats(), standard: standardGradients.value.floats(), reference: expected.value, "dV", c, file: file, line: line)
    }
}

extension XCTestCase {
    /// Checks a distributed computation of the whole problem of `inputs` (its O, LSE and gradients
    /// reassembled in the global layout) against the Float64 reference with FlashAttention's
    /// accuracy rule, the standard Float32 implementation on one process setting the allowance.
    func assertMatchesFullAttention(output: [Float], logSumExp: [Float], query: [Float], key: [Float], value: [Float],
                                    inputs: AttentionInputs, _ c: AttentionCase, _ label: String,
                                    file: StaticString = #filePath, line: UInt = #line) throws {
        var standardDescriptor = inputs.descriptor
        standardDescriptor.implementation = .standard
        let standard = try Attention.forward(query: inputs.query, key: inputs.key, value: inputs.value, descriptor: standardDescriptor)
        let standardGradients = try Attention.backward(
            query: inputs.query, key: inputs.key, value: inputs.value, output: standard.output, logSumExp: standard.logSumExp,
            outputGradient: inputs.outputGradient, descriptor: standardDescriptor)
        let reference = inputs.reference.forward(query: inputs.q, key: inputs.k, value: inputs.v)
        let expected = inputs.reference.backward(query: inputs.q, key: inputs.k, value: inputs.v, outputGradient: inputs.dO)
        assertFlashAccurate(output, standard: standard.output.floats(), reference: reference.output, "\(label) O", c, file: file, line: line)
        assertFlashAccurate(logSumExp, standard: standard.logSumExp.floats(), reference: reference.lse, "\(label) LSE", c, file: file, line: line)
        assertFlashAccurate(query, standard: standardGradients.query.floats(), reference: expected.query, "\(label) dQ", c, file: file, line: line)
        assertFlashAccurate(key, standard: standardGradients.key.floats(), reference: expected.key, "\(label) dK", c, file: file, line: line)
        assertFlashAccurate(value, standard: standardGradients.value.floats(), reference: expected.value, "\(label) dV", c, file: file, line: line)
    }
}
