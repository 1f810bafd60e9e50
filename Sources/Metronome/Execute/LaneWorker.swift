import CDNNL
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The thread that runs one device's kernels of a branch-parallel plan (see
/// ``BranchSchedule``); the calling thread runs the first device's. It is created with its
/// executor and lives as long as it, so a run only hands kernel ranges over through two
/// ``Handoff``s: nothing is allocated per run.
///
/// Its OpenMP team (the device's thread count) is pinned to the device's cores before the
/// first run and again after ``Executor/pin(to:)`` moves the devices; it takes the calling
/// thread's scheduling policy and priority at every run, so a real-time job's branches run
/// at the job's priority.
final class LaneWorker: @unchecked Sendable {
    let device: String
    let threads: Int
    let stream: OpaquePointer
    let scratchpad: UnsafeMutableRawPointer?
    private let wake = Handoff()
    private let finished = Handoff()
    private let exited = DispatchSemaphore(value: 0)
    /// Written by the caller before `wake.signal()`, read by the worker after `wake.wait()`.
    private var work: Range<Int> = 0..<0
    private var stopping = false
    private var failure: Error?
    private var cores: [Int]
    private var pinnedCores: [Int]?
    private var policy: Int32 = SCHED_OTHER
    private var priority = sched_param()
    private var appliedPolicy: Int32 = SCHED_OTHER
    private var appliedPriority: Int32 = 0
    private var warnedPin = false, warnedPriority = false
    /// The kernels' runner; the executor outlives its workers (its deinit stops them first).
    private unowned(unsafe) let executor: Executor

    init(device: String, cores: [Int], threads: Int, engine: OpaquePointer, scratchpadBytes: Int, executor: Executor) throws {
        self.device = device
        self.cores = cores
        self.threads = threads
        self.executor = executor
        var s: OpaquePointer?
        guard dnnl_stream_create(&s, engine, dnnl_stream_default_flags.rawValue) == dnnl_success, let s else {
            throw MetronomeError.backend("stream creation failed for device '\(device)'")
        }
        stream = s
        var sp: UnsafeMutableRawPointer? = nil
        if scratchpadBytes > 0 {
            guard posix_memalign(&sp, 64, scratchpadBytes) == 0 else {
                dnnl_stream_destroy(s)
                throw MetronomeError.backend("cannot allocate a scratchpad of \(scratchpadBytes) bytes for device '\(device)'")
            }
        }
        scratchpad = sp
        let thread = Thread { [self] in loop() }
        thread.name = "metronome-\(device)"
        thread.start()
    }

    deinit {
        dnnl_stream_destroy(stream)
        free(scratchpad)
    }

    /// Ends the thread and waits until it has.
    func stop() {
        stopping = true
        wake.post()
        exited.wait()
    }

    /// Moves the worker to other cores (applied before its next kernels).
    func move(to cores: [Int]) { self.cores = cores }

    /// Starts `kernels` on the worker with the caller's scheduling policy and priority.
    func start(_ kernels: Range<Int>, policy: Int32, priority: sched_param) {
        work = kernels
        self.policy = policy
        self.priority = priority
        wake.post()
    }

    /// Waits for the kernels handed over by ``start(_:policy:priority:)``.
    func join() throws {
        finished.wait()
        if let f = failure {
            failure = nil
            throw f
        }
    }

    private func loop() {
        while true {
            wake.wait()
            if stopping { break }
            prepareThread()
            do {
                try executor.runKernels(work, on: stream)
            } catch {
                failure = error
            }
            finished.post()
        }
        exited.signal()
    }

    private func prepareThread() {
        if policy != appliedPolicy || priority.sched_priority != appliedPriority {
            var p = priority
            if pthread_setschedparam(pthread_self(), policy, &p) == 0 {
                appliedPolicy = policy
                appliedPriority = priority.sched_priority
            } else if !warnedPriority {
                warnedPriority = true
                FileHandleOutput.warn("warning: the '\(device)' branch thread could not take its caller's scheduling priority")
            }
        }
        omp_set_num_threads(Int32(threads))
        if pinnedCores != cores {
            pinnedCores = cores
            let failures = Affinity.pinTeam(cores, threads: threads)
            if failures > 0 && !warnedPin {
                warnedPin = true
                FileHandleOutput.warn("warning: could not pin \(failures) thread(s) of device '\(device)' to cores \(cores); running unpinned")
            }
        }
    }
}
