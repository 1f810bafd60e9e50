import ArgumentParser
import CDNNL
import Foundation
import Metronome
import MetronomeAnalysis
import MetronomeTraining
#if canImport(Glibc)
import Glibc
#endif

/// The child process of `metronome profile`: measures one configuration and prints one JSON
/// object (``ProfileWorkerResult``) on stdout.
///
/// Running each configuration in its own process is what makes a sweep robust: an
/// out-of-memory kill, a crash or a hang ends this configuration only, and the memory it
/// measures (its own resident set, its cgroup's charge) belongs to this configuration alone.
struct ProfileWorker: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "profile-worker",
        abstract: "Measure one configuration for `metronome profile` (internal; prints JSON).",
        shouldDisplay: false)

    @Option(help: "Zoo name or .onnx file.") var model: String
    @Option var batch: Int
    @Option var threads: Int
    @Option var cores: String?
    @Option var runs: Int
    @Option var warmup: Int
    @Option var minTime: Double = 0
    @Flag var layers = false
    @Option var precision: Precision = .fp32
    @Option var stage: ProfileStage = .inference
    @Option(help: "Join this cgroup directory before loading anything.") var cgroup: String?
    @Option(help: "Bytes; without --cgroup, enforced with RLIMIT_AS.") var memoryLimit: Int = 0
    @Flag(help: "Compile and measure memory only; run nothing (`metronome predict`).") var compileOnly = false

    func validate() throws {
        if compileOnly && stage == .train { throw ValidationError("--compile-only measures inference plans; not with --stage train") }
    }

    func run() throws {
        if let cgroup {
            try ProcessMemory.join(cgroup: cgroup)
        } else if memoryLimit > 0 {
            try ProcessMemory.limitAddressSpace(residentBytes: memoryLimit)
        }
        try FaultInjection.apply(batch: batch)
        let coreList = try cores.map(Affinity.parse)
        let baseline = ProcessMemory.residentBytes(), baselineAnonymous = ProcessMemory.status("RssAnon")
        var result = ProfileWorkerResult()
        result.baselineRSSBytes = baseline
        if stage == .train {
            try measureTrainingStep(&result, baseline: baseline, baselineAnonymous: baselineAnonymous, cores: coreList)
            FileHandle.standardOutput.write(try JSONEncoder().encode(result))
            FileHandle.standardOutput.write(Data("\n".utf8))
            return
        }
        // The graph and its lowered program are dropped before anything is run: the measured
        // peak is the plan's, not the compiler's temporaries.
        let plan: Plan = try {
            let graph = try ModelSource.load(model)
            let program = try Program(lowering: graph, batch: batch)
            let cost = try CostModel.analyze(program: program)
            result.params = cost.params
            result.macs = cost.macs
            result.flops = cost.flops
            return try Plan.compile(program, options: CompileOptions(threads: threads, precision: precision))
        }()
        ProcessMemory.returnFreedMemory()
        result.plannedWeightBytes = plan.weightBytes
        result.plannedArenaBytes = plan.arenaBytes
        result.plannedScratchpadBytes = plan.scratchpadBytes
        result.plannedIOBytes = (plan.program.inputs + plan.program.outputs).reduce(0) { $0 + plan.program.values[$1].count * 4 }
        ProcessMemory.resetPeak()
        let executor = try Executor(plan: plan, cores: coreList)
        // What compiling and creating the executor left resident beyond the weights (the arena
        // and scratchpad are allocated but not touched until a run): oneDNN's primitives, i.e.
        // their JIT-generated code and objects, and the executor's memory objects.
        result.compiledRuntimeBytes = max(0, ProcessMemory.status("RssAnon") - baselineAnonymous - plan.weightBytes)
        if compileOnly {
            FileHandle.standardOutput.write(try JSONEncoder().encode(result))
            FileHandle.standardOutput.write(Data("\n".utf8))
            return
        }
        var generator = SplitMix64(seed: 42)
        let buffers = PlanBuffers(plan: plan, generator: &generator)
        // One untimed run (the first of the warmup runs), then the anonymous memory: the executor
        // allocates nothing while running, so after one run it is the plan's peak (with what
        // oneDNN creates on a first run), and unlike the resident set it excludes the library
        // code paged in. Read before the timed runs, it excludes this worker's own latency
        // samples too (up to 800 KB, half the memory of the smallest networks).
        try executor.run(inputs: buffers.inputPointers, outputs: buffers.outputPointers)
        result.anonymousRSSBytes = max(0, ProcessMemory.status("RssAnon") - baselineAnonymous)
        let samples = try executor.timedRuns(atLeast: runs, seconds: minTime, warmup: max(warmup - 1, 0), on: buffers)
        let stats = try LatencyStatistics(samples)
        result.timedRuns = samples.count
        result.peakRSSBytes = max(0, ProcessMemory.peakResidentBytes() - baseline)
        result.meanMs = stats.mean
        result.medianMs = stats.median
        result.p99Ms = stats.p99
        result.minMs = stats.minimum
        result.maxMs = stats.maximum
        if layers {
            result.layers = try LayerReport(plan: plan, samples: executor.kernelTimes(runs: min(samples.count, 5000), warmup: 1, on: buffers))
        }
        let data = try JSONEncoder().encode(result)
        FileHandle.standardOutput.write(data)
        FileHandle.standardOutput.write(Data("\n".utf8))
    }
}

