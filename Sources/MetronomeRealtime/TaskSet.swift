import Foundation
import Metronome

/// A set of periodic DNN tasks and how to run them: the input of ``RealtimeRunner`` and
/// ``ScheduleAnalysis``. Build one in code or load it from YAML with ``TaskSet/load(yaml:)``.
public struct TaskSet: Sendable, Equatable {
    public enum Policy: String, Sendable, CaseIterable {
        /// Highest priority first (explicit, or rate-monotonic by default).
        case fixedPriority = "fixed-priority"
        /// Earliest absolute deadline first.
        case edf
        /// Earliest release first; jobs run to completion.
        case fifo
        /// Each task on its own thread; the OS scheduler decides (the baseline).
        case unmanaged
    }

    public enum Preemption: String, Sendable, CaseIterable {
        /// A running job may be preempted at every layer boundary.
        case layer
        /// Jobs run to completion once started.
        case job
    }

    public enum Release: String, Sendable, CaseIterable {
        /// All tasks wait at a barrier; first releases at one common start time (plus offsets).
        case synchronous
        /// Each task starts releasing as soon as it is ready, without waiting for the others.
        case asynchronous
    }

    /// What a job that runs past its execution budget does (checked at layer boundaries).
    public enum OnOverrun: String, Sendable, CaseIterable {
        /// Nothing: the job runs on (the overrun is recorded).
        case `continue`
        /// The job ends at the next layer boundary, without output (recorded as aborted).
        case abort
        /// The job runs on, and the task's following jobs run one width narrower (with `widths`).
        case degrade
    }

    public enum Overrun: String, Sendable, CaseIterable {
        /// A release that happens while the task's previous job still runs is dropped (recorded as a miss).
        case skip
        /// Such releases are kept and run back to back, late.
        case queue
    }

    /// A byte budget for all tasks' model memory (the `memory:` key).
    public struct Memory: Sendable, Equatable {
        /// Bytes that may be resident at once: every task's weights, arenas, scratchpads and
        /// preloaded inputs and outputs (see ``MemoryAccount``).
        public var budget: Int
        /// Where evicted weights are written: a private directory is created inside it (and
        /// removed at exit). nil: inside the system's temporary directory.
        public var swapDirectory: String?

        public init(budget: Int, swapDirectory: String? = nil) {
            self.budget = budget
            self.swapDirectory = swapDirectory
        }
    }

    public struct Task: Sendable, Equatable {
        public var name: String
        /// Zoo name or path to an `.onnx` file; nil for a synthetic task (`wcet` only), which
        /// `analyze` and `simulate` accept and `run` refuses.
        public var model: String?
        /// Declared worst-case execution time, ns: used by the analysis and the simulator
        /// instead of a measurement.
        public var wcet: Int64?
        /// Declared longest non-preemptive region, ns (with `wcet`).
        public var npr: Int64?
        /// Number of equal non-preemptive regions a job of a synthetic task has (with `wcet`).
        public var layers: Int?
        /// Widths the task may run at, narrowest first: each job runs at the widest whose WCET
        /// fits the time left before its deadline (``WidthSelector``). nil: one width.
        public var widths: [Double]?
        /// Declared WCET per width (synthetic tasks with `widths`), narrowest first.
        public var widthWCETs: [Int64]?
        /// Execution budget per job, ns; nil: the analysis's WCET of the job's width.
        public var budget: Int64?
        public var onOverrun: OnOverrun
        /// Width multiplier applied with the slimming transform (nil: the model as it is).
        public var width: Double?
        /// Folding factor (nil: no folding).
        public var fold: Int?
        public var batch: Int
        public var period: Int64
        /// Relative deadline in ns; defaults to the period.
        public var deadline: Int64
        /// Higher runs first; nil means rate-monotonic.
        public var priority: Int?
        /// Cores the task may run on; nil means the set's cores.
        public var cores: [Int]?
        public var threads: Int
        public var overrun: Overrun
        /// Number of distinct preloaded inputs, cycled through by the jobs.
        public var inputs: Int
        /// Delay of the first release after the common start, in ns.
        public var offset: Int64
        /// Whether its weights may be evicted between its jobs under the set's memory budget.
        public var swap: Bool
        /// Declared weight bytes of a synthetic task (`weights`), for the memory analysis; a
        /// model's are taken from its compiled plan.
        public var weightBytes: Int?
        /// Precision of the task's convolutions (`precision: fp32 | bf16 | int8`; int8 takes a quantized QDQ model).
        public var precision: Precision
        /// How a multi-branch model's branches run (`branches: sequential | parallel`): in
        /// parallel, each device the model names gets its share of the job's cores (see
        /// ``DeviceCores/remapped(onto:)``); the job still holds all `threads` cores.
        public var branches: BranchExecution
        /// Labelled images the task's jobs classify (`data: fashion-mnist:test`), instead of
        /// seeded random inputs: each job counts its top-1 and top-5 hits, and the summary gives
        /// the task's accuracy next to its timing.
        public var data: String?

