// Multiply two matrices with FlashCore's blocked GEMM and check one entry by hand.

import FlashCore

// snippet.multiply
let a = try Tensor(shape: [2, 3], values: [1, 2, 3,
                                           4, 5, 6])
let b = try Tensor(shape: [3, 2], values: [7, 8,
                                           9, 10,
                                           11, 12])
let c = try Tensor(zeros: [2, 2])
try GEMM.multiply(a, b, into: c)       // C = A·B, Float32, all cores
print(c.floats())                      // [58.0, 64.0, 139.0, 154.0]
// snippet.end

// snippet.hide
let expected: Float = 1 * 7 + 2 * 9 + 3 * 11   // row 0 of A times column 0 of B
precondition(c[0, 0] == expected, "GEMM disagrees with the hand-computed entry")
// snippet.show

// snippet.isa
print("vector ISA:", VectorISA.compiled.rawValue, "—", FloatVector.scalarCount, "floats per register")
// snippet.end
