import Foundation
import Metronome

/// One job of one task, as recorded by the runner. Times are nanoseconds from the
/// common start of the run.
public struct JobRecord: Sendable, Equatable {
    public var task: Int
    public var job: Int
    /// The job's release: start + offset + job·period. Response times and deadlines count from here.
    public var release: Int64
    /// When the task's thread observed the release (woke from its absolute-time sleep);
    /// nil when the release happened while the previous job still ran.
    public var wakeup: Int64?
    public var start: Int64?
    public var end: Int64?
    public var lockWait: Int64
    public var preemptions: Int
    /// Whether the job finished by release + deadline (false for skipped releases).
    public var deadlineMet: Bool
    /// Whether its outputs matched the reference interpreter's outputs for the same input,
    /// to ``PreparedTask/outputTolerance`` (false for skipped releases).
    public var outputOK: Bool
    /// Time actually computing: end − start less preempted time and lock waits after start.
    public var execution: Int64
    /// First lock acquisition and last release (per-job lock span), if the set has a lock.
    public var lockAcquired: Int64?
    public var lockReleased: Int64?
    /// The width the job ran at (tasks with `widths`; nil otherwise).
    public var width: Double? = nil
    /// Ended at a layer boundary by `on_overrun: abort`, without output (counted as a miss).
    public var aborted = false
    /// Executed past its budget.
    public var overran = false
    /// Time the job waited for its weights (memory budget with swapping), and the duration and
    /// bytes of the swap-ins that brought them in since the task's previous job.
    public var swapWait: Int64 = 0
    /// One-thread jobs: the worker thread's CPU time between the job's start and end (nil for
    /// multi-threaded jobs, whose other threads it does not see). Execution minus this is
    /// time the worker was runnable on its granted core but something else ran there.
    public var cpu: Int64? = nil
    public var swapIn: Int64 = 0
    public var swapInBytes = 0
    /// Tasks with `data`: the images the job classified and how many were right (top-1, top-5).
    public var labelledImages = 0
    public var correctTop1 = 0
    public var correctTop5 = 0
    public var skipped: Bool { start == nil }
    public var response: Int64? { end.map { $0 - release } }

    /// Public so that results can be built by hand (renderers and their tests).
    public init(task: Int, job: Int, release: Int64, wakeup: Int64?, start: Int64?, end: Int64?, lockWait: Int64,
                preemptions: Int, deadlineMet: Bool, outputOK: Bool, execution: Int64, lockAcquired: Int64?,
                lockReleased: Int64?, width: Double? = nil, aborted: Bool = false, overran: Bool = false) {
        self.task = task
        self.job = job
        self.release = release
        self.wakeup = wakeup
        self.start = start
        self.end = end
        self.lockWait = lockWait
        self.preemptions = preemptions
        self.deadlineMet = deadlineMet
        self.outputOK = outputOK
        self.execution = execution
        self.lockAcquired = lockAcquired
        self.lockReleased = lockReleased
        self.width = width
        self.aborted = aborted
        self.overran = overran
    }
}

/// Timing of one task measured alone, before the run.
public struct TimingProfile: Sendable, Equatable {
    /// Whole-job execution times, ns.
    public var jobSamples: [UInt64]
    /// Longest single layer (kernel) observed in any timing run: the longest non-preemptive
    /// region with layer preemption.
    public var maxLayer: UInt64
    /// Non-preemptive regions per job: the plan's kernel count (1 for a job run whole).
    public var regions: Int
    public var maxJob: UInt64 { jobSamples.max() ?? 0 }

    public init(jobSamples: [UInt64], maxLayer: UInt64, regions: Int = 1) {
        self.jobSamples = jobSamples
        self.maxLayer = maxLayer
        self.regions = max(1, regions)
    }
}

/// A task ready to run: compiled plan, executor, preloaded inputs and reference outputs.
public final class PreparedTask: @unchecked Sendable {
    /// Largest accepted max |diff| / max |ref| between a job's outputs and the reference
    /// interpreter's. The two compute the same sums in different orders (oneDNN blocks and
    /// vectorises its reductions, fuses batch norm into the weights and activations into
    /// the convolutions), so they differ by float rounding only: 5e-7 to 6e-6 relative on the
    /// demo's four networks at 224×224 (the engine's network tests check the same pair to 1e-4), while
    /// a wrong kernel, a corrupted buffer or a job reading another job's activations changes
    /// outputs by orders of magnitude more.
    public static let outputTolerance: Float = 1e-4

    /// The tolerance this task's jobs are checked with: ``outputTolerance`` in fp32; with a
    /// reduced precision, 3× the largest error its plan showed against the reference
    /// interpreter on the preloaded inputs when it was prepared (and at least
    /// ``outputTolerance``). Rounding repeats exactly from job to job on the same input; a
    /// corrupted buffer or evicted weights change outputs far more.
    public internal(set) var tolerance: Float = outputTolerance

    public let spec: TaskSet.Task
    public let plan: Plan
    let executor: Executor
    /// One buffer set per preloaded input; every job writes into the first set's outputs.
    let buffers: [PlanBuffers]
    /// The reference interpreter's outputs (``ReferenceRunner`` on the unoptimised lowered
    /// program), one list per preloaded input, in the order of the plan's outputs.
    public internal(set) var expected: [[[Float]]]
    /// Execution times measured before the run (see ``RealtimeRunner/TimingMode``).
    public internal(set) var timing: TimingProfile
    /// Tasks with `data`: each preloaded input's labels (one per image); empty otherwise.
    public internal(set) var labels: [[Int32]] = []
    /// Pointer lists built once, so a job passes them without allocating.
    let inputPointers: [[UnsafePointer<Float>]]
    let outputPointers: [UnsafeMutablePointer<Float>]
    /// For a task with `widths`: the narrower widths' own prepared tasks, narrowest first
    /// (this one is the widest). Every variant is compiled, checked and timed up front.
    public internal(set) var narrower: [PreparedTask] = []

    /// Width index `w` of this task (narrowest first; the last is this one).
    public func variant(_ w: Int) -> PreparedTask { w < narrower.count ? narrower[w] : self }
    public var variantCount: Int { narrower.count + 1 }

    init(spec: TaskSet.Task, plan: Plan, executor: Executor, buffers: [PlanBuffers], timing: TimingProfile) {
        self.spec = spec
        self.plan = plan
        self.executor = executor
        self.buffers = buffers
        self.expected = []
        self.timing = timing
        inputPointers = buffers.map(\.inputPointers)
        outputPointers = buffers[0].outputPointers
    }

    var outputs: [UnsafeMutableBufferPointer<Float>] { buffers[0].outputs }

    /// The preloaded input `index` (jobs cycle through them), in the order of the plan's inputs.
    public func preloadedInput(_ index: Int) throws -> [Tensor] {
        try zip(plan.program.inputs, buffers[index].inputs).map { id, b in
            try Tensor(shape: plan.program.shape(id), scalars: Array(b.prefix(plan.program.values[id].count)))
        }
    }