extension ProfileWorker {
    /// `--stage train`: `runs` training steps (after `warmup`) on seeded images and labels.
    /// The planned bytes are the trainer's: parameters as weights, every value and gradient as
    /// the arena, the optimizer's state as scratchpad.
    func measureTrainingStep(_ result: inout ProfileWorkerResult, baseline: Int, baselineAnonymous: Int, cores: [Int]?) throws {
        if let cores { Affinity.pinCurrentThread(to: cores) }
        omp_set_num_threads(Int32(threads))
        let graph = try ModelSource.load(model)
        let cost = try CostModel.analyze(program: Program(lowering: graph, batch: batch))
        result.params = cost.params
        result.macs = cost.macs
        result.flops = cost.flops
        let trainer = try Trainer(graph: graph, batch: batch)
        var generator = SplitMix64(seed: 42)
        let images = (0..<(batch * trainer.imageSize)).map { _ in generator.nextFloat(in: -1...1) }
        let labels = (0..<batch).map { _ in Int32(generator.next() % UInt64(trainer.classes)) }
        var optimizer = Optimizer(.adam(beta1: 0.9, beta2: 0.999, epsilon: 1e-8))
        func step() throws {
            _ = try images.withUnsafeBufferPointer { x in
                try labels.withUnsafeBufferPointer { y in
                    try trainer.trainStep(images: x.baseAddress!, labels: y.baseAddress!, optimizer: &optimizer, lr: 1e-3)
                }
            }
        }
        try step()
        ProcessMemory.returnFreedMemory()
        ProcessMemory.resetPeak()
        for _ in 0..<warmup { try step() }
        let samples = try MonotonicClock.timeRepeatedly(atLeast: runs, seconds: minTime, step)
        result.timedRuns = samples.count
        if layers {
            // Separate, instrumented steps, as for inference: the clock reads between steps
            // stay out of the step latency above.
            let kernels = try trainer.kernelInfo(threads: threads)
            var perKernel = [[Double]](repeating: [], count: kernels.count)
            for _ in 0..<min(samples.count, 5000) {
                trainer.stepNanoseconds = [UInt64](repeating: 0, count: kernels.count)
                try step()
                for (k, ns) in (trainer.stepNanoseconds ?? []).enumerated() { perKernel[k].append(Double(ns) / 1e6) }
            }
            trainer.stepNanoseconds = nil
            result.layers = try LayerReport(kernels: kernels, samples: perKernel)
        }
        let stats = try LatencyStatistics(samples)
        // Measured first: planning makes (but never runs) a second set of convolution primitives.
        result.peakRSSBytes = max(0, ProcessMemory.peakResidentBytes() - baseline)
        result.anonymousRSSBytes = max(0, ProcessMemory.status("RssAnon") - baselineAnonymous)
        let memory = try trainer.plannedMemory(threads: threads)
        result.plannedWeightBytes = memory.weights
        result.plannedArenaBytes = memory.arena
        result.plannedScratchpadBytes = memory.scratchpad
        result.plannedIOBytes = memory.io
        (result.meanMs, result.medianMs, result.p99Ms, result.minMs, result.maxMs) = (stats.mean, stats.median, stats.p99, stats.minimum, stats.maximum)
    }
}

