import Foundation
import FlashCore

/// The textbook algorithm, the baseline the flash kernels are measured against: for every
/// (sequence, query head) it materialises S = scale·QKᵀ (Nq×Nk) with the GEMM, turns it into
/// P = softmax(S) in place, and multiplies O = P·V. The backward keeps P and dP (two Nq×Nk
/// matrices per head) and forms the gradients with four more GEMMs. All score matrices of a
/// call are allocated at once, like a framework's attention op, so memory grows as B·H·N².
enum StandardAttention {
    /// Refuses, with the byte count it would need, instead of letting the OS kill the process.
    static func checkMemory(_ problem: AttentionProblem, matrices: Int) throws {
        let needed = problem.standardScoreBytes(matrices: matrices)
        let limit = Attention.standardMemoryLimitBytes
        if needed > limit { throw AttentionError.standardMemoryExceeded(neededBytes: needed, limitBytes: limit) }
    }

    /// Offsets (in floats) of each (sequence, query head)'s Nq×Nk matrix in one allocation.
    static func matrixOffsets(_ problem: AttentionProblem) -> [Int] {
        var offsets = [Int]()
        var running = 0
        for s in 0..<problem.sequenceCount {
            for _ in 0..<problem.queryHeads {
                offsets.append(running)
                running += problem.queryLengths[s] * problem.keyLengths[s]
            }
        }
        offsets.append(running)
        return offsets
    }

    /// Copies `count` tokens × headDim of one head into a contiguous Float32 [count, headDim] buffer.
    static func gather(_ rows: HeadRows, sequence s: Int, start: Int, count: Int, head: Int, headDim: Int,
                       into buffer: UnsafeMutablePointer<Float>) {
        for t in 0..<count {
            rows.load(at: rows.offset(sequence: s, token: start + t, head: head), count: headDim, into: buffer + t * headDim)
        }
    }

    /// Work items: one per (sequence, key/value head), each covering its group of query heads
    /// so that dK/dV of the group are accumulated by one thread in a fixed order.
    static func items(_ problem: AttentionProblem) -> [(sequence: Int, keyHead: Int)] {
        var items = [(sequence: Int, keyHead: Int)]()
        for s in 0..<problem.sequenceCount {
            for kvh in 0..<problem.keyHeads { items.append((s, kvh)) }
        }
        return items
    }
}