    /// Runs input `index` and reports whether every output matches its reference to
    /// ``outputTolerance`` (max |diff| / max |ref|), without allocating.
    func runAndCheck(_ index: Int, boundary: ((Int) throws -> Void)?) throws -> Bool {
        try executor.run(inputs: inputPointers[index], outputs: outputPointers, boundary: boundary)
        return outputsMatch(index)
    }

    func outputsMatch(_ index: Int) -> Bool {
        // With `data`, only the first inputs have reference outputs (the interpreter is slow);
        // jobs on the others are counted for accuracy, not checked.
        guard index < expected.count else { return true }
        for (o, ref) in zip(outputs, expected[index]) {
            var maxDiff: Float = 0, maxRef: Float = 0
            for i in 0..<ref.count {
                let d = abs(o[i] - ref[i])
                if d.isNaN { return false }
                maxDiff = max(maxDiff, d)
                maxRef = max(maxRef, abs(ref[i]))
            }
            if maxDiff > tolerance * max(maxRef, 1e-20) { return false }
        }
        return true
    }
}

extension PreparedTask {
    /// For a task with `data`: how many of input `index`'s images the job's first output
    /// ranks right (top-1 and top-5), without allocating. The output holds one row of K
    /// scores per image (a folded model's `[N/f, f·K]` is the same memory as `[N, K]`).
    func countCorrect(_ index: Int) -> (images: Int, top1: Int, top5: Int) {
        guard index < labels.count, let out = outputs.first else { return (0, 0, 0) }
        let images = labels[index].count
        guard images > 0, out.count % images == 0 else { return (0, 0, 0) }
        let k = out.count / images
        var top1 = 0, top5 = 0
        for i in 0..<images {
            let row = out.baseAddress! + i * k, label = Int(labels[index][i])
            guard label < k else { continue }
            let rank = Ranking.rank(of: label, in: row, classes: k)
            if rank == 0 { top1 += 1 }
            if rank < 5 { top5 += 1 }
        }
        return (images, top1, top5)
    }
}

/// Labelled images for tasks with `data`, as the caller reads them (`metronome run` reads
/// Fashion-MNIST, `.npy` pairs and image folders): `count` images of `shape` and their labels.
public struct LabelledData: Sendable {
    public var shape: [Int]
    public var pixels: [Float]
    public var labels: [Int32]

    public init(shape: [Int], pixels: [Float], labels: [Int32]) {
        self.shape = shape
        self.pixels = pixels
        self.labels = labels
    }
}

/// Compiles a task set's models, preloads inputs, records reference outputs and measures
/// each task alone; then runs the set.
public enum RealtimeRunner {
    /// Turns a task's model reference (zoo name, ONNX path, width, fold) into a graph.
    public typealias ModelLoader = @Sendable (TaskSet.Task) throws -> Graph

    /// How execution times are measured before a run.
    public enum TimingMode: String, Sendable, CaseIterable {
        /// Each task alone on the machine.
        case isolated
        /// Each task while tasks of other partitions run back to back on the remaining
        /// cores, so that the estimate includes interference through shared caches and memory.
        case contended
    }

    /// Prepares every task: compiles its model, preloads inputs, records reference outputs,
    /// then measures `timingRuns` runs of each task (pinned to its first cores, at the jobs'
    /// real-time priority) for the analysis.
    ///
    /// With a `swapper` (a set with a memory budget), each task is added to it as soon as it is
    /// compiled, so a swappable task's weights are written out and evicted before the next task
    /// is compiled; the set is refused (error naming `memory.budget`, with the numbers) when it
    /// cannot fit, and each task is measured with its weights swapped in.
    /// Reads a task's `data` value into labelled images.
    public typealias DataLoader = @Sendable (String) throws -> LabelledData

    /// How far ahead of "now" each timing run is released (ns): long enough for the thread to
    /// go to sleep and be woken by the timer, as a job is.
    static let timingReleaseLead: UInt64 = 1_000_000

