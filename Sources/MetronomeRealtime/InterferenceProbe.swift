#if canImport(Glibc)
import Glibc
#endif
import Metronome

/// One timing of the probe's fixed kernel on one core.
public struct ProbeSample: Sendable, Equatable, Codable {
    /// When the kernel started, ns from the run's start.
    public var time: Int64
    public var core: Int
    /// How long the fixed kernel took, ns.
    public var duration: Int64
    /// How late the probe thread woke for this sample, ns: the core was busy with something
    /// above it (priority 55) — another process, the hypervisor — or an interrupt.
    public var lateness: Int64
}

/// A lightweight probe that separates platform slowdowns from a model's own variance: on each
/// of the set's cores, a thread at SCHED_FIFO 55 (above jobs at 50, below the workers'
/// bookkeeping at 60) times a fixed arithmetic kernel of about ``kernelNanoseconds`` every
/// ``period``. Its cost is ``kernelNanoseconds`` / ``period`` of each core (0.1 % by default).
/// The kernel touches no memory beyond registers, so it slows down only when something takes
/// the core from it — a higher-priority process, the hypervisor — or the core itself runs
/// slower (frequency, thermal limits): exactly the interference a task set cannot see coming.
/// Samples go to storage reserved before the run.
final class InterferenceProbe: @unchecked Sendable {
    static let period: UInt64 = 50_000_000
    static let kernelNanoseconds: UInt64 = 50_000

    let cores: [Int]
    let iterations: Int
    /// The kernel's median time when calibrated, ns.
    let baseline: Int64
    /// One buffer per core, written only by that core's thread (no shared array to mutate).
    private let storage: [UnsafeMutablePointer<ProbeSample>]
    private let counts: UnsafeMutablePointer<Int>
    private let capacity: Int
    private var threads: [pthread_t] = []
    private let stopFlag = RealtimeRunner.StopFlag()

    /// Calibrates the kernel to about ``kernelNanoseconds`` on the calling thread.
    init(cores: [Int], expectedDuration: Int64) {
        self.cores = cores
        let cell = UnsafeMutablePointer<Double>.allocate(capacity: 1)
        cell.initialize(to: 1)
        defer { cell.deallocate() }
        var n = 2_000
        var t = Self.time(n, cell)
        while t < 5_000 && n < 1 << 26 { n *= 2; t = Self.time(n, cell) }
        let scaled = max(1, Int(Double(n) * Double(Self.kernelNanoseconds) / Double(max(t, 1))))
        iterations = scaled
        var timings = (0..<21).map { _ in Self.time(scaled, cell) }
        timings.sort()
        baseline = Int64(timings[timings.count / 2])
        let capacity = Int(max(expectedDuration, 0) / Int64(Self.period)) + 16
        self.capacity = capacity
        storage = cores.map { _ in UnsafeMutablePointer<ProbeSample>.allocate(capacity: capacity) }
        counts = .allocate(capacity: cores.count)
        counts.initialize(repeating: 0, count: cores.count)
    }

    deinit {
        storage.forEach { $0.deallocate() }
        counts.deallocate()
    }

    /// The fixed kernel: `n` steps of dependent floating-point arithmetic. It reads its seed
    /// from and writes its result to `cell`, so the compiler can neither drop it nor move it
    /// across the clock reads around it (a function without memory effects could be).
    @inline(never)
    static func kernel(_ n: Int, _ cell: UnsafeMutablePointer<Double>) {
        var x = cell.pointee, y = 0.5
        for i in 0..<n {
            x = x * 0.999_999_9 + y
            y = y * 0.5 + Double(i & 3) * 1e-9
        }
        cell.pointee = x + y
    }

    static func time(_ n: Int, _ cell: UnsafeMutablePointer<Double>) -> UInt64 {
        let t0 = MonotonicClock.now()
        kernel(n, cell)
        return MonotonicClock.now() - t0
    }

    /// Starts one probe thread per core; timestamps count from `origin`.
    func start(origin: UInt64) {
        for (k, core) in cores.enumerated() {
            let stagger = UInt64(k) * Self.period / UInt64(max(cores.count, 1))
            guard let t = RealtimeThread.spawn({ [self] in
                Affinity.pinCurrentThread(to: [core])
                RealtimeThread.makeFIFO(priority: 55)
                var next = origin + stagger
                let buffer = storage[k]
                let cell = UnsafeMutablePointer<Double>.allocate(capacity: 1)
                cell.initialize(to: 1)
                defer { cell.deallocate() }
                while !stopFlag.isSet {
                    RealtimeThread.sleep(untilMonotonic: next)
                    if stopFlag.isSet { break }
                    let t0 = MonotonicClock.now()
                    let late = Int64(t0) - Int64(next)
                    Self.kernel(iterations, cell)
                    let d = MonotonicClock.now() - t0
                    if counts[k] < capacity {
                        (buffer + counts[k]).initialize(to: ProbeSample(time: Int64(t0) - Int64(origin), core: core, duration: Int64(d), lateness: late))
                        counts[k] += 1
                    }
                    next += Self.period
                }
            }) else { continue }
            threads.append(t)
        }
    }

    func stop() -> [ProbeSample] {
        stopFlag.set()
        threads.forEach(RealtimeThread.join)
        threads.removeAll()
        return cores.indices.flatMap { k in Array(UnsafeBufferPointer(start: storage[k], count: counts[k])) }
            .sorted { $0.time < $1.time }
    }
}
