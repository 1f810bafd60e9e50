import CDNNL
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Runs a ``Plan``. An executor owns the activation arena, the oneDNN scratchpad, a stream
/// and the memory objects binding every primitive argument to its bytes, all created up
/// front: ``run(inputs:outputs:)`` allocates nothing on the oneDNN path.
///
/// One executor must not be used by two threads at once; create one per thread. Different
/// executors, of the same plan or of different plans, run concurrently without sharing
/// any mutable state.
public final class Executor: @unchecked Sendable {
    public let plan: Plan
    /// The cores the executor's threads are pinned to, if any.
    public let cores: [Int]?
    /// Where the team was last pinned (differs from `cores` after ``pin(to:)``).
    private var currentCores: [Int]?

    private let arena: UnsafeMutableRawPointer
    private let scratchpad: UnsafeMutableRawPointer?
    private let stream: OpaquePointer
    private var memories: [OpaquePointer] = []
    private var prepared: [Prepared] = []
    /// Memory objects that point at caller inputs, re-bound on every run.
    private var inputBindings: [(memory: OpaquePointer, input: Int)] = []
    private var pinnedThread: pthread_t?
    private var pinFailed = false
    /// Branch-parallel plans: a worker per device after the first (whose kernels the
    /// calling thread runs), the device of each kernel, the first device's cores, and the
    /// current run's caller buffers (read by the workers).
    private var workers: [LaneWorker?] = []
    private var kernelDevice: [Int] = []
    private var firstDevice: (cores: [Int], threads: Int) = ([], 1)
    /// When set (``runRecordingSpans(inputs:outputs:)``), each kernel's start and end times.
    private var spans: UnsafeMutablePointer<UInt64>?
    private var runInputs: [UnsafePointer<Float>] = []
    private var runOutputs: [UnsafeMutablePointer<Float>] = []

    private enum Prepared {
        case primitive(OpaquePointer, [dnnl_exec_arg_t])
        case reference(Step, [BufferRef], [[Int]], [BufferRef], [[Int]], [ValueID: BufferRef])
        case copy(BufferRef, BufferRef, Int)
    }

    public init(plan: Plan, cores: [Int]? = nil) throws {
        if let cores { try Affinity.validate(cores) }
        self.plan = plan
        self.cores = cores
        currentCores = cores
        var raw: UnsafeMutableRawPointer?
        guard posix_memalign(&raw, 64, max(plan.arenaBytes, 64)) == 0, let raw else {
            throw MetronomeError.backend("cannot allocate an arena of \(plan.arenaBytes) bytes")
        }
        arena = raw
        var sp: UnsafeMutableRawPointer? = nil
        if plan.scratchpadBytes > 0 {
            guard posix_memalign(&sp, 64, plan.scratchpadBytes) == 0 else {
                free(raw)
                throw MetronomeError.backend("cannot allocate a scratchpad of \(plan.scratchpadBytes) bytes")
            }
        }
        scratchpad = sp
        var s: OpaquePointer?
        guard dnnl_stream_create(&s, plan.engine, dnnl_stream_default_flags.rawValue) == dnnl_success, let s else {
            free(raw); free(sp)
            throw MetronomeError.backend("stream creation failed")
        }
        stream = s
        if let schedule = plan.schedule {
            let devices = cores.map { schedule.devices.remapped(onto: $0) } ?? schedule.devices
            kernelDevice = Array(repeating: 0, count: plan.kernelCount)
            for (d, g) in devices.groups.enumerated() {
                let threads = schedule.devices.groups[d].cores.count
                if d == 0 {
                    firstDevice = (g.cores, threads)
                    currentCores = g.cores
                    workers.append(nil)
                } else {
                    workers.append(try LaneWorker(device: g.device, cores: g.cores, threads: threads, engine: plan.engine,
                                                  scratchpadBytes: plan.scratchpadBytes, executor: self))
                }
            }
            for segment in schedule.segments {
                for lane in segment {
                    let d = devices.groups.firstIndex { $0.device == lane.device } ?? 0
                    for k in lane.kernels { kernelDevice[k] = d }
                }
            }
        }
        try prepare()
    }

    deinit {
        for case let w? in workers { w.stop() }
        for m in memories { dnnl_memory_destroy(m) }
        dnnl_stream_destroy(stream)
        free(arena)
        free(scratchpad)
    }