    public static func prepare(_ set: TaskSet, loader: ModelLoader, timingRuns: Int = 10,
                               timing mode: TimingMode = .contended, swapper: WeightSwapper? = nil,
                               data dataLoader: DataLoader? = nil,
                               log: (String) -> Void = { _ in }) throws -> [PreparedTask] {
        try set.validate()
        // Each data set once, however many tasks and widths use it.
        var datasets: [String: LabelledData] = [:]
        for (i, task) in set.tasks.enumerated() {
            guard let spec = task.data, datasets[spec] == nil else { continue }
            guard let dataLoader else { throw TaskSetError(path: "tasks[\(i)].data", message: "no data reader was given to this run") }
            do { datasets[spec] = try dataLoader(spec) } catch {
                throw TaskSetError(path: "tasks[\(i)].data", message: "\(error)")
            }
        }
        // Before compiling anything: a synthetic task cannot run.
        if let i = set.tasks.firstIndex(where: { $0.model == nil }) {
            throw TaskSetError(path: "tasks[\(i)].model", message: "running needs a model; '\(set.tasks[i].name)' is synthetic (wcet only): analyse or simulate it instead")
        }
        var prepared: [PreparedTask] = []
        for (i, task) in set.tasks.enumerated() {
            // One variant per width (narrowest first); the widest is the task's own.
            var variants: [PreparedTask] = []
            for width in task.widths ?? [task.width ?? 1] {
                var spec = task
                if task.widths != nil {
                    spec.width = width
                    spec.widths = nil
                }
                variants.append(try compileVariant(spec, index: i, path: task.widths == nil ? "model" : "widths", log: log, loader: loader,
                                                   cores: set.cores(of: i), data: task.data.flatMap { datasets[$0] }))
            }
            let p = variants.removeLast()
            p.narrower = variants
            prepared.append(p)
            if let swapper {
                let m = TaskMemory(p)
                try swapper.add(task: i, regions: (0..<p.variantCount).map { p.variant($0).plan.weightRegion },
                                swappable: task.swap, otherBytes: m.alwaysResident - (task.swap ? 0 : m.weights))
                // What compiling left behind (graphs, programs, reference runs) goes back to the system.
                ProcessMemory.returnFreedMemory()
            }
        }
        if set.memory != nil {
            let account = MemoryAccount(set, prepared: prepared)
            log(account.text(names: set.tasks.map(\.name)).split(separator: "\n").map { "  " + $0 }.joined(separator: "\n"))
            try account.check()
        }
        // Measure under the run's own conditions: managed jobs run at SCHED_FIFO on the cores
        // the dispatcher grants; unmanaged ones at normal priority on all their cores, where
        // other processes can take the CPU (a WCET measured at FIFO would not cover that).
        let managed = set.policy != .unmanaged
        for (i, main) in prepared.enumerated() {
            let cores = managed ? Array(set.cores(of: i).prefix(main.spec.threads)) : set.cores(of: i)
            for w in 0..<main.variantCount {
                let p = main.variant(w)
                // One round of timing runs per choice of co-runners: each task of another
                // partition leads one round, so the estimate covers the worst neighbour seen.
                let rounds = mode == .contended ? max(1, set.tasks.indices.filter { $0 != i }.count) : 1
                var samples: [UInt64] = []
                var layerMaxima: [UInt64] = []
                var remeasured = 0
                var neighbours = Set<Int>()
                for round in 0..<rounds {
                    var coRunners = mode == .contended ? coRunners(for: i, measuredOn: cores, set: set, rotation: round) : []
                    // Under a budget, the measured task's weights come first; a co-runner whose
                    // weights do not fit beside them is left out of this round.
                    var held: [Int] = []
                    defer { held.forEach { swapper?.release($0) } }
                    if let swapper {
                        var stats = WeightSwapper.AcquireStats()
                        try swapper.acquire(i, key: SchedulingKey(Int64.min, Int64(i)), stats: &stats)
                        held.append(i)
                        coRunners = try coRunners.filter { j, _ in
                            guard try swapper.tryAcquire(j) else { return false }
                            held.append(j)
                            return true
                        }
                    }
                    neighbours.formUnion(coRunners.map(\.task))
                    let stop = StopFlag()
                    var background: [pthread_t] = []
                    for (j, jCores) in coRunners {
                        let q = prepared[j]
                        guard let t = RealtimeThread.spawn({
                            if managed { RealtimeThread.makeFIFO(priority: 50) }
                            q.executor.pin(to: jCores)
                            var k = 0
                            while !stop.isSet {
                                _ = try? q.executor.run(inputs: q.inputPointers[k % q.inputPointers.count], outputs: q.outputPointers)
                                k += 1
                            }
                        }) else { throw MetronomeError.backend("cannot start a thread") }
                        background.append(t)
                    }
                    // Swapping goes on meanwhile (on its own cores), as it will during the run.
                    if let swapper, set.tasks.contains(where: \.swap) {
                        guard let t = RealtimeThread.spawn({ try? swapper.exercise(except: i, stop: { stop.isSet }) }) else {
                            throw MetronomeError.backend("cannot start a thread")
                        }
                        background.append(t)
                    }
                    defer {
                        stop.set()
                        background.forEach(RealtimeThread.join)
                    }
                    try onScratchThread {
                        if managed { RealtimeThread.makeFIFO(priority: 50) }
                        p.executor.pin(to: cores)
                        let runs = max(timingRuns, 1)
                        var r = 0, attempts = 0
                        while r < runs {
                            attempts += 1
                            // Released like a job: the thread sleeps until an absolute time
                            // and the sample runs from that time, so the WCET covers the
                            // wake-up latency every sleeping job pays before its first layer
                            // (0.1 ms and more on VMs whose idle cores sleep deeply), which
                            // the analysis does not model separately.
                            let t0 = MonotonicClock.now() + Self.timingReleaseLead
                            let cpu0 = ThreadCPUClock.now()
                            RealtimeThread.sleep(untilMonotonic: t0)
                            var last = MonotonicClock.now()
                            var longest: UInt64 = 0
                            try p.executor.run(inputs: p.inputPointers[r % p.inputPointers.count], outputs: p.outputPointers) { _ in
                                let now = MonotonicClock.now()
                                longest = max(longest, now - last)
                                last = now
                            }
                            let end = MonotonicClock.now()
                            // A one-thread run whose thread was off its core (woken late, or
                            // held off mid-run) for a millisecond or more measured the platform,
                            // not the task: it is measured again (at most `runs` extra times),
                            // so that one host stall does not set the WCET and flip the
                            // verdict. The run itself checks that premise (stalled and
                            // displaced jobs, InterferenceDetector).
                            let off = Int64(end - t0) - Int64(ThreadCPUClock.now() - cpu0)
                            if main.spec.threads == 1, attempts <= 2 * runs, off >= InterferenceDetector.latenessThreshold {
                                remeasured += 1
                                continue
                            }
                            layerMaxima.append(max(longest, end - last))
                            samples.append(end - t0)
                            r += 1
                        }
                    }
                }
                // Blocking is the longest non-preemptive region ever observed (not a percentile):
                // the analysis must cover the worst one.
                p.timing = TimingProfile(jobSamples: samples, maxLayer: layerMaxima.max() ?? 0, regions: p.plan.kernelCount)
                let with = neighbours.isEmpty ? "alone" : "beside " + neighbours.sorted().map { set.tasks[$0].name }.joined(separator: ", ")
                let label = main.spec.widths.map { "\(main.spec.name)@\($0[w])" } ?? main.spec.name
                log(String(format: "  %@: %@ batch %d, %d thread(s), max %.2f ms (%@), longest layer %.2f ms%@",
                           label, main.spec.model ?? "", main.spec.batch, main.spec.threads,
                           Double(p.timing.maxJob) / 1e6, with, Double(p.timing.maxLayer) / 1e6,
                           remeasured > 0 ? ", \(remeasured) run(s) off the core for 1 ms or more measured again" : ""))
            }
        }
        return prepared
    }

    /// Compiles one variant of task `i` (the task itself, or one of its widths), preloads its
    /// inputs (the same for every width: seeded by the task) and computes its reference outputs.
    static func compileVariant(_ task: TaskSet.Task, index i: Int, path key: String, log: (String) -> Void,
                               loader: ModelLoader, cores: [Int], data: LabelledData? = nil) throws -> PreparedTask {
        let path = "tasks[\(i)].\(key)"
        let graph: Graph
        do { graph = try loader(task) } catch {
            throw TaskSetError(path: path, message: "\(error)")
        }
        let program: Program
        let plan: Plan
        do {
            program = try Program(lowering: graph, batch: task.batch / (task.fold ?? 1))
            let devices = try branchDevices(task, index: i, graph: graph, cores: cores)
            plan = try Plan.compile(program, options: CompileOptions(threads: task.threads, precision: task.precision, devices: devices))
        } catch let error as TaskSetError {
            throw error
        } catch {
            throw TaskSetError(path: path, message: "cannot compile '\(task.model ?? "")': \(error)")
        }
        let executor = try Executor(plan: plan)
        var generator = SplitMix64(seed: 1000 + UInt64(i))
        var buffers: [PlanBuffers]
        var labels: [[Int32]] = []
        if let data {
            (buffers, labels) = try labelledInputs(data, task: task, index: i, plan: plan, generator: &generator)
        } else {
            buffers = (0..<task.inputs).map { _ in PlanBuffers(plan: plan, generator: &generator) }
        }
        let p = PreparedTask(spec: task, plan: plan, executor: executor, buffers: buffers,
                             timing: TimingProfile(jobSamples: [], maxLayer: 0))
        p.labels = labels
        do {
            let t0 = MonotonicClock.now()
            // With data, the first `inputs` batches are checked against the interpreter.
            p.expected = try referenceOutputs(program: program, plan: plan, buffers: Array(buffers.prefix(task.inputs)))
            log(String(format: "  %@%@: reference outputs for %d input(s) in %.1f s", task.name,
                       task.width.map { "@\($0)" } ?? "", task.inputs, Double(MonotonicClock.now() - t0) / 1e9))
        } catch {
            throw TaskSetError(path: path, message: "reference outputs of '\(task.model ?? "")': \(error)")
        }
        if task.precision != .fp32 {
            var worst: Float = 0
            for k in 0..<task.inputs {
                try p.executor.run(inputs: p.inputPointers[k], outputs: p.outputPointers)
                for (o, ref) in zip(p.outputs, p.expected[k]) {
                    let scale = ref.map(abs).max() ?? 0
                    let diff = zip(o, ref).map { abs($0 - $1) }.max() ?? 0
                    worst = max(worst, diff / max(scale, 1e-20))
                }
            }
            p.tolerance = max(PreparedTask.outputTolerance, 3 * worst)
            log(String(format: "  %@: %@ outputs within %.2e of the reference interpreter's; jobs are checked to %.2e",
                       task.name, task.precision.rawValue, worst, p.tolerance))
        }
        return p
    }