        public init(name: String, model: String? = nil, wcet: Int64? = nil, npr: Int64? = nil, layers: Int? = nil,
                    widths: [Double]? = nil, widthWCETs: [Int64]? = nil, budget: Int64? = nil,
                    onOverrun: OnOverrun = .continue, width: Double? = nil, fold: Int? = nil, batch: Int = 1,
                    period: Int64, deadline: Int64? = nil, priority: Int? = nil, cores: [Int]? = nil,
                    threads: Int = 1, overrun: Overrun = .skip, inputs: Int = 4, offset: Int64 = 0, swap: Bool = false,
                    weightBytes: Int? = nil, precision: Precision = .fp32, branches: BranchExecution = .sequential,
                    data: String? = nil) {
            self.name = name
            self.model = model
            self.wcet = wcet
            self.npr = npr
            self.layers = layers
            self.widths = widths
            self.widthWCETs = widthWCETs
            self.budget = budget
            self.onOverrun = onOverrun
            self.width = width
            self.fold = fold
            self.batch = batch
            self.period = period
            self.deadline = deadline ?? period
            self.priority = priority
            self.cores = cores
            self.threads = threads
            self.overrun = overrun
            self.inputs = inputs
            self.offset = offset
            self.swap = swap
            self.weightBytes = weightBytes
            self.precision = precision
            self.branches = branches
            self.data = data
        }
    }

    /// How the kernels of a multi-branch model run within a job.
    public enum BranchExecution: String, Sendable, CaseIterable {
        /// One after another with the task's threads.
        case sequential
        /// The branches of each stage at once, on the task's cores split among the devices.
        case parallel
    }

    public var name: String
    /// How long releases continue, in ns (nil when `jobs` is given).
    public var duration: Int64?
    /// Releases per task (nil when `duration` is given).
    public var jobs: Int?
    public var policy: Policy
    public var preemption: Preemption
    /// k of the k-exclusion lock every job (or, with layer preemption, every layer) holds; nil: no lock.
    public var lockK: Int?
    public var release: Release
    public var cores: [Int]
    public var tasks: [Task]
    /// The memory budget, if the set has one.
    public var memory: Memory?

    public init(name: String, duration: Int64? = nil, jobs: Int? = nil, policy: Policy = .fixedPriority,
                preemption: Preemption = .layer, lockK: Int? = nil, release: Release = .synchronous,
                cores: [Int]? = nil, tasks: [Task], memory: Memory? = nil) {
        self.name = name
        self.duration = duration
        self.jobs = jobs
        self.policy = policy
        self.preemption = preemption
        self.lockK = lockK
        self.release = release
        self.cores = cores ?? Affinity.availableCores()
        self.tasks = tasks
        self.memory = memory
    }

    /// The most non-preemptive regions a synthetic job may declare (`layers`, or wcet / npr).
    public static let maxRegions = 100_000

    /// Whether every task declares its WCET, so the set can be analysed and simulated
    /// without running any model.
    public var isSynthetic: Bool { tasks.allSatisfy { $0.wcet != nil || $0.widthWCETs != nil } }

    /// The cores task `i` may use.
    public func cores(of i: Int) -> [Int] { tasks[i].cores ?? cores }

    /// Effective fixed priorities (higher runs first): explicit values, otherwise rate-monotonic
    /// (shorter period, then shorter deadline, then earlier in the file, ranks higher).
    public var priorities: [Int] {
        if tasks.allSatisfy({ $0.priority != nil }) { return tasks.map { $0.priority! } }
        let order = tasks.indices.sorted {
            (tasks[$0].period, tasks[$0].deadline, $0) < (tasks[$1].period, tasks[$1].deadline, $1)
        }
        var rank = Array(repeating: 0, count: tasks.count)
        for (r, i) in order.enumerated() { rank[i] = tasks.count - r }
        return tasks.indices.map { tasks[$0].priority ?? rank[$0] }
    }