    private func pointer(_ ref: BufferRef, kernel: Int) -> UnsafeMutableRawPointer? {
        switch ref {
        case .arena(let b): return arena + plan.arenaOffsets[b]
        case .weight(let w): return plan.weights[w]
        case .scratchpad:
            guard !workers.isEmpty, let w = workers[kernelDevice[kernel]] else { return scratchpad }
            return w.scratchpad
        case .input, .output: return nil
        }
    }

    private func prepare() throws {
        for (index, kernel) in plan.kernels.enumerated() {
            switch kernel {
            case .primitive(let p, let args, let name):
                var execArgs: [dnnl_exec_arg_t] = []
                for a in args {
                    var md = a.desc
                    var m: OpaquePointer?
                    try DNNL.check(dnnl_memory_create(&m, &md, plan.engine, pointer(a.ref, kernel: index)), "memory for \(name)")
                    guard let m else { throw MetronomeError.backend("memory for \(name) returned nothing") }
                    memories.append(m)
                    if case .input(let i) = a.ref { inputBindings.append((m, i)) }
                    execArgs.append(dnnl_exec_arg_t(arg: a.kind, memory: m))
                }
                prepared.append(.primitive(p, execArgs))
            case .reference(let step, let ins, let inShapes, let outs, let outShapes, let res):
                prepared.append(.reference(step, ins, inShapes, outs, outShapes, res))
            case .copy(let from, let to, let bytes):
                prepared.append(.copy(from, to, bytes))
            }
        }
    }

    /// Sizes this thread's OpenMP team and, with a core list, pins every member once per thread.
    private func enterTeam() {
        omp_set_num_threads(Int32(plan.schedule == nil ? plan.threads : firstDevice.threads))
        guard let cores = currentCores else { return }
        let me = pthread_self()
        if let p = pinnedThread, pthread_equal(p, me) != 0 { return }
        pinnedThread = me
        let failures = Affinity.pinTeam(cores, threads: plan.threads)
        if failures > 0 && !pinFailed {
            pinFailed = true
            FileHandleOutput.warn("warning: could not pin \(failures) thread(s) to cores \(cores); running unpinned")
        }
    }

    /// Runs the plan on caller-owned buffers, which must hold exactly the plan's input
    /// and output shapes (see ``Plan/program``), in the order of the program's inputs and outputs.
    public func run(inputs: [UnsafePointer<Float>], outputs: [UnsafeMutablePointer<Float>]) throws {
        try run(inputs: inputs, outputs: outputs, boundary: nil)
    }

    /// Runs the plan, calling `boundary` between kernels (before kernel `k`, for `k ≥ 1`)
    /// once the previous kernel's work is complete. The real-time runtime uses it as the
    /// layer-granularity preemption point: the callback may block, and may call
    /// ``pin(to:)`` to move the rest of the run to other cores.
    public func run(inputs: [UnsafePointer<Float>], outputs: [UnsafeMutablePointer<Float>],
                    boundary: ((Int) throws -> Void)?) throws {
        guard inputs.count == plan.inputShapes.count, outputs.count == plan.outputShapes.count else {
            throw MetronomeError.invalidArgument(
                "the plan takes \(plan.inputShapes.count) inputs and \(plan.outputShapes.count) outputs; got \(inputs.count) and \(outputs.count)")
        }
        for (m, i) in inputBindings {
            try DNNL.check(dnnl_memory_set_data_handle_v2(m, UnsafeMutableRawPointer(mutating: inputs[i]), stream), "input binding")
        }
        runInputs = inputs
        runOutputs = outputs
        if let schedule = plan.schedule { return try runBranches(schedule, boundary: boundary) }
        enterTeam()
        for index in plan.kernels.indices {
            if index > 0, let boundary {
                try DNNL.check(dnnl_stream_wait(stream), "stream wait")
                try boundary(index)
            }
            try timed(index, on: stream)
        }
        try DNNL.check(dnnl_stream_wait(stream), "stream wait")
    }

    /// Runs kernel `index`, recording its start and end when spans are being recorded.
    @inline(__always)
    private func timed(_ index: Int, on stream: OpaquePointer) throws {
        guard let spans else { return try execute(index, on: stream) }
        spans[2 * index] = MonotonicClock.now()
        try execute(index, on: stream)
        try DNNL.check(dnnl_stream_wait(stream), "stream wait")
        spans[2 * index + 1] = MonotonicClock.now()
    }