    /// One preloaded input per full batch of `data` (its images in order, a folded model's
    /// groups of f stacked along channels as `fold` packs them), and each batch's labels.
    static func labelledInputs(_ data: LabelledData, task: TaskSet.Task, index i: Int, plan: Plan,
                               generator: inout SplitMix64) throws -> ([PlanBuffers], [[Int32]]) {
        let shape = plan.program.shape(plan.program.inputs[0])
        let f = task.fold ?? 1
        let perImage = data.shape.reduce(1, *)
        guard plan.program.inputs.count == 1, shape.count == data.shape.count + 1,
              Array(shape.dropFirst()) == [data.shape[0] * f] + data.shape.dropFirst() else {
            throw TaskSetError(path: "tasks[\(i)].data", message: "'\(task.model ?? "")' takes \(shape) per job; the data's images are \(data.shape)")
        }
        let batches = data.labels.count / task.batch
        guard batches >= 1 else {
            throw TaskSetError(path: "tasks[\(i)].data", message: "has \(data.labels.count) images, fewer than one batch of \(task.batch)")
        }
        var buffers: [PlanBuffers] = [], labels: [[Int32]] = []
        for b in 0..<batches {
            let p = PlanBuffers(plan: plan, generator: &generator)
            let start = b * task.batch * perImage
            // Row-major NCHW: stacking f images along channels keeps them in order in memory.
            data.pixels.withUnsafeBufferPointer { src in
                p.inputs[0].baseAddress!.update(from: src.baseAddress! + start, count: task.batch * perImage)
            }
            buffers.append(p)
            labels.append(Array(data.labels[(b * task.batch)..<((b + 1) * task.batch)]))
        }
        return (buffers, labels)
    }

    /// With `branches: parallel`, the model's devices over the first `threads` of the task's
    /// cores (jobs move them to the cores they are granted); nil otherwise.
    static func branchDevices(_ task: TaskSet.Task, index i: Int, graph: Graph, cores: [Int]) throws -> DeviceCores? {
        guard task.branches == .parallel else { return nil }
        let names = BranchPlacement.devices(of: graph.nodes.map(\.name))
        guard !names.isEmpty else {
            throw TaskSetError(path: "tasks[\(i)].branches", message: "'\(task.model ?? "")' has no branches (no placements in its node names; build it with `metronome branch`)")
        }
        guard task.threads >= names.count else {
            throw TaskSetError(path: "tasks[\(i)].threads", message: "branches: parallel gives each of the model's \(names.count) devices (\(names.joined(separator: ", "))) at least one core; threads must be at least \(names.count), got \(task.threads)")
        }
        let mine = Array(cores.prefix(task.threads))
        return DeviceCores(names.map { DeviceCores.Group(device: $0, cores: []) }).remapped(onto: mine)
    }

    /// What every job of a task is checked against: the reference interpreter's outputs on
    /// each preloaded input. The interpreter runs the *unoptimised* lowered program with plain
    /// Swift kernels, so it shares neither oneDNN nor the optimisation passes with the engine
    /// under test; comparing with the engine's own first run would only detect
    /// nondeterminism. Inputs are matched to the plan's by name, and the inputs run in
    /// parallel (one per available core) because the interpreter is slow (seconds for a
    /// ResNet-50 at 224×224).
    static func referenceOutputs(program: Program, plan: Plan, buffers: [PlanBuffers]) throws -> [[[Float]]] {
        let planInputs = Dictionary(uniqueKeysWithValues: plan.inputNames.enumerated().map { ($1, $0) })
        let names = program.inputs.map { program.values[$0].name }
        guard names.allSatisfy({ planInputs[$0] != nil }), program.outputs.count == plan.outputNames.count else {
            throw MetronomeError.invalidGraph("the compiled plan's inputs or outputs do not match the lowered program's")
        }
        let outputOrder = try plan.outputNames.map { name in
            guard let k = program.outputs.firstIndex(where: { program.values[$0].name == name }) else {
                throw MetronomeError.invalidGraph("plan output \(name) is not an output of the lowered program")
            }
            return k
        }
        for (j, k) in outputOrder.enumerated() where program.values[program.outputs[k]].count != plan.program.values[plan.program.outputs[j]].count {
            throw MetronomeError.invalidGraph("output \(plan.outputNames[j]) has different sizes in the plan and the lowered program")
        }
        let feeds: [[Tensor]] = try buffers.map { b in
            try zip(program.inputs, names).map { id, name in
                try Tensor(shape: program.shape(id), scalars: Array(b.inputs[planInputs[name]!].prefix(program.values[id].count)))
            }
        }
        final class Results: @unchecked Sendable {
            let monitor = Monitor()
            var outputs: [[[Float]]?]
            var error: Error?
            init(_ n: Int) { outputs = Array(repeating: nil, count: n) }
        }
        let results = Results(feeds.count)
        let runner = ReferenceRunner(program: program)
        DispatchQueue.concurrentPerform(iterations: feeds.count) { k in
            do {
                let out = try runner.run(feeds[k])
                results.monitor.withLock { results.outputs[k] = outputOrder.map { out[$0].scalars } }
            } catch {
                results.monitor.withLock { results.error = error }
            }
        }
        if let error = results.error { throw error }
        return results.outputs.map { $0! }
    }