    /// Checks values that YAML parsing cannot: uniqueness, ranges, cores on this machine.
    /// Errors name the offending key.
    public func validate(availableCores: [Int] = Affinity.availableCores()) throws {
        func fail(_ path: String, _ message: String) -> TaskSetError { TaskSetError(path: path, message: message) }
        guard !name.isEmpty else { throw fail("name", "must not be empty") }
        switch (duration, jobs) {
        case (nil, nil): throw fail("duration", "give either duration or jobs")
        case (.some, .some): throw fail("jobs", "give either duration or jobs, not both")
        case (let d?, nil) where d <= 0: throw fail("duration", "must be positive")
        case (nil, let j?) where j <= 0: throw fail("jobs", "must be at least 1")
        default: break
        }
        if let k = lockK, k < 1 { throw fail("lock.k", "must be at least 1, got \(k)") }
        guard !tasks.isEmpty else { throw fail("tasks", "the task set has no tasks") }
        if let m = memory {
            guard m.budget > 0 else { throw fail("memory.budget", "must be positive, got \(m.budget) bytes") }
            if let d = m.swapDirectory {
                guard !d.isEmpty else { throw fail("memory.swap_dir", "must not be empty") }
                var isDir: ObjCBool = false
                guard FileManager.default.fileExists(atPath: d, isDirectory: &isDir), isDir.boolValue else {
                    throw fail("memory.swap_dir", "'\(d)' is not an existing directory")
                }
                guard FileManager.default.isWritableFile(atPath: d) else {
                    throw fail("memory.swap_dir", "'\(d)' is not writable")
                }
            }
        }
        try checkCores(cores, path: "cores", available: availableCores)
        var names = Set<String>()
        for (i, t) in tasks.enumerated() {
            let p = "tasks[\(i)]"
            guard !t.name.isEmpty else { throw fail("\(p).name", "must not be empty") }
            guard names.insert(t.name).inserted else { throw fail("\(p).name", "duplicate task name '\(t.name)'") }
            switch (t.model, t.wcet ?? t.widthWCETs?.first) {
            case (nil, nil): throw fail("\(p).model", "give a model, or a wcet for a synthetic task")
            case (let m?, _) where m.isEmpty: throw fail("\(p).model", "must not be empty")
            default: break
            }
            if let c = t.wcet, c <= 0 { throw fail("\(p).wcet", "must be positive") }
            let declared = t.wcet != nil || t.widthWCETs != nil
            if !declared && t.npr != nil { throw fail("\(p).npr", "is only used with wcet") }
            if !declared && t.layers != nil { throw fail("\(p).layers", "is only used with wcet") }
            if t.npr != nil && t.layers != nil { throw fail("\(p).layers", "give npr or layers, not both") }
            if let q = t.npr, let c = t.wcet, !(q > 0 && q <= c) {
                throw fail("\(p).npr", "must be positive and at most the wcet (\(DurationText.format(c)))")
            }
            if let l = t.layers, l < 1 { throw fail("\(p).layers", "must be at least 1, got \(l)") }
            // A job is simulated region by region: keep the count to what a network can have.
            if let l = t.layers, l > Self.maxRegions { throw fail("\(p).layers", "at most \(Self.maxRegions), got \(l)") }
            if let q = t.npr, let c = (t.widthWCETs?.max() ?? t.wcet), c / q > Int64(Self.maxRegions) {
                throw fail("\(p).npr", "makes \(c / q) regions per job; at most \(Self.maxRegions) (npr ≥ wcet / \(Self.maxRegions))")
            }
            if let l = t.layers, let c = t.wcet, Int64(l) > c { throw fail("\(p).layers", "more layers than nanoseconds of wcet") }
            guard t.batch >= 1 else { throw fail("\(p).batch", "must be at least 1, got \(t.batch)") }
            guard t.period > 0 else { throw fail("\(p).period", "must be positive") }
            guard t.deadline > 0 else { throw fail("\(p).deadline", "must be positive") }
            guard t.offset >= 0 else { throw fail("\(p).offset", "must not be negative") }
            guard t.threads >= 1 else { throw fail("\(p).threads", "must be at least 1, got \(t.threads)") }
            guard t.inputs >= 1 else { throw fail("\(p).inputs", "must be at least 1, got \(t.inputs)") }
            if let w = t.width, !(w > 0 && w <= 1) { throw fail("\(p).width", "must be in (0, 1], got \(w)") }
            if let ws = t.widths {
                guard !ws.isEmpty else { throw fail("\(p).widths", "must list at least one width") }
                if let w = ws.first(where: { !($0 > 0 && $0 <= 1) }) { throw fail("\(p).widths", "must be in (0, 1], got \(w)") }
                guard zip(ws, ws.dropFirst()).allSatisfy({ $0 < $1 }) else {
                    throw fail("\(p).widths", "must be listed narrowest first, each once, got \(ws)")
                }
                if t.width != nil { throw fail("\(p).width", "give width or widths, not both") }
                if t.wcet != nil && t.widthWCETs == nil { throw fail("\(p).wcet", "with widths, give one wcet per width as a list") }
            }
            if let cs = t.widthWCETs {
                guard let ws = t.widths else { throw fail("\(p).wcet", "a list of wcets needs widths") }
                guard cs.count == ws.count else { throw fail("\(p).wcet", "\(cs.count) wcets for \(ws.count) widths") }
                guard cs.allSatisfy({ $0 > 0 }) else { throw fail("\(p).wcet", "must be positive") }
            }
            if let b = t.budget, b <= 0 { throw fail("\(p).budget", "must be positive") }
            if t.onOverrun == .degrade && (t.widths?.count ?? 1) < 2 {
                throw fail("\(p).on_overrun", "degrade needs at least two widths to degrade to")
            }
            if let f = t.fold, f < 1 { throw fail("\(p).fold", "must be at least 1, got \(f)") }
            if let f = t.fold, t.batch % f != 0 {
                throw fail("\(p).fold", "batch \(t.batch) must be a multiple of the fold factor \(f)")
            }
            if let c = t.cores {
                try checkCores(c, path: "\(p).cores", available: availableCores)
                if let outside = c.first(where: { !cores.contains($0) }) {
                    throw fail("\(p).cores", "core \(outside) is not among the task set's cores \(cores)")
                }
            }
            if t.swap && memory == nil {
                throw fail("\(p).swap", "needs a memory budget (the set's memory.budget key)")
            }
            if let w = t.weightBytes {
                guard t.model == nil else { throw fail("\(p).weights", "is only for synthetic tasks: a model's weights are taken from its compiled plan") }
                guard w > 0 else { throw fail("\(p).weights", "must be positive, got \(w) bytes") }
            }
            if t.precision != .fp32 && t.model == nil {
                throw fail("\(p).precision", "a synthetic task (wcet only) runs nothing; precision applies to a model")
            }
            if t.data != nil && t.model == nil {
                throw fail("\(p).data", "a synthetic task (wcet only) runs nothing; data applies to a model")
            }
            if t.branches == .parallel && t.model == nil {
                throw fail("\(p).branches", "a synthetic task (wcet only) runs nothing; branches applies to a multi-branch model")
            }
            if t.swap && t.model == nil && t.weightBytes == nil {
                throw fail("\(p).swap", "a synthetic task (wcet only) needs `weights` (its weight bytes) to be swapped")
            }
            let usable = cores(of: i).count
            guard t.threads <= usable else {
                throw fail("\(p).threads", "\(t.threads) threads need at least as many cores, but the task may use \(usable)")
            }
        }
    }

