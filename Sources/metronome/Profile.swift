import ArgumentParser
import Foundation
import Metronome
import MetronomeAnalysis
import MetronomeModels
#if canImport(Glibc)
import Glibc
#endif

/// `metronome profile`: latency and memory of models over batch sizes and thread counts, one
/// child process per configuration, rows appended to a CSV as they finish (perf4sight's
/// profiling step, without its pains: any graph, isolated failures, real memory limits, the
/// machine recorded on every row, resumable).
struct Profile: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Profile latency and memory of models over batch sizes and thread counts, into a CSV.",
        discussion: """
            SOURCE is a zoo name, an .onnx file, a directory written by `metronome dataset` \
            (its manifest.csv is used; without one, every .onnx file in it), or a manifest.csv. \
            For every model, thread count and batch size (ascending), a child process compiles \
            the model, runs --warmup untimed and --runs timed inferences (more, until --min-time \
            has passed) on the given cores and \
            reports mean, median, p99, min and max latency, the planned memory (weights, arena, \
            scratchpad, inputs/outputs) and the measured peak resident set above its baseline.

            A configuration that fails (an error, an out-of-memory kill, a crash, a timeout) is \
            recorded with status failed and its reason, and the sweep goes on. --memory-limit \
            makes "does not fit" real: the child runs in a memory cgroup with that limit where \
            the machine allows one, else under an address-space limit (setrlimit); the \
            limit_method column says which. --till-first-fail skips the larger batch sizes of a \
            model (at that thread count) once one has failed.

            Rows are appended to --out as each configuration finishes, with the machine (CPU, \
            flags, oneDNN version and ISA, governor, clock, Metronome version) on every row. \
            Rerunning with the same --out skips configurations already in it for this machine. \
            --layers adds one row per compiled kernel (kind, shapes, geometry, post-ops, \
            oneDNN implementation, time): the training data for kernel-level predictors. With \
            --stage train it adds one row per step of the trainer's program (its forward and \
            backward together, backend train) and two for the gradient zeroing with the loss \
            and the optimizer's update, timed in separate instrumented steps. The columns are \
            described in the README.
            """)

    @Argument(help: "A zoo name, an .onnx file, a dataset directory or a manifest.csv.")
    var source: String
    @Option(help: "Comma-separated batch sizes.")
    var batch: String = "1"
    @Option(help: "Comma-separated thread counts.")
    var threads: String = "1"
    @Option(help: "Cores to pin the threads to, e.g. 0,1 or 2-3 (default: unpinned).")
    var cores: String?
    @Option(help: "Timed runs per configuration.")
    var runs = 20
    @Option(help: "Untimed warm-up runs per configuration.")
    var warmup = 5
    @Option(help: "Keep timing a configuration until at least this many seconds have passed (after --runs), and warm up for a fifth of it: small models get enough runs for a stable median. The runs column records the runs made.")
    var minTime: Double = 0.3
    @Option(help: "Memory limit per configuration, e.g. 2GiB or 512MiB (default: none).")
    var memoryLimit: ByteCountArgument?
    @Option(help: "How --memory-limit is enforced: auto (a memory cgroup where possible, else rlimit), cgroup, or rlimit (an address-space limit).")
    var limitMethod: LimitMethod = .auto
    @Flag(help: "After a failure, skip the model's larger batch sizes at that thread count.")
    var tillFirstFail = false
    @Flag(help: "Also record one row per compiled kernel.")
    var layers = false
    @Option(help: "Precision of the convolutions: fp32, bf16 or int8 (int8: quantized QDQ models; recorded in the precision column).")
    var precision: Precision = .fp32
    @Option(help: "What is timed: inference, or train (one training step: forward, softmax cross-entropy, backward and an Adam update, with the trainer's memory).")
    var stage: ProfileStage = .inference
    @Option(help: "Seconds before a configuration is killed and recorded as failed.")
    var timeout: Double = 900
    @Option(help: "The CSV to write or resume.")
    var out: String
    @Flag(help: "Start --out afresh when it exists but is not a profile this command can resume.")
    var force = false

    enum LimitMethod: String, ExpressibleByArgument, CaseIterable {
        case auto, cgroup, rlimit
    }

    struct Target {
        /// What the worker loads: a zoo name or a file path.
        var spec: String
        /// What the CSV calls it: relative to the dataset, never absolute.
        var label: String
        var baseModel = "", mode = "", amount = "", seed = ""
    }

    func validate() throws {
        if stage == .train && precision != .fp32 {
            throw ValidationError("--stage train profiles fp32 training steps: leave out --precision")
        }
        _ = try batches()
        _ = try threadCounts()
        if let cores { try Affinity.validate(try Affinity.parse(cores)) }
        guard runs >= 1 else { throw ValidationError("--runs must be at least 1") }
        guard warmup >= 0 else { throw ValidationError("--warmup must not be negative") }
        guard minTime >= 0, minTime <= 3600 else { throw ValidationError("--min-time must be between 0 and 3600 seconds") }
        guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
        if let memoryLimit, memoryLimit.bytes < 16 << 20 {
            throw ValidationError("--memory-limit must be at least 16MiB (the runtime alone needs about that)")
        }
    }

    static func positiveList(_ text: String, _ option: String) throws -> [Int] {
        let items = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        guard !items.isEmpty else { throw ValidationError("\(option) is empty") }
        let values = try items.map { item -> Int in
            guard let v = Int(item), v >= 1, v <= 1 << 20 else {
                throw ValidationError("\(option): '\(item)' is not a positive integer")
            }
            return v
        }
        return Array(Set(values)).sorted()
    }

    func batches() throws -> [Int] { try Self.positiveList(batch, "--batch") }
    func threadCounts() throws -> [Int] { try Self.positiveList(threads, "--threads") }

    /// The models SOURCE names, with their dataset metadata when it comes from a manifest.
    func targets() throws -> [Target] {
        var isDirectory: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: source, isDirectory: &isDirectory)
        if exists && isDirectory.boolValue {
            let manifest = (source as NSString).appendingPathComponent("manifest.csv")
            if FileManager.default.fileExists(atPath: manifest) { return try Self.fromManifest(manifest) }
            let files = try FileManager.default.contentsOfDirectory(atPath: source).filter { $0.hasSuffix(".onnx") }.sorted()
            guard !files.isEmpty else { throw ValidationError("\(source) holds no manifest.csv and no .onnx file") }
            return files.map { Target(spec: (source as NSString).appendingPathComponent($0), label: $0) }
        }
        if source.hasSuffix(".csv") {
            guard exists else { throw ValidationError("\(source) does not exist") }
            return try Self.fromManifest(source)
        }
        if ModelSource.isFile(source) {
            guard exists else { throw ValidationError("\(source) does not exist") }
            let label = source.hasPrefix("/") ? (source as NSString).lastPathComponent : source
            return [Target(spec: source, label: label)]
        }
        do { _ = try Zoo.entry(named: source) } catch { throw ValidationError("\(error)") }
        return [Target(spec: source, label: source, baseModel: source)]
    }

    static func fromManifest(_ path: String) throws -> [Target] {
        let manifest = try DatasetManifest(path: path)
        guard !manifest.rows.isEmpty else { throw ValidationError("\(path) lists no variants") }
        let dir = (path as NSString).deletingLastPathComponent
        return try manifest.rows.map { row in
            let file = dir.isEmpty ? row.file : (dir as NSString).appendingPathComponent(row.file)
            guard FileManager.default.fileExists(atPath: file) else {
                throw ValidationError("\(path): \(row.file) is listed but missing")
            }
            return Target(spec: file, label: row.file, baseModel: row.baseModel, mode: row.mode, amount: row.amount,
                          seed: row.seed)
        }
    }

    func run() throws {
        let targets = try targets()
        let batchList = try batches(), threadList = try threadCounts()
        let machine = MachineInfo.current()
        let coreText = try cores.map { try Affinity.parse($0).map(String.init).joined(separator: ",") } ?? ""
        var done = Set<String>(), failed: [String: Int] = [:]
        // A resumed file keeps its own columns (one written by an older version lacks newer ones).
        var fileColumns = ProfileRecord.columns, needsHeader = true
        if FileManager.default.fileExists(atPath: out) {
            do {
                let existing = try ProfileRecord.readWithHeader(path: out)
                if !existing.header.isEmpty { fileColumns = existing.header; needsHeader = false }
                for record in existing.records where record.row == .model {
                    done.insert(record.key)
                    if record.status == .failed {
                        let key = Self.failureKey(record.model, record.threads, record.cores, record.machine.fingerprint, record.precision)
                        failed[key] = min(failed[key] ?? .max, record.batch)
                    }
                }
            } catch {
                guard force else {
                    throw ValidationError("\(out) exists but cannot be resumed (\(error)); choose another --out or pass --force to start it afresh")
                }
                try FileManager.default.removeItem(atPath: out)
            }
        }
        if needsHeader {
            try CSV.append(CSV.line(ProfileRecord.columns), to: out)
        }
        let worker = try Self.executablePath()
        var progress = ProgressBar(total: targets.count * threadList.count * batchList.count)
        var summary = TextTable([.left("MODEL"), .right("BATCH"), .right("THREADS"), .left("STATUS"), .right("MEDIAN MS"),
                                 .right("PLANNED MiB"), .right("PEAK MiB"), .left("NOTE")])
        var serial = 0, measured = 0, failures = 0, skipped = 0
        for target in targets {
            for t in threadList {
                for b in batchList {
                    let item = "\(target.label) batch \(b) threads \(t)"
                    var record = ProfileRecord(machine: machine)
                    record.model = target.label; record.baseModel = target.baseModel; record.mode = target.mode
                    record.amount = target.amount; record.seed = target.seed
                    record.batch = b; record.threads = t; record.cores = coreText
                    record.precision = precision.rawValue
                    record.stage = stage.rawValue
                    record.runs = runs; record.warmup = warmup; record.memoryLimitBytes = memoryLimit?.bytes ?? 0
                    if done.contains(record.key) {
                        skipped += 1
                        progress.advance(item, skipped: true)
                        continue
                    }
                    let failKey = Self.failureKey(target.label, t, coreText, machine.fingerprint, precision.rawValue)
                    if tillFirstFail, let first = failed[failKey], b > first {
                        skipped += 1
                        summary.append([target.label, String(b), String(t), "skipped", "", "", "", "batch \(first) failed"])
                        progress.advance(item, skipped: true)
                        continue
                    }
                    progress.show(item)
                    serial += 1
                    let rows = try measure(target, batch: b, threads: t, record: record, worker: worker, serial: serial)
                    var text = ""
                    for var row in rows {
                        row.timestamp = ISO8601DateFormatter().string(from: Date())
                        text += CSV.line(row.fields(in: fileColumns))
                    }
                    try CSV.append(text, to: out)
                    let head = rows[0]
                    measured += 1
                    if head.status == .failed {
                        failures += 1
                        failed[failKey] = min(failed[failKey] ?? .max, b)
                    }
                    summary.append([target.label, String(b), String(t), head.status.rawValue,
                                    head.medianMs.map { String(format: "%.3f", $0) } ?? "",
                                    head.plannedBytes.map { String(format: "%.1f", Double($0) / 1_048_576) } ?? "",
                                    head.peakRSSBytes.map { String(format: "%.1f", Double($0) / 1_048_576) } ?? "",
                                    head.reason])
                    progress.advance(item)
                }
            }
        }
        if !summary.rows.isEmpty { print(summary.render()) }
        print("\(measured) configuration(s) measured (\(failures) failed), \(skipped) skipped; rows in \(out)")
    }

    static func failureKey(_ model: String, _ threads: Int, _ cores: String, _ machine: String, _ precision: String = "fp32") -> String {
        "\(model)|\(threads)|\(cores)|\(machine)" + (precision == "fp32" ? "" : "|\(precision)")
    }

    /// This binary, which runs itself as the worker.
    static func executablePath() throws -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { throw ValidationError("cannot find this program's path (/proc/self/exe)") }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Runs one configuration in a child process and turns what it reports (or how it ended)
    /// into the model row and, with --layers, the layer rows.
    func measure(_ target: Target, batch b: Int, threads t: Int, record: ProfileRecord, worker: String,
                 serial: Int) throws -> [ProfileRecord] {
        var record = record
        let limit = memoryLimit?.bytes ?? 0
        let group = limitMethod == .rlimit ? nil : ProfileCgroup.make(limit: limit, serial: serial)
        if group == nil && limitMethod == .cgroup {
            throw ValidationError("--limit-method cgroup: cannot create a memory cgroup here (needs a writable cgroup v2 with the memory controller delegated, or cgroup v1's memory hierarchy); use --limit-method rlimit")
        }
        defer { group?.remove() }
        record.limitMethod = limit == 0 ? "" : group?.version.rawValue ?? "rlimit-as"
        var arguments = ["profile-worker", "--model", target.spec, "--batch", String(b), "--threads", String(t),
                         "--runs", String(runs), "--warmup", String(warmup), "--min-time", String(minTime)]
        if !record.cores.isEmpty { arguments += ["--cores", record.cores] }
        if layers { arguments.append("--layers") }
        if precision != .fp32 { arguments += ["--precision", precision.rawValue] }
        if stage != .inference { arguments += ["--stage", stage.rawValue] }
        if let group { arguments += ["--cgroup", group.path] } else if limit > 0 { arguments += ["--memory-limit", String(limit)] }
        let outcome = try ChildProcess.run(worker, arguments, timeout: timeout)
        record.cgroupPeakBytes = group?.peakBytes
        if let result = ProfileWorkerResult(outcome) {
            record.status = .ok
            record.meanMs = result.meanMs; record.medianMs = result.medianMs; record.p99Ms = result.p99Ms
            record.minMs = result.minMs; record.maxMs = result.maxMs
            if let done = result.timedRuns { record.runs = done }
            record.params = result.params; record.macs = result.macs; record.flops = result.flops
            record.plannedWeightBytes = result.plannedWeightBytes; record.plannedArenaBytes = result.plannedArenaBytes
            record.plannedScratchpadBytes = result.plannedScratchpadBytes; record.plannedIOBytes = result.plannedIOBytes
            record.plannedBytes = result.plannedBytes
            record.baselineRSSBytes = result.baselineRSSBytes; record.peakRSSBytes = result.peakRSSBytes
            record.anonymousRSSBytes = result.anonymousRSSBytes
            record.compiledRuntimeBytes = result.compiledRuntimeBytes
            var rows = [record]
            for layer in result.layers?.layers ?? [] {
                var row = ProfileRecord(machine: record.machine)
                row.row = .layer
                row.model = record.model; row.baseModel = record.baseModel; row.mode = record.mode
                row.amount = record.amount; row.seed = record.seed; row.batch = b; row.threads = t
                row.precision = record.precision
                row.stage = record.stage
                row.cores = record.cores; row.runs = min(record.runs, 5000); row.warmup = warmup
                row.memoryLimitBytes = record.memoryLimitBytes; row.limitMethod = record.limitMethod
                row.kernelIndex = layer.kernel.index; row.kernel = layer.kernel
                row.layerMedianMs = layer.medianMs; row.layerMeanMs = layer.meanMs; row.layerShare = layer.share
                rows.append(row)
            }
            return rows
        }
        record.status = .failed
        record.reason = outcome.failureReason(oomKilled: group?.oomKilled ?? false, limit: limit)
        return [record]
    }
}