    /// Tasks that can run beside task `i` while it is measured on `cores`: greedily, one task
    /// per group of remaining cores, never a task of task i's own partition. `rotation` starts
    /// the greedy choice at another task, so that rounds see different neighbours.
    public static func coRunners(for i: Int, measuredOn cores: [Int], set: TaskSet,
                                 rotation: Int = 0) -> [(task: Int, cores: [Int])] {
        var used = Set(cores)
        var chosen: [(task: Int, cores: [Int])] = []
        let mine = Set(set.cores(of: i))
        let others = set.tasks.indices.filter { $0 != i }
        let order = others.isEmpty ? [] : (0..<others.count).map { others[($0 + rotation) % others.count] }
        for j in order {
            let allowed = set.cores(of: j)
            // Tasks of the same partition never run at the same time as task i's job on its cores.
            if Set(allowed) == mine && allowed.count <= set.tasks[i].threads { continue }
            let free = allowed.filter { !used.contains($0) }
            guard free.count >= set.tasks[j].threads else { continue }
            let take = Array(free.prefix(set.tasks[j].threads))
            used.formUnion(take)
            chosen.append((j, take))
        }
        return chosen
    }

    /// Runs `body` on a new thread (so that pinning and priority changes stay off the caller's
    /// thread) and rethrows its error.
    static func onScratchThread(_ body: @escaping () throws -> Void) throws {
        final class Box: @unchecked Sendable {
            let body: () throws -> Void
            var error: Error?
            init(_ body: @escaping () throws -> Void) { self.body = body }
        }
        let box = Box(body)
        guard let thread = RealtimeThread.spawn({
            do { try box.body() } catch { box.error = error }
        }) else { throw MetronomeError.backend("cannot start a thread") }
        RealtimeThread.join(thread)
        if let error = box.error { throw error }
    }

    /// A flag one thread sets and others poll.
    final class StopFlag: @unchecked Sendable {
        private let monitor = Monitor()
        private var value = false
        var isSet: Bool { monitor.withLock { value } }
        func set() { monitor.withLock { value = true } }
    }

    /// Runs the task set on prepared tasks and returns every job's record; `observer`, if
    /// given, is called around every job (see ``JobObserver``).
    /// `demands[i][w]` is task i's analysis demand at width w (narrowest first): its WCET is the
    /// job's default budget and what width selection fits into the time left. Default: each
    /// variant's measured maximum × 1.2.
    ///
    /// `spanLimit` caps the execution spans and lock waits recorded per task (and the layer
    /// times at that many × the task's layers), to bound memory on long runs; by default the
    /// storage is sized from the expected number of jobs (see ``RunResult/spans``).
    ///
    /// With a `swapper` (the one given to ``prepare(_:loader:timingRuns:timing:swapper:log:)``),
    /// jobs take their weights through it and the result's ``RunResult/memory`` has the swaps.
    public static func run(_ set: TaskSet, prepared: [PreparedTask], demands: [[TaskDemand]]? = nil,
                           observer: JobObserver? = nil, spanLimit: Int? = nil, swapper: WeightSwapper? = nil,
                           log: (String) -> Void = { _ in }) throws -> RunResult {
        let wcets = prepared.indices.map { i in
            demands?[i].map(\.wcet) ?? (0..<prepared[i].variantCount).map {
                TaskDemand(measured: prepared[i].variant($0).timing, margin: 1.2).wcet
            }
        }
        let session = RunSession(set: set, tasks: prepared, wcets: wcets, observer: observer, spanLimit: spanLimit,
                                 swapper: swapper)
        return try session.run(log: log)
    }
}

/// Callbacks around each job on its worker thread, for instrumentation: the allocation test
/// counts the worker's heap allocations between them. `begin(task, job)` runs once the
/// release was observed (after the sleep), before the job asks the dispatcher for cores;
/// `end(task, job)` runs after the job's record was appended. So the span covers the job's
/// whole path: dispatch, lock, inference, output check, priority changes and recording.
/// Skipped releases call neither. Both run on the worker at its real-time priority; keep them
/// short and non-blocking.
public struct JobObserver: Sendable {
    public var begin: @Sendable (_ task: Int, _ job: Int) -> Void
    public var end: @Sendable (_ task: Int, _ job: Int) -> Void

    public init(begin: @escaping @Sendable (_ task: Int, _ job: Int) -> Void,
                end: @escaping @Sendable (_ task: Int, _ job: Int) -> Void) {
        self.begin = begin
        self.end = end
    }
}

/// The outcome of a run: the task set, every job, and run-wide facts.
public struct RunResult: Sendable {
    public var taskSet: TaskSet
    public var records: [[JobRecord]]
    /// Wall time from the common start to the last job's end, ns.
    public var elapsed: Int64
    /// Whether worker threads got SCHED_FIFO.
    public var realtimePriority: Bool
    public var timing: [TimingProfile]
    /// Per task, in time order: each job's execution spans (where it computed, split at
    /// preemptions and lock hand-overs) and lock waits. Empty for a result built without them.
    public var spans: [[ExecutionSpan]]
    /// Per task: whether its span storage (spans or layer times) filled during the run, so that
    /// its later spans or their layer times are missing (records are complete regardless).
    public var spansTruncated: [Bool]
    /// The interference probe's timings (see ``InterferenceProbe``), and its kernel's
    /// calibrated median; empty and 0 for a simulated run.
    public var probe: [ProbeSample] = []
    public var probeBaseline: Int64 = 0
    /// Memory over the run (budget, swaps, resident set); nil for a simulated run.
    public var memory: RunMemory?

    public init(taskSet: TaskSet, records: [[JobRecord]], elapsed: Int64, realtimePriority: Bool, timing: [TimingProfile],
                spans: [[ExecutionSpan]]? = nil, spansTruncated: [Bool]? = nil) {
        self.taskSet = taskSet
        self.records = records
        self.elapsed = elapsed
        self.realtimePriority = realtimePriority
        self.timing = timing
        self.spans = spans ?? records.map { _ in [] }
        self.spansTruncated = spansTruncated ?? records.map { _ in false }
    }
}

/// Shared state of one run: the barrier, the dispatcher, the lock and per-task records.
final class RunSession: @unchecked Sendable {
    let set: TaskSet
    let tasks: [PreparedTask]
    let dispatcher: Dispatcher?
    let lock: KExclusionLock?
    let priorities: [Int]
    let observer: JobObserver?
    /// Per task, the WCET of each width (narrowest first): default budgets and width selection.
    let wcets: [[Int64]]
    private let monitor = Monitor()
    private let startSignal: Monitor.Condition
    private var arrived = 0
    private var start: UInt64?
    private var records: [[JobRecord]]
    /// One per task, allocated here, before the run (see ``SpanRecorder``).
    private let spanRecorders: [SpanRecorder]
    private var failures: [String] = []
    private var fifoRefused = false
    let swapper: WeightSwapper?