    /// Runs once and returns when each kernel started and ended (monotonic nanoseconds; the
    /// stream is waited on after each kernel): what really ran at the same time in a
    /// branch-parallel plan, to check its memory plan against.
    public func runRecordingSpans(inputs: [UnsafePointer<Float>], outputs: [UnsafeMutablePointer<Float>]) throws -> [(start: UInt64, end: UInt64)] {
        let n = plan.kernelCount
        let buffer = UnsafeMutablePointer<UInt64>.allocate(capacity: 2 * max(n, 1))
        buffer.initialize(repeating: 0, count: 2 * max(n, 1))
        defer { spans = nil; buffer.deallocate() }
        spans = buffer
        try run(inputs: inputs, outputs: outputs)
        return (0..<n).map { (buffer[2 * $0], buffer[2 * $0 + 1]) }
    }

    /// Runs kernel `index` on `stream` with the current run's inputs and outputs.
    private func execute(_ index: Int, on stream: OpaquePointer) throws {
        func resolve(_ ref: BufferRef) -> UnsafeMutableRawPointer {
            switch ref {
            case .input(let i): return UnsafeMutableRawPointer(mutating: runInputs[i])
            case .output(let i): return UnsafeMutableRawPointer(runOutputs[i])
            default: return pointer(ref, kernel: index)!
            }
        }
        switch prepared[index] {
        case .primitive(let p, let args):
            let status = args.withUnsafeBufferPointer { dnnl_primitive_execute(p, stream, Int32($0.count), $0.baseAddress) }
            try DNNL.check(status, "execution")
        case .reference(let step, let ins, let inShapes, let outs, let outShapes, let res):
            try DNNL.check(dnnl_stream_wait(stream), "stream wait")
            let x = ins.map { UnsafePointer(resolve($0).assumingMemoryBound(to: Float.self)) }
            let y = outs.map { resolve($0).assumingMemoryBound(to: Float.self) }
            try ReferenceRunner.kernel(step, x, inShapes, y, outShapes)
            ReferenceKernels.applyPostOps(step.postOps, to: y[0], count: outShapes[0].reduce(1, *)) {
                UnsafePointer(resolve(res[$0]!).assumingMemoryBound(to: Float.self))
            }
        case .copy(let from, let to, let bytes):
            try DNNL.check(dnnl_stream_wait(stream), "stream wait")
            resolve(to).copyMemory(from: resolve(from), byteCount: bytes)
        }
    }

    /// Runs `kernels` one after another on `stream` and waits for them (a lane worker's share).
    func runKernels(_ kernels: Range<Int>, on stream: OpaquePointer) throws {
        for index in kernels { try timed(index, on: stream) }
        try DNNL.check(dnnl_stream_wait(stream), "stream wait")
    }

    /// A branch-parallel run: each segment's lanes start together on their devices' workers
    /// and are all joined before the next segment (the merge) starts. `boundary` is called
    /// between segments, the only points where no kernel is running.
    private func runBranches(_ schedule: BranchSchedule, boundary: ((Int) throws -> Void)?) throws {
        var policy: Int32 = SCHED_OTHER
        var priority = sched_param()
        pthread_getschedparam(pthread_self(), &policy, &priority)
        // The calling thread runs the first device's lanes on that device's cores, and gets
        // its own affinity back afterwards (a CPUSet on the stack: nothing is allocated).
        var saved = CPUSet()
        let restore = metronome_sched_getaffinity(0, UInt(MemoryLayout<CPUSet>.size), &saved) == 0
        defer { if restore { _ = metronome_sched_setaffinity(0, UInt(MemoryLayout<CPUSet>.size), &saved) } }
        // The team's other members are pinned once per thread (enterTeam); this thread is
        // pinned at every run, since the previous run gave it its own affinity back.
        if firstDevice.threads > 1 { enterTeam() } else { omp_set_num_threads(1) }
        if let cores = currentCores {
            let own = firstDevice.threads > 1 && cores.count >= firstDevice.threads ? [cores[0]] : cores
            Affinity.pinCurrentThread(to: own)
        }
        for segment in schedule.segments {
            guard let first = segment.lazy.filter({ !$0.kernels.isEmpty }).map(\.kernels.lowerBound).min() else { continue }
            if first > 0, let boundary { try boundary(first) }
            for lane in segment where !lane.kernels.isEmpty {
                workers[kernelDevice[lane.kernels.lowerBound]]?.start(lane.kernels, policy: policy, priority: priority)
            }
            // The first device's lane runs here, on the calling thread, meanwhile.
            var failure: Error?
            for lane in segment where !lane.kernels.isEmpty && workers[kernelDevice[lane.kernels.lowerBound]] == nil {
                do { try runKernels(lane.kernels, on: stream) } catch { failure = error }
            }
            for lane in segment where !lane.kernels.isEmpty {
                guard let w = workers[kernelDevice[lane.kernels.lowerBound]] else { continue }
                do { try w.join() } catch { failure = failure ?? error }
            }
            if let failure { throw failure }
        }
    }