/// What one configuration measured, as the worker reports it to `metronome profile`.
struct ProfileWorkerResult: Codable {
    var meanMs = 0.0, medianMs = 0.0, p99Ms = 0.0, minMs = 0.0, maxMs = 0.0
    /// Timed runs done: `--runs`, or more where `--min-time` asked for them.
    var timedRuns: Int?
    var params = 0, macs = 0, flops = 0
    var plannedWeightBytes = 0, plannedArenaBytes = 0, plannedScratchpadBytes = 0, plannedIOBytes = 0
    var baselineRSSBytes = 0, peakRSSBytes = 0, anonymousRSSBytes = 0
    /// Anonymous memory compiling and creating the executor left resident beyond the plan's
    /// weights (inference only).
    var compiledRuntimeBytes: Int?
    var layers: LayerReport?

    var plannedBytes: Int { plannedWeightBytes + plannedArenaBytes + plannedScratchpadBytes + plannedIOBytes }
}

extension ProfileWorkerResult {
    /// What a worker child reported: its last stdout line, if it exited normally and that line
    /// decodes; nil otherwise (the outcome's ``ChildProcess/failureReason(oomKilled:limit:)`` says why).
    init?(_ outcome: ChildProcess) {
        guard outcome.status == 0, let line = outcome.stdout.split(separator: "\n").last,
              let result = try? JSONDecoder().decode(Self.self, from: Data(line.utf8)) else { return nil }
        self = result
    }
}

/// A test hook: `METRONOME_PROFILE_INJECT=crash:B` makes the worker abort (SIGABRT) and
/// `hang:B` makes it sleep forever when profiling batch B, so tests can check that one
/// configuration's crash or hang does not end a sweep. Unset, it does nothing.
enum FaultInjection {
    static func apply(batch: Int) throws {
        guard let spec = ProcessInfo.processInfo.environment["METRONOME_PROFILE_INJECT"], !spec.isEmpty else { return }
        let parts = spec.split(separator: ":")
        guard parts.count == 2, let b = Int(parts[1]), ["crash", "hang"].contains(parts[0]) else {
            throw ValidationError("METRONOME_PROFILE_INJECT must be crash:BATCH or hang:BATCH, got '\(spec)'")
        }
        guard b == batch else { return }
        if parts[0] == "crash" { abort() }
        while true { sleep(3600) }
    }
}

/// The worker's own limits: joining a cgroup, and the address-space limit used where no
/// cgroup can be made (its memory readings are ``ProcessMemory``'s).
extension ProcessMemory {
    static func join(cgroup: String) throws {
        let path = cgroup + "/cgroup.procs"
        guard let handle = FileHandle(forWritingAtPath: path) else { throw ValidationError("cannot open \(path)") }
        defer { try? handle.close() }
        do { try handle.write(contentsOf: Data("\(getpid())\n".utf8)) } catch {
            throw ValidationError("cannot join cgroup \(cgroup): \(error.localizedDescription)")
        }
    }

    /// Where no cgroup is available: limits the address space to what is mapped now plus
    /// `limit` (so, as in a cgroup, the runtime already loaded is not charged), with one malloc
    /// arena so that threads do not reserve address space they never touch.
    static func limitAddressSpace(residentBytes limit: Int) throws {
        singleArena()
        let allowed = status("VmSize") + limit
        var rl = rlimit(rlim_cur: rlim_t(allowed), rlim_max: rlim_t(allowed))
        guard setrlimit(Int32(RLIMIT_AS.rawValue), &rl) == 0 else {
            throw ValidationError("setrlimit(RLIMIT_AS, \(allowed)) failed: \(String(cString: strerror(errno)))")
        }
    }
}