    init(set: TaskSet, tasks: [PreparedTask], wcets: [[Int64]], observer: JobObserver? = nil, spanLimit: Int? = nil,
         swapper: WeightSwapper? = nil) {
        self.set = set
        self.swapper = swapper
        self.tasks = tasks
        self.wcets = wcets
        self.observer = observer
        let managed = set.policy != .unmanaged
        dispatcher = managed
            ? Dispatcher(cores: set.cores, allowed: set.tasks.indices.map { set.cores(of: $0) },
                         threads: set.tasks.map(\.threads),
                         preemptive: set.preemption == .layer && set.policy != .fifo)
            : nil
        lock = set.lockK.map { KExclusionLock(k: $0, expectedWaiters: set.tasks.count) }
        priorities = set.priorities
        records = set.tasks.map { t in
            var r: [JobRecord] = []
            let expected = set.jobs ?? Int((set.duration ?? 0) / t.period) + 2
            r.reserveCapacity(expected)
            return r
        }
        spanRecorders = set.tasks.indices.map { i in
            let t = set.tasks[i]
            let expected = set.jobs ?? Int((set.duration ?? 0) / t.period) + 2
            let capacity = SpanRecorder.capacity(
                expectedJobs: expected, regions: tasks[i].plan.kernelCount,
                preemptive: managed && set.preemption == .layer && set.policy != .fifo,
                lock: set.lockK != nil, perLayerLock: set.lockK != nil && set.preemption == .layer)
            let (layers, overflow) = max(expected, 1).multipliedReportingOverflow(by: tasks[i].plan.kernelCount)
            let spans = min(capacity, spanLimit ?? capacity)
            let layerCapacity = min(overflow ? SpanRecorder.maximumLayerCapacity : layers,
                                    spanLimit.map { $0.multipliedReportingOverflow(by: tasks[i].plan.kernelCount).partialValue } ?? .max)
            return SpanRecorder(task: i, capacity: spans, coresPerSpan: managed ? t.threads : set.cores(of: i).count,
                                layerCapacity: layerCapacity)
        }
        startSignal = monitor.condition()
    }

    func run(log: (String) -> Void) throws -> RunResult {
        var threads: [pthread_t] = []
        let baselineRSS = swapper?.baselineRSS ?? ProcessMemory.residentBytes()
        let expectedLength = set.duration ?? (set.tasks.map { $0.period * Int64(set.jobs ?? 1) }.max() ?? 0)
        let sampler = ResidentSetSampler(expectedDuration: expectedLength + 2_000_000_000)
        swapper?.resetLog()
        sampler.start()
        let launch = MonotonicClock.now()
        for i in tasks.indices {
            guard let t = RealtimeThread.spawn({ [self] in self.worker(i, launch: launch) }) else {
                throw MetronomeError.backend("cannot start the worker thread for task \(set.tasks[i].name)")
            }
            threads.append(t)
        }
        let expected = set.duration ?? (set.tasks.map { $0.period * Int64(set.jobs ?? 1) }.max() ?? 0)
        let probe = InterferenceProbe(cores: set.cores, expectedDuration: expected + 1_000_000_000)
        if set.release == .synchronous {
            // The barrier: once every worker is waiting, release them all at one common time.
            monitor.lock()
            while arrived < tasks.count { startSignal.wait() }
            start = MonotonicClock.now() + 20_000_000
            startSignal.broadcast()
            monitor.unlock()
        }
        probe.start(origin: monitor.withLock { start } ?? launch)
        threads.forEach(RealtimeThread.join)
        let probeSamples = probe.stop()
        let (rss, peakRSS) = sampler.stop()
        if let f = failures.first { throw MetronomeError.backend("a task failed during the run: \(f)") }
        let elapsed = records.joined().compactMap(\.end).max() ?? 0
        if fifoRefused && set.policy != .unmanaged {
            log("note: SCHED_FIFO was not permitted; workers ran at normal priority (run as root or grant CAP_SYS_NICE)")
        }
        var result = RunResult(taskSet: set, records: records, elapsed: elapsed,
                               realtimePriority: !fifoRefused && set.policy != .unmanaged, timing: tasks.map(\.timing),
                               spans: spanRecorders.map { $0.spans() }, spansTruncated: spanRecorders.map(\.truncated))
        result.probe = probeSamples
        result.probeBaseline = probe.baseline
        let origin = monitor.withLock { start } ?? launch
        let rel = { (t: UInt64) in Self.relative(t, origin) }
        let swaps = swapper?.log()
        let account = MemoryAccount(set, prepared: tasks)
        result.memory = RunMemory(
            account: account, model: swapper?.model, baselineRSS: baselineRSS, peakRSS: peakRSS,
            peakIsExact: sampler.peakReset, peakAccounted: swaps?.peakAccounted ?? account.total,
            rss: rss.map { (time: rel($0.0), bytes: $0.1) },
            accounted: swaps?.timeline.map { (time: rel($0.time), bytes: $0.bytes) } ?? [],
            transfers: swaps?.transfers.map {
                RunMemory.Transfer(task: $0.task, start: rel($0.start), end: rel($0.end), bytes: $0.bytes, prefetch: $0.prefetch)
            } ?? [],
            evictions: swaps?.evictions.map { (task: $0.task, time: rel($0.time), bytes: $0.bytes) } ?? [],
            swapIns: swaps?.swapIns ?? tasks.map { _ in 0 }, swapInMaxNs: swaps?.swapInMaxNs.map { Int64($0) } ?? tasks.map { _ in 0 })
        return result
    }

    /// The scheduling key of a job for the set's policy (smaller runs first).
    func key(task: Int, nominal: UInt64) -> SchedulingKey {
        switch set.policy {
        case .edf: return SchedulingKey(Int64(nominal) + set.tasks[task].deadline, Int64(task))
        case .fifo: return SchedulingKey(Int64(nominal), Int64(task))
        case .fixedPriority, .unmanaged: return SchedulingKey(-Int64(priorities[task]), Int64(task))
        }
    }

    static func relative(_ t: UInt64, _ origin: UInt64) -> Int64 { Int64(t) - Int64(origin) }

    /// Thrown from a layer boundary to end a job that ran past its budget (`on_overrun: abort`).
    /// One instance per worker, created before the run.
    private final class JobAbort: Error {}

    /// Counters of the job a worker is running.
    private final class JobState {
        let abort = JobAbort()
        /// The executor of the width this job runs at.
        var executor: Executor
        /// Budget of this job in ns of execution (0: none), and when it started.
        var budget: UInt64 = 0
        var startTime: UInt64 = 0
        var overran = false
        var key = SchedulingKey(0, 0)
        var job = 0
        var lockWait: UInt64 = 0
        var suspended: UInt64 = 0
        var preemptions = 0
        /// What waiting for and swapping in the weights cost this job.
        var swap = WeightSwapper.AcquireStats()
        /// The cores the job's threads are pinned to; updated in place (never sharing the
        /// dispatcher's array, whose later in-place update would then have to copy it).
        var cores: [Int]