/// A child process run to completion (or killed at its timeout), its output kept in files so
/// that a chatty child can never block on a full pipe.
struct ChildProcess {
    var status: Int32
    var signal: Int32?
    var timedOut: Bool
    var stdout: String
    var stderr: String

    static func run(_ executable: String, _ arguments: [String], timeout: Double) throws -> ChildProcess {
        let dir = FileManager.default.temporaryDirectory
        let outURL = dir.appendingPathComponent("metronome-child-\(getpid())-\(UUID().uuidString).out")
        let errURL = dir.appendingPathComponent("metronome-child-\(getpid())-\(UUID().uuidString).err")
        guard FileManager.default.createFile(atPath: outURL.path, contents: nil),
              FileManager.default.createFile(atPath: errURL.path, contents: nil) else {
            throw ValidationError("cannot create temporary files in \(dir.path) for the child's output")
        }
        defer {
            try? FileManager.default.removeItem(at: outURL)
            try? FileManager.default.removeItem(at: errURL)
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = try FileHandle(forWritingTo: outURL)
        process.standardError = try FileHandle(forWritingTo: errURL)
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let start = Date()
        var timedOut = false
        while process.isRunning {
            if Date().timeIntervalSince(start) > timeout {
                timedOut = true
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
                break
            }
            usleep(10_000)
        }
        process.waitUntilExit()
        let out = (try? String(contentsOf: outURL, encoding: .utf8)) ?? ""
        let err = (try? String(contentsOf: errURL, encoding: .utf8)) ?? ""
        let signaled = process.terminationReason == .uncaughtSignal
        return ChildProcess(status: signaled ? -1 : process.terminationStatus,
                            signal: signaled ? process.terminationStatus : nil, timedOut: timedOut, stdout: out, stderr: err)
    }

    /// Why the child did not report a result, in words for the CSV's `reason` column.
    func failureReason(oomKilled: Bool, limit: Int) -> String {
        let lines = stderr.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        // A crash's own message (Swift's "Fatal error: …"), not the backtracer's closing lines.
        let lastError = signal != nil ? lines.first { $0.contains("Fatal error") }
            : lines.last { !$0.isEmpty && !$0.hasPrefix("warning:") }
        if timedOut { return "timed out" }
        if let signal {
            let name = [6: "SIGABRT", 9: "SIGKILL", 11: "SIGSEGV", 4: "SIGILL", 7: "SIGBUS", 8: "SIGFPE", 5: "SIGTRAP"][Int(signal)]
                ?? "signal \(signal)"
            if oomKilled || (signal == SIGKILL && limit > 0) {
                return "out of memory: killed (\(name)) at the \(limit) byte limit"
            }
            return "crashed: \(name)" + (lastError.map { " (\($0))" } ?? "")
        }
        let message = lastError.map { $0.hasPrefix("Error: ") ? String($0.dropFirst(7)) : $0 } ?? "exit status \(status)"
        return message
    }
}

/// What `metronome profile` times.
enum ProfileStage: String, ExpressibleByArgument, CaseIterable {
    case inference, train
}