    private func checkCores(_ list: [Int], path: String, available: [Int]) throws {
        guard !list.isEmpty else { throw TaskSetError(path: path, message: "must list at least one core") }
        guard Set(list).count == list.count else { throw TaskSetError(path: path, message: "lists a core twice: \(list)") }
        for c in list where !available.contains(c) {
            throw TaskSetError(path: path, message: "core \(c) is not on this machine (available: \(available.map(String.init).joined(separator: ",")))")
        }
    }
}

/// A problem in a task set, with the path of the key at fault (e.g. `tasks[1].period`).
public struct TaskSetError: Error, CustomStringConvertible, Equatable, Sendable {
    public var path: String
    public var message: String

    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }

    public var description: String { path.isEmpty ? "task set: \(message)" : "task set: \(path): \(message)" }
}

/// Durations written with a unit: `33ms`, `1.5s`, `250us` (or `µs`), `100ns`.
public enum DurationText {
    public static func parse(_ text: String) -> Int64? {
        let t = text.trimmingCharacters(in: .whitespaces)
        let units: [(String, Double)] = [("ns", 1), ("us", 1e3), ("µs", 1e3), ("ms", 1e6), ("s", 1e9)]
        for (suffix, scale) in units where t.hasSuffix(suffix) {
            let number = t.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)
            guard let v = Double(number), v.isFinite else { return nil }
            let ns = (v * scale).rounded()
            guard abs(ns) < 9e18 else { return nil }
            return Int64(ns)
        }
        return nil
    }

    /// A short human form: `33ms`, `1.5s`, `250us`.
    public static func format(_ ns: Int64) -> String {
        if ns % 1_000_000_000 == 0 { return "\(ns / 1_000_000_000)s" }
        if ns % 1_000_000 == 0 { return "\(ns / 1_000_000)ms" }
        if ns % 1_000 == 0 { return "\(ns / 1_000)us" }
        return "\(ns)ns"
    }
}