    /// Pins the calling thread's team to `cores` now (for a run that migrates mid-way);
    /// returns false if the OS refused. Later runs on this thread keep the new placement.
    @discardableResult
    public func pin(to cores: [Int]) -> Bool {
        if let schedule = plan.schedule {
            // A branch-parallel run spreads its devices over the new cores; the first
            // device's share is this thread's.
            let groups = schedule.devices.remapped(onto: cores).groups
            for (w, g) in zip(workers, groups) { w?.move(to: g.cores) }
            currentCores = groups[0].cores
            pinnedThread = pthread_self()
            return Affinity.pinTeam(groups[0].cores, threads: firstDevice.threads) == 0
        }
        omp_set_num_threads(Int32(plan.threads))
        pinnedThread = pthread_self()
        currentCores = cores
        return Affinity.pinTeam(cores, threads: plan.threads) == 0
    }

    /// Convenience form that allocates its outputs; not for the real-time path.
    public func run(_ inputs: [Tensor]) throws -> [Tensor] {
        guard inputs.count == plan.inputShapes.count else {
            throw MetronomeError.invalidArgument("the plan takes \(plan.inputShapes.count) inputs, got \(inputs.count)")
        }
        for (t, (shape, name)) in zip(inputs, zip(plan.inputShapes, plan.inputNames)) where t.shape != shape {
            throw MetronomeError.inputShape(name: name, expected: shape, actual: t.shape)
        }
        var outs = plan.outputShapes.map { Tensor(shape: $0) }
        let inPtrs = inputs.map { t in
            let p = UnsafeMutablePointer<Float>.allocate(capacity: max(t.count, 1))
            p.initialize(from: t.scalars, count: t.count)
            return p
        }
        let outPtrs = outs.map { UnsafeMutablePointer<Float>.allocate(capacity: max($0.count, 1)) }
        defer { inPtrs.forEach { $0.deallocate() }; outPtrs.forEach { $0.deallocate() } }
        try run(inputs: inPtrs.map { UnsafePointer($0) }, outputs: outPtrs)
        for i in outs.indices { outs[i].scalars = Array(UnsafeBufferPointer(start: outPtrs[i], count: outs[i].count)) }
        return outs
    }
}

enum FileHandleOutput {
    static func warn(_ message: String) {
        FileHandle.standardError.write(Data((message + "\n").utf8))
    }
}

extension Affinity {
    /// Pins each member of the calling thread's OpenMP team of `threads` to one core of
    /// `cores` (round robin); returns how many members the OS refused to pin.
    static func pinTeam(_ cores: [Int], threads: Int) -> Int {
        final class Request {
            let cores: [Int]
            /// One slot per team member, so members never write the same memory.
            let refused: UnsafeMutableBufferPointer<Int32>
            init(_ c: [Int], _ n: Int) {
                cores = c
                refused = .allocate(capacity: n)
                refused.initialize(repeating: 0)
            }
            deinit { refused.deallocate() }
        }
        let request = Request(cores, threads)
        let body: @convention(c) (UnsafeMutableRawPointer?) -> Void = { raw in
            guard let raw else { return }
            let r = Unmanaged<Request>.fromOpaque(raw).takeUnretainedValue()
            let t = Int(omp_get_thread_num())
            // With as many cores as threads each member gets its own; otherwise all share the set.
            let target = r.cores.count >= Int(omp_get_num_threads()) ? [r.cores[t % r.cores.count]] : r.cores
            if !Affinity.pinCurrentThread(to: target), t < r.refused.count { r.refused[t] = 1 }
        }
        withExtendedLifetime(request) {
            GOMP_parallel(body, Unmanaged.passUnretained(request).toOpaque(), UInt32(threads), 0)
        }
        return request.refused.reduce(0) { $0 + Int($1) }
    }
}