        init(capacity: Int, executor: Executor) {
            cores = []
            cores.reserveCapacity(capacity)
            self.executor = executor
        }

        func place(_ granted: [Int], executor: Executor, threads: Int) {
            guard granted != cores else { return }
            // A one-thread job is the worker thread itself: pinning it is one system call.
            // Re-pinning a multi-threaded job's OpenMP team goes through the executor (which
            // allocates a little), so only migrating multi-threaded jobs pay that.
            if threads == 1 { Affinity.pinCurrentThread(to: granted) } else { executor.pin(to: granted) }
            cores.removeAll(keepingCapacity: true)
            cores.append(contentsOf: granted)
        }

        func reset(job: Int, key: SchedulingKey) {
            self.job = job
            self.key = key
            lockWait = 0
            suspended = 0
            preemptions = 0
            overran = false
            swap = WeightSwapper.AcquireStats()
        }
    }

    private func worker(_ i: Int, launch: UInt64) {
        let task = tasks[i]
        let spec = set.tasks[i]
        let allowed = set.cores(of: i)
        // Only swapped tasks deal with the swapper (the others' weights never move).
        let taskSwapper = spec.swap ? swapper : nil
        let state = JobState(capacity: allowed.count, executor: task.executor)
        let widths = wcets[i]
        // Budgets per width: the task's own, or its WCET at that width.
        let budgets = widths.map { UInt64(spec.budget ?? $0) }
        var selector: WidthSelector? = task.variantCount > 1
            ? WidthSelector(wcets: widths, medians: (0..<task.variantCount).map { w in
                let samples = task.variant(w).timing.jobSamples.sorted()
                return samples.isEmpty ? widths[w] : Int64(samples[samples.count / 2])
            })
            : nil
        // Budgets are checked at layer boundaries only when overrunning changes something.
        let enforce = spec.onOverrun != .continue
        if set.policy != .unmanaged {
            // The dispatcher decides who runs; SCHED_FIFO keeps other processes off the cores.
            if !RealtimeThread.makeFIFO(priority: 60) { monitor.withLock { fifoRefused = true } }
        }
        // Warm-up before the common start: place the job's threads where the first job will
        // most likely run, then run the task twice untimed. The first executions on a thread
        // pay one-time costs (pinning the OpenMP team, oneDNN's per-thread caches, first-touch
        // page faults) that would otherwise inflate the first released job and allocate on its
        // path.
        var warmupError: Error?
        do {
            let initial = set.policy == .unmanaged ? allowed : Array(allowed.prefix(spec.threads))
            state.cores.append(contentsOf: initial)
            // Through the jobs' own call (with a layer-boundary callback and the output check),
            // so that every first-use cost of that path is paid here — for every width.
            let noBoundary: (Int) throws -> Void = { _ in }
            // The OpenMP team of a multi-threaded job is created here and inherits this
            // thread's priority: the jobs' 50, not the bookkeeping 60, so that its idle
            // spinning never outranks other work on its cores.
            if set.policy != .unmanaged { RealtimeThread.makeFIFO(priority: 50) }
            defer { if set.policy != .unmanaged { RealtimeThread.makeFIFO(priority: 60) } }
            if let swapper = taskSwapper { try swapper.acquire(i, key: SchedulingKey(Int64.max, Int64(i)), stats: &state.swap) }
            defer { taskSwapper?.release(i) }
            for w in 0..<task.variantCount {
                task.variant(w).executor.pin(to: initial)
                for _ in 0..<2 { _ = try task.variant(w).runAndCheck(0, boundary: noBoundary) }
            }
        } catch {
            warmupError = error
        }
        // Barrier (reached even after a failed warm-up, so that the other workers are released).
        let origin: UInt64
        if set.release == .synchronous {
            monitor.lock()
            arrived += 1
            startSignal.broadcast()
            while start == nil { startSignal.wait() }
            origin = start!
            monitor.unlock()
        } else {
            origin = launch
        }
        if let warmupError {
            monitor.withLock { failures.append("\(spec.name): \(warmupError)") }
            return
        }
        let perLayerLock = lock != nil && set.preemption == .layer
        var previousEnd: UInt64 = 0
        var n = 0
        // Moved out, not copied: a copy would share the reserved buffer with `records[i]`, and
        // the first append would then copy it (an allocation on the first job's path).
        var local: [JobRecord] = []
        monitor.withLock { swap(&local, &records[i]) }
        defer { monitor.withLock { records[i] = local } }
        // Per-job counters live in one object and the layer-boundary callback is built once,
        // so the runtime's part of a job allocates nothing (JobAllocationTests).
        // Spans go into the recorder's preallocated storage (times relative to the origin).
        let recorder = spanRecorders[i]
        // A job waiting for its weights holds its cores, but gives them up (and takes them back)
        // whenever a job that should preempt it arrives: the wait never blocks other work.
        let yieldWhileWaiting: WeightSwapper.Preemption? = taskSwapper != nil && dispatcher?.preemptive == true
            ? WeightSwapper.Preemption(shouldYield: { [self] in dispatcher?.shouldYield(task: i) ?? false }, yield: { [self] in
                guard let dispatcher else { return }
                if perLayerLock, let lock { lock.release() }
                let granted = dispatcher.yield(task: i)
                state.preemptions += 1
                state.place(granted, executor: state.executor, threads: spec.threads)
                if perLayerLock, let lock { state.lockWait += lock.acquire(key: state.key) }
            })
            : nil
        let boundary: (Int) throws -> Void = { [self] layer in
            let now = MonotonicClock.now()
            let layerEnd = Self.relative(now, origin)
            recorder.layerEnd(at: layerEnd)
            if enforce && !state.overran {
                let executed = now - state.startTime - state.suspended
                if executed > state.budget {
                    state.overran = true
                    if spec.onOverrun == .abort { throw state.abort }
                }
            }
            if let dispatcher, dispatcher.preemptive, dispatcher.shouldYield(task: i) {
                // Preempted: the lock goes too, and both are taken again before going on.
                recorder.close(job: state.job, at: layerEnd, layer: layer, cores: state.cores, ending: .preempted)
                if perLayerLock, let lock { lock.release() }
                // A preempted job's weights may be evicted; it takes them back before going on.
                taskSwapper?.suspend(i)
                let granted = dispatcher.yield(task: i)
                state.preemptions += 1
                state.place(granted, executor: state.executor, threads: spec.threads)
                if perLayerLock, let lock {
                    let t1 = MonotonicClock.now()
                    let w = lock.acquire(key: state.key)
                    state.lockWait += w
                    recorder.lockWait(job: state.job, from: Self.relative(t1, origin), to: Self.relative(t1, origin) + Int64(w),
                                      cores: state.cores)
                }
                if let swapper = taskSwapper {
                    try swapper.resume(i, key: state.key, stats: &state.swap, preemption: yieldWhileWaiting)
                }
                // Suspended from the closed span's end to the reopened span's start, whatever
                // happened between (the yield, re-pinning, the lock, the weights, and the OS
                // descheduling this worker meanwhile): execution_ns is exactly the job's spans.
                let reopened = MonotonicClock.now()
                state.suspended += reopened - now
                recorder.open(at: Self.relative(reopened, origin), firstLayer: layer)
            } else if perLayerLock, let lock {
                // Kept unless a job with a smaller key waits (the analysis's preemption point).
                let t0 = MonotonicClock.now()
                let w = lock.pass(key: state.key)
                state.lockWait += w
                state.suspended += w
                if w > 0 {
                    let from = Self.relative(t0, origin)
                    recorder.close(job: state.job, at: from, layer: layer, cores: state.cores, ending: .lockHandover)
                    recorder.lockWait(job: state.job, from: from, to: from + Int64(w), cores: state.cores)
                    recorder.open(at: from + Int64(w), firstLayer: layer)
                }
            }
        }
        do {
            while true {
                let nominal = origin + UInt64(spec.offset) + UInt64(n) * UInt64(spec.period)
                if let jobs = set.jobs, n >= jobs { break }
                if let d = set.duration, nominal >= origin + UInt64(d) { break }
                var wakeup: UInt64?
                taskSwapper?.expect(i, release: nominal, key: key(task: i, nominal: nominal))
                if MonotonicClock.now() < nominal {
                    RealtimeThread.sleep(untilMonotonic: nominal)
                    wakeup = MonotonicClock.now()
                } else if nominal < previousEnd {
                    // Released while the previous job was still running.
                    if spec.overrun == .skip {
                        local.append(JobRecord(task: i, job: n, release: Self.relative(nominal, origin), wakeup: nil,
                                               start: nil, end: nil, lockWait: 0, preemptions: 0, deadlineMet: false,
                                               outputOK: false, execution: 0, lockAcquired: nil, lockReleased: nil))
                        n += 1
                        continue
                    }
                } else {
                    wakeup = MonotonicClock.now()
                }
                observer?.begin(i, n)
                state.reset(job: n, key: key(task: i, nominal: nominal))
                var lockAcquired: UInt64?
                var lockReleased: UInt64?
                if let dispatcher {
                    let granted = dispatcher.acquire(task: i, key: state.key)
                    RealtimeThread.makeFIFO(priority: 50)
                    state.place(granted, executor: state.executor, threads: spec.threads)
                }
                if let lock {
                    let t1 = MonotonicClock.now()
                    state.lockWait += lock.acquire(key: state.key)
                    let acquired = MonotonicClock.now()
                    lockAcquired = acquired
                    recorder.lockWait(job: n, from: Self.relative(t1, origin), to: Self.relative(acquired, origin), cores: state.cores)
                }
                // Its weights, once it has its cores (and the lock): a job starts only with them resident.
                if let swapper = taskSwapper { try swapper.acquire(i, key: state.key, stats: &state.swap, preemption: yieldWhileWaiting) }
                // The width, once the job has its cores (and the lock): the widest whose WCET
                // fits the time left before the deadline.
                let w = selector?.choose(timeLeft: Int64(nominal + UInt64(spec.deadline)) - Int64(MonotonicClock.now()))
                    ?? task.variantCount - 1
                let variant = task.variant(w)
                if variant.executor !== state.executor {
                    // Another width: its executor's threads go where this worker's job runs.
                    state.executor = variant.executor
                    if spec.threads > 1 { state.executor.pin(to: state.cores) }
                }
                state.budget = budgets[w]
                let start = MonotonicClock.now()
                let cpuStart = spec.threads == 1 ? ThreadCPUClock.now() : 0
                state.startTime = start
                recorder.open(at: Self.relative(start, origin), firstLayer: 0)
                var ok = false
                var aborted = false
                var counted = (images: 0, top1: 0, top5: 0)
                // As runAndCheck, split to stamp the end of the last layer before the output check.
                let input = n % variant.inputPointers.count
                do {
                    try variant.executor.run(inputs: variant.inputPointers[input], outputs: variant.outputPointers, boundary: boundary)
                    recorder.layerEnd(at: Self.relative(MonotonicClock.now(), origin))
                    ok = variant.outputsMatch(input)
                    counted = variant.countCorrect(input)
                } catch is JobAbort {
                    aborted = true
                }
                // Stamped while still held, so recorded spans lie inside the true holding spans.
                if let lock { lockReleased = MonotonicClock.now(); lock.release() }
                let end = MonotonicClock.now()
                let cpu = spec.threads == 1 ? Int64(ThreadCPUClock.now() - cpuStart) : nil
                // The last span ends where the job stopped computing: at the lock's release when it
                // holds one (an OS-scheduled worker can be descheduled right after releasing it,
                // which would otherwise show as computing), else at the end.
                recorder.close(job: n, at: Self.relative(lockReleased ?? end, origin), layer: variant.plan.kernelCount, cores: state.cores,
                               ending: .completed)
                // Jobs execute at priority 50; everything else a worker does (bookkeeping,
                // sleeping, waking, asking the dispatcher) at 60, so a release is always
                // noticed at once, even on a core where another job is running.
                taskSwapper?.release(i)
                if dispatcher != nil { RealtimeThread.makeFIFO(priority: 60) }
                dispatcher?.complete(task: i)
                let deadline = nominal + UInt64(spec.deadline)
                let execution = Int64(end - start) - Int64(state.suspended)
                if !aborted { selector?.observe(width: w, execution: execution) }
                if state.overran && spec.onOverrun == .degrade { selector?.degrade() }
                local.append(JobRecord(
                    task: i, job: n, release: Self.relative(nominal, origin), wakeup: wakeup.map { Self.relative($0, origin) },
                    start: Self.relative(start, origin), end: Self.relative(end, origin), lockWait: Int64(state.lockWait),
                    preemptions: state.preemptions, deadlineMet: !aborted && end <= deadline, outputOK: ok,
                    execution: execution,
                    lockAcquired: lockAcquired.map { Self.relative($0, origin) },
                    lockReleased: lockReleased.map { Self.relative($0, origin) },
                    width: spec.widths?[w], aborted: aborted,
                    overran: state.overran || (state.budget > 0 && UInt64(max(execution, 0)) > state.budget)))
                local[local.count - 1].swapWait = Int64(state.swap.waitNs)
                local[local.count - 1].cpu = cpu
                local[local.count - 1].swapIn = Int64(state.swap.swapInNs)
                local[local.count - 1].swapInBytes = state.swap.swapInBytes
                (local[local.count - 1].labelledImages, local[local.count - 1].correctTop1,
                 local[local.count - 1].correctTop5) = counted
                previousEnd = end
                observer?.end(i, n)
                n += 1
            }
        } catch {
            monitor.withLock { failures.append("\(spec.name): \(error)") }
        }
    }
}
