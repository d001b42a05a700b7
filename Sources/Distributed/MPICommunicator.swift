import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Open MPI's `MPI_COMM_WORLD`, with libmpi loaded at run time (dlopen/dlsym) instead of linked:
/// the package then builds, and single-process training runs, on machines without MPI, and a
/// job launched by `mpirun` finds the library the launcher belongs to.
///
/// Open MPI's predefined handles (`MPI_COMM_WORLD`, `MPI_FLOAT`, `MPI_SUM`, …) are macros for the
/// addresses of exported globals (`&ompi_mpi_comm_world`, …), so they are looked up with dlsym
/// like the functions. MPICH's handles are integer constants instead; it is not supported.
///
/// Calls are serialised by a lock (MPI_THREAD_SERIALIZED), so the training loop's
/// communication thread and main thread may both use the communicator, one call at a time.
public final class MPICommunicator: Communicator, @unchecked Sendable {
    typealias Handle = UnsafeMutableRawPointer
    typealias InitThread = @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?, Int32, UnsafeMutablePointer<Int32>) -> Int32
    typealias CommQuery = @convention(c) (Handle, UnsafeMutablePointer<Int32>) -> Int32
    typealias Allreduce = @convention(c) (UnsafeRawPointer?, UnsafeMutableRawPointer?, Int32, Handle, Handle, Handle) -> Int32
    typealias ReduceScatterBlock = @convention(c) (UnsafeRawPointer?, UnsafeMutableRawPointer?, Int32, Handle, Handle, Handle) -> Int32
    typealias Allgather = @convention(c) (UnsafeRawPointer?, Int32, Handle, UnsafeMutableRawPointer?, Int32, Handle, Handle) -> Int32
    typealias Bcast = @convention(c) (UnsafeMutableRawPointer?, Int32, Handle, Int32, Handle) -> Int32
    typealias Sendrecv = @convention(c) (UnsafeRawPointer?, Int32, Handle, Int32, Int32,
                                         UnsafeMutableRawPointer?, Int32, Handle, Int32, Int32, Handle, UnsafeMutableRawPointer?) -> Int32
    typealias Barrier = @convention(c) (Handle) -> Int32
    typealias Finalize = @convention(c) () -> Int32
    typealias Abort = @convention(c) (Handle, Int32) -> Int32

    /// Sonames tried in order (Open MPI 4 and 5 both ship libmpi.so.40).
    static let libraryNames = ["libmpi.so.40", "libmpi.so", "libmpi.dylib"]
    /// MPI_THREAD_SERIALIZED in Open MPI's mpi.h.
    static let threadSerialized: Int32 = 2
    /// Largest element count passed in one call (MPI counts are 32-bit).
    static let maximumCount = 1 << 30

    public let rank: Int
    public let size: Int
    let world: Handle, float: Handle, double: Handle, byte: Handle, sum: Handle
    let allreduce: Allreduce, reduceScatterBlock: ReduceScatterBlock, allgather: Allgather
    let bcast: Bcast, sendrecv: Sendrecv, barrierCall: Barrier, finalizeCall: Finalize, abortCall: Abort
    let lock = NSLock()
    private var finalized = false

    /// Whether this process was started by Open MPI's launcher (mpirun/mpiexec set
    /// OMPI_COMM_WORLD_SIZE). Without it, training is single-process and MPI is never loaded.
    public static var launchedByMPI: Bool { ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_SIZE"] != nil }

    /// The world communicator when launched by Open MPI's mpirun, nil for a plain process.
    /// Throws when another MPI's launcher started the process or libmpi cannot be loaded.
    public static func worldIfLaunched() throws -> MPICommunicator? {
        let environment = ProcessInfo.processInfo.environment
        if launchedByMPI { return try MPICommunicator() }
        if environment["PMI_RANK"] != nil || environment["PMI_SIZE"] != nil {
            throw CommunicationError.unsupportedLauncher("PMI_RANK/PMI_SIZE are set (MPICH's hydra?); flash loads Open MPI's libmpi, launch it with Open MPI's mpirun")
        }
        return nil
    }

    /// Loads libmpi and calls MPI_Init_thread. Once per process.
    public init() throws {
        var library: UnsafeMutableRawPointer?
        var errors: [String] = []
        for name in MPICommunicator.libraryNames {
            // RTLD_GLOBAL: Open MPI dlopens its own components, which resolve symbols of libmpi.
            library = dlopen(name, RTLD_NOW | RTLD_GLOBAL)
            if library != nil { break }
            errors.append(String(cString: dlerror()))
        }
        guard let library else { throw CommunicationError.libraryUnavailable(errors.joined(separator: "; ")) }
        func symbol(_ name: String) throws -> UnsafeMutableRawPointer {
            guard let address = dlsym(library, name) else {
                throw CommunicationError.libraryUnavailable("libmpi has no symbol \(name) (flash supports Open MPI)")
            }
            return address
        }
        func function<F>(_ name: String, _ type: F.Type) throws -> F { unsafeBitCast(try symbol(name), to: type) }
        world = try symbol("ompi_mpi_comm_world")
        float = try symbol("ompi_mpi_float")
        double = try symbol("ompi_mpi_double")
        byte = try symbol("ompi_mpi_byte")
        sum = try symbol("ompi_mpi_op_sum")
        allreduce = try function("MPI_Allreduce", Allreduce.self)
        reduceScatterBlock = try function("MPI_Reduce_scatter_block", ReduceScatterBlock.self)
        allgather = try function("MPI_Allgather", Allgather.self)
        bcast = try function("MPI_Bcast", Bcast.self)
        sendrecv = try function("MPI_Sendrecv", Sendrecv.self)
        barrierCall = try function("MPI_Barrier", Barrier.self)
        finalizeCall = try function("MPI_Finalize", Finalize.self)
        abortCall = try function("MPI_Abort", Abort.self)
        let initThread = try function("MPI_Init_thread", InitThread.self)
        let commRank = try function("MPI_Comm_rank", CommQuery.self)
        let commSize = try function("MPI_Comm_size", CommQuery.self)
        var provided: Int32 = 0
        try MPICommunicator.check(initThread(nil, nil, MPICommunicator.threadSerialized, &provided), "MPI_Init_thread")
        guard provided >= MPICommunicator.threadSerialized else {
            throw CommunicationError.libraryUnavailable("MPI_Init_thread provided thread level \(provided), need MPI_THREAD_SERIALIZED")
        }
        var value: Int32 = 0
        try MPICommunicator.check(commRank(world, &value), "MPI_Comm_rank")
        rank = Int(value)
        try MPICommunicator.check(commSize(world, &value), "MPI_Comm_size")
        size = Int(value)
    }

    static func check(_ code: Int32, _ call: String) throws {
        if code != 0 { throw CommunicationError.mpiFailed(call: call, code: code) }
    }

    private func locked(_ call: String, _ body: () -> Int32) throws {
        lock.lock()
        let code = body()
        lock.unlock()
        try MPICommunicator.check(code, call)
    }

    /// Calls `body(offset, count)` over `total` elements in pieces MPI's 32-bit counts can hold.
    private func pieces(_ total: Int, _ body: (Int, Int32) throws -> Void) rethrows {
        var start = 0
        repeat {
            let n = min(MPICommunicator.maximumCount, total - start)
            try body(start, Int32(n))
            start += n
        } while start < total
    }

    public func allReduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws {
        try pieces(count) { start, n in
            try locked("MPI_Allreduce") { allreduce(UnsafeRawPointer(bitPattern: 1), buffer + start, n, float, sum, world) }
        }
    }

    public func allReduceSum(_ buffer: UnsafeMutablePointer<Double>, count: Int) throws {
        try pieces(count) { start, n in
            try locked("MPI_Allreduce") { allreduce(UnsafeRawPointer(bitPattern: 1), buffer + start, n, double, sum, world) }
        }
    }

    public func reduceScatterSum(_ send: UnsafePointer<Float>, into receive: UnsafeMutablePointer<Float>, countPerRank: Int) throws {
        try locked("MPI_Reduce_scatter_block") { reduceScatterBlock(send, receive, Int32(countPerRank), float, sum, world) }
    }

    public func allGather(_ send: UnsafePointer<Float>, into receive: UnsafeMutablePointer<Float>, countPerRank: Int) throws {
        try locked("MPI_Allgather") { allgather(send, Int32(countPerRank), float, receive, Int32(countPerRank), float, world) }
    }

    public func broadcast(_ buffer: UnsafeMutableRawPointer, bytes: Int, root: Int) throws {
        try pieces(bytes) { start, n in
            try locked("MPI_Bcast") { bcast(buffer + start, n, byte, Int32(root), world) }
        }
    }

    public func sendReceive(_ send: UnsafePointer<Float>, count sendCount: Int, to destination: Int,
                            into receive: UnsafeMutablePointer<Float>, count receiveCount: Int, from source: Int) throws {
        try locked("MPI_Sendrecv") {
            sendrecv(send, Int32(sendCount), float, Int32(destination), 7, receive, Int32(receiveCount), float, Int32(source), 7, world, nil)
        }
    }

    public func barrier() throws { try locked("MPI_Barrier") { barrierCall(world) } }

    /// MPI_Finalize; call once at the end of a successful run.
    public func finalize() {
        lock.lock()
        defer { lock.unlock() }
        if !finalized { _ = finalizeCall() }
        finalized = true
    }

    /// Ends every rank of the job with `code` (MPI_Abort), for a failure on one rank that the
    /// others could not notice and would otherwise wait on forever.
    public func abort(code: Int32) -> Never {
        _ = abortCall(world, code)
        exit(code)
    }
}
