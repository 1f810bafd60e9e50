import ArgumentParser
import Foundation
import Metronome
import MetronomeAnalysis
import MetronomeModels

struct Stretch: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure every multi-branch config in a folder, NN-Stretch style (result.csv).",
        discussion: """
            For each *.yaml in CONFIG_DIR (sorted by name), builds the network (seeded weights, \
            TEST.IM_SIZE), compiles it and times --runs runs after --warmup. A network with \
            branches runs branch-parallel: each device's kernels on its cores (--devices, \
            default one core per device in DEVICES order); a single-branch baseline runs its \
            kernels one after another with --threads threads. --compare also times each \
            branched network sequentially with --threads threads, side by side.

            The CSV starts with NN-Stretch's columns cfg,latency,energy: latency is the minimum \
            over the runs in milliseconds (as NN-Stretch takes benchmark_model's min), energy \
            the package energy per inference in millijoules from RAPL/powercap, left empty (with \
            the reason printed) when the machine does not expose it. Then median, p99, mode \
            (parallel or sequential), devices, threads, and with --compare sequential_latency, \
            sequential_median. Rows are appended as they are measured; configs already in the \
            file are skipped, so an interrupted run resumes. --force starts the file over.
            """)

    @Argument(help: "A folder of multi-branch configs (.yaml).") var configDir: String
    @Option(help: "The CSV to write or resume.") var out = "result.csv"
    @OptionGroup var branches: BranchOptions
    @Option(help: "Timed runs per config.") var runs = 50
    @Option(help: "Untimed warm-up runs per config.") var warmup = 5
    @Option(help: "Images per inference.") var batch = 1
    @Option(help: "Threads for networks run sequentially (baselines, --compare); default: every core the devices use, or every available core.")
    var threads: Int?
    @Flag(help: "Also time each branched network with its kernels one after another (--threads threads).") var compare = false
    @Flag(help: "Start --out over instead of resuming it.") var force = false

    static let header = ["cfg", "latency", "energy", "median", "p99", "mode", "devices", "threads", "sequential_latency", "sequential_median"]

    func validate() throws {
        guard runs >= 1 else { throw ValidationError("--runs must be at least 1") }
        guard warmup >= 0 else { throw ValidationError("--warmup must not be negative") }
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
    }

    func run() throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: configDir, isDirectory: &isDir), isDir.boolValue else {
            throw ValidationError("\(configDir) is not a folder of configs")
        }
        let configs = try FileManager.default.contentsOfDirectory(atPath: configDir)
            .filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted()
        guard !configs.isEmpty else { throw ValidationError("\(configDir) has no .yaml configs") }
        let done = try resume()
        let (meter, reason) = EnergyMeter.open()
        if let reason { print("energy: not measured, \(reason)") }
        var progress = ProgressBar(total: configs.count)
        var failures: [String] = []
        for file in configs {
            let name = (file as NSString).deletingPathExtension
            if done.contains(name) {
                progress.advance(name, skipped: true)
                continue
            }
            progress.show(name)
            do {
                let row = try measure(path: (configDir as NSString).appendingPathComponent(file), name: name, meter: meter)
                try append(row)
            } catch {
                failures.append("\(file): \(error)")
                FileHandle.standardError.write(Data("\n\(file): \(error)\n".utf8))
            }
            progress.advance(name)
        }
        print("wrote \(out): \(configs.count - failures.count - done.count) measured, \(done.count) already there")
        if !failures.isEmpty {
            throw ValidationError("\(failures.count) config(s) failed:\n" + failures.joined(separator: "\n"))
        }
    }

    /// The configs already in `out`; creates it with the header when missing (or with --force).
    func resume() throws -> Set<String> {
        let fm = FileManager.default
        if force || !fm.fileExists(atPath: out) {
            try CSV.line(Self.header).write(toFile: out, atomically: true, encoding: .utf8)
            return []
        }
        var text = try String(contentsOfFile: out, encoding: .utf8)
        if !text.isEmpty && !text.hasSuffix("\n") {
            // An interrupted append: drop the partial row, it is measured again.
            text = String(text[..<(text.lastIndex(of: "\n").map { text.index(after: $0) } ?? text.startIndex)])
            try text.write(toFile: out, atomically: true, encoding: .utf8)
            print("\(out): dropped an incomplete last row")
        }
        let records = try CSV.parse(text, path: out)
        guard let head = records.first?.fields, Array(head.prefix(3)) == ["cfg", "latency", "energy"] else {
            throw ValidationError("\(out) exists and is not a stretch result (its header is not cfg,latency,energy,...); choose another --out or pass --force")
        }
        return Set(records.dropFirst().compactMap(\.fields.first))
    }

    func append(_ fields: [String]) throws {
        guard let handle = FileHandle(forWritingAtPath: out) else { throw ValidationError("cannot open \(out) for writing") }
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(CSV.line(fields).utf8))
    }

    func measure(path: String, name: String, meter: EnergyMeter?) throws -> [String] {
        let config = try MultiBranchConfig.load(path: path)
        let graph = MultiBranchNetwork.build(config)
        let names = BranchPlacement.devices(of: graph.nodes.map(\.name))
        let devices = try branches.deviceCores(for: graph) ?? DeviceCores.oneCoreEach(names)
        let sequentialThreads = threads ?? (branches.devices != nil ? devices.allCores.count : Affinity.availableCores().count)
        let parallel = config.isBranched
        let options = parallel ? CompileOptions(devices: devices) : CompileOptions(threads: sequentialThreads)
        let plan = try Plan.compile(graph, batch: batch, options: options)
        var generator = SplitMix64(seed: 42)
        let buffers = PlanBuffers(plan: plan, generator: &generator)
        let executor = try Executor(plan: plan)
        for _ in 0..<warmup { try executor.run(inputs: buffers.inputPointers, outputs: buffers.outputPointers) }
        let before = meter?.sample()
        let samples = try executor.timedRuns(runs, warmup: 0, on: buffers)
        var energy: Double?
        if let meter, let before { energy = meter.joules(from: before, to: meter.sample()) / Double(runs) * 1000 }
        let stats = try LatencyStatistics(samples)
        var row = [name, String(format: "%.4f", stats.minimum), energy.map { String(format: "%.3f", $0) } ?? "",
                   String(format: "%.4f", stats.median), String(format: "%.4f", stats.p99),
                   parallel ? "parallel" : "sequential", parallel ? devices.description : "",
                   String(parallel ? devices.allCores.count : sequentialThreads)]
        if compare && parallel {
            let sequential = try Plan.compile(graph, batch: batch, options: CompileOptions(threads: sequentialThreads))
            let s = try LatencyStatistics(Executor(plan: sequential).timedRuns(runs, warmup: warmup, on: PlanBuffers(plan: sequential, generator: &generator)))
            row += [String(format: "%.4f", s.minimum), String(format: "%.4f", s.median)]
        } else {
            row += ["", ""]
        }
        return row
    }
}
