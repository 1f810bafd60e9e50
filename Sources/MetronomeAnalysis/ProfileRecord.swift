import Foundation
import Metronome

/// One row of a `metronome profile` CSV: either a whole model in one configuration
/// (`row = model`) or one compiled kernel of it (`row = layer`, with `--layers`).
///
/// Every row carries the machine and conditions it was measured under, so that a file can be
/// read on its own, appended to on another day, and refused by a predictor when it mixes
/// machines. Model paths are relative to the profiled directory or manifest (never absolute),
/// so a dataset and its profile move together. The columns are documented in the README.
public struct ProfileRecord: Equatable, Sendable {
    public enum Kind: String, Sendable { case model, layer }
    public enum Status: String, Sendable { case ok, failed }

    public var row: Kind = .model
    // What was measured.
    public var model = ""
    public var baseModel = ""
    public var mode = ""
    public var amount = ""
    public var seed = ""
    /// The network family: the base model of a pruned variant, else the model itself.
    /// Sampled architectures (`sampled-N`, `metronome dataset --models sampled:N`) form one
    /// family, `sampled`: each is its own base model, but none belongs to a deployed family.
    public var family: String {
        let base = baseModel.isEmpty ? model : baseModel
        let rest = base.dropFirst("sampled-".count)
        return base.hasPrefix("sampled-") && !rest.isEmpty && rest.allSatisfy(\.isNumber) ? "sampled" : base
    }
    /// `inference` today; `train` arrives with training.
    public var stage = "inference"
    /// `fp32` or `bf16` (`profile --precision`); files written before the column read as fp32.
    public var precision = "fp32"
    public var batch = 1
    public var threads = 1
    /// Cores as given (`0,1`), empty when unpinned.
    public var cores = ""
    public var runs = 0
    public var warmup = 0
    /// 0 when no limit was set.
    public var memoryLimitBytes = 0
    /// How the limit was enforced: `cgroup-v2`, `cgroup-v1`, `rlimit-as`, or empty.
    public var limitMethod = ""
    public var status: Status = .ok
    /// Why a configuration failed (the child's error, the signal that ended it, a timeout).
    public var reason = ""
    // Model results (empty for failures and layer rows).
    public var meanMs: Double?
    public var medianMs: Double?
    public var p99Ms: Double?
    public var minMs: Double?
    public var maxMs: Double?
    public var params: Int?
    public var macs: Int?
    public var flops: Int?
    public var plannedWeightBytes: Int?
    public var plannedArenaBytes: Int?
    public var plannedScratchpadBytes: Int?
    public var plannedIOBytes: Int?
    /// Weights + arena + scratchpad + inputs/outputs: what the plan says it needs.
    public var plannedBytes: Int?
    /// The child's resident set before it loaded the model (runtime and libraries).
    public var baselineRSSBytes: Int?
    /// The child's peak resident set while running, minus the baseline.
    public var peakRSSBytes: Int?
    /// Anonymous resident memory after the timed runs, minus the baseline's: the plan's data
    /// (weights, arena, scratchpad, buffers) without the library code pages in the resident set.
    public var anonymousRSSBytes: Int?
    /// The cgroup's peak charge (resident memory and page cache) where a cgroup was used.
    public var cgroupPeakBytes: Int?
    /// Anonymous resident memory once the plan is compiled and its executor created (the graph
    /// dropped, freed memory returned, the arena not yet touched, nothing run), minus the
    /// baseline and the plan's weights: what oneDNN's primitives (JIT-generated code, primitive
    /// objects) and the executor's memory objects hold. Known before anything runs; empty in
    /// files written before the column existed.
    public var compiledRuntimeBytes: Int?
    // Layer results.
    public var kernelIndex: Int?
    public var kernel: KernelInfo?
    public var layerMedianMs: Double?
    public var layerMeanMs: Double?
    public var layerShare: Double?
    // Machine and conditions.
    public var machine: MachineInfo
    public var timestamp = ""

    public init(machine: MachineInfo) { self.machine = machine }

    public static let columns = [
        "row", "model", "base_model", "mode", "amount", "seed", "stage", "precision", "batch", "threads", "cores", "runs", "warmup",
        "memory_limit_bytes", "limit_method", "status", "reason",
        "mean_ms", "median_ms", "p99_ms", "min_ms", "max_ms", "params", "macs", "flops",
        "planned_weight_bytes", "planned_arena_bytes", "planned_scratchpad_bytes", "planned_io_bytes", "planned_bytes",
        "baseline_rss_bytes", "peak_rss_bytes", "anon_rss_bytes", "cgroup_peak_bytes", "compiled_runtime_bytes",
        "kernel_index", "kernel_name", "nodes", "op_type", "primitive", "implementation", "src_shape", "weights_shape",
        "dst_shape", "src_layout", "dst_layout", "kernel_shape", "strides", "dilations", "groups", "post_ops",
        "layer_median_ms", "layer_mean_ms", "layer_share",
        "machine", "cpu_model", "cpu_flags", "logical_cpus", "onednn_version", "onednn_isa", "governor", "cpu_mhz",
        "os_kernel", "metronome_version", "timestamp",
    ]

    /// The identity of a configuration: rows with equal keys measure the same thing on the same
    /// machine, so a resumed profile skips them.
    public var key: String {
        // fp32 rows keep the key they had before the precision column existed.
        ([model, stage] + (precision == "fp32" ? [] : [precision]) + [String(batch), String(threads), cores, machine.fingerprint])
            .joined(separator: "|")
    }

    public var fields: [String] {
        func num(_ v: Int?) -> String { v.map(String.init) ?? "" }
        func ms(_ v: Double?) -> String { v.map { String(format: "%.6f", $0) } ?? "" }
        func dims(_ v: [Int]?) -> String { v.map { $0.map(String.init).joined(separator: "x") } ?? "" }
        let k = kernel
        return [
            row.rawValue, model, baseModel, mode, amount, seed, stage, precision, String(batch), String(threads), cores,
            String(runs), String(warmup), String(memoryLimitBytes), limitMethod, status.rawValue, reason,
            ms(meanMs), ms(medianMs), ms(p99Ms), ms(minMs), ms(maxMs), num(params), num(macs), num(flops),
            num(plannedWeightBytes), num(plannedArenaBytes), num(plannedScratchpadBytes), num(plannedIOBytes),
            num(plannedBytes), num(baselineRSSBytes), num(peakRSSBytes), num(anonymousRSSBytes), num(cgroupPeakBytes),
            num(compiledRuntimeBytes),
            num(kernelIndex), k?.name ?? "", k?.nodes.joined(separator: "+") ?? "", k?.opType ?? "", k?.primitive ?? "",
            k?.implementation ?? "", dims(k?.srcShape), dims(k?.weightsShape), dims(k?.dstShape), k?.srcLayout ?? "",
            k?.dstLayout ?? "", dims(k?.kernelShape), dims(k?.strides), dims(k?.dilations), num(k?.groups),
            k?.postOps.joined(separator: "+") ?? "",
            ms(layerMedianMs), ms(layerMeanMs), layerShare.map { String(format: "%.6f", $0) } ?? "",
            machine.fingerprint, machine.cpuModel, machine.cpuFlags.joined(separator: " "), String(machine.logicalCPUs),
            machine.onednnVersion, machine.onednnISA, machine.governor, String(format: "%.0f", machine.cpuMHz),
            machine.kernel, machine.metronomeVersion, timestamp,
        ]
    }

    /// Reads a row written by ``fields`` (columns found by name, so files with extra columns
    /// still read). Errors name the column and the line.
    public init(fields: [String], header: [String], path: String, line: Int) throws {
        var index: [String: Int] = [:]
        for (i, h) in header.enumerated() { index[h] = i }
        func text(_ name: String) throws -> String {
            guard let i = index[name] else { throw CSV.FormatError(path: path, line: line, problem: "no column \(name)") }
            return i < fields.count ? fields[i] : ""
        }
        func bad(_ name: String, _ value: String, _ what: String) -> CSV.FormatError {
            CSV.FormatError(path: path, line: line, problem: "\(name) must be \(what), got '\(value)'")
        }
        func int(_ name: String) throws -> Int? {
            let v = try text(name)
            if v.isEmpty { return nil }
            guard let n = Int(v) else { throw bad(name, v, "an integer") }
            return n
        }
        func double(_ name: String) throws -> Double? {
            let v = try text(name)
            if v.isEmpty { return nil }
            guard let n = Double(v), n.isFinite else { throw bad(name, v, "a number") }
            return n
        }
        func dims(_ name: String) throws -> [Int] {
            let v = try text(name)
            if v.isEmpty { return [] }
            let parts = v.split(separator: "x", omittingEmptySubsequences: false).map { Int($0) }
            guard parts.allSatisfy({ $0 != nil }) else { throw bad(name, v, "dimensions like 1x3x224x224") }
            return parts.map { $0! }
        }
        guard fields.count == header.count else {
            throw CSV.FormatError(path: path, line: line, problem: "expected \(header.count) fields, got \(fields.count)")
        }
        let machine = MachineInfo(
            cpuModel: try text("cpu_model"), cpuFlags: try text("cpu_flags").split(separator: " ").map(String.init),
            logicalCPUs: try int("logical_cpus") ?? 0, onednnVersion: try text("onednn_version"),
            onednnISA: try text("onednn_isa"), governor: try text("governor"), cpuMHz: try double("cpu_mhz") ?? 0,
            kernel: try text("os_kernel"), metronomeVersion: try text("metronome_version"), fingerprint: try text("machine"))
        self.init(machine: machine)
        let rowText = try text("row"), statusText = try text("status")
        guard let kind = Kind(rawValue: rowText) else { throw bad("row", rowText, "model or layer") }
        guard let st = Status(rawValue: statusText) else { throw bad("status", statusText, "ok or failed") }
        row = kind
        status = st
        model = try text("model"); baseModel = try text("base_model"); mode = try text("mode")
        amount = try text("amount"); seed = try text("seed"); stage = try text("stage")
        precision = index["precision"] == nil ? "fp32" : try text("precision")
        guard ["fp32", "bf16"].contains(precision) else { throw bad("precision", precision, "fp32 or bf16") }
        guard let b = try int("batch"), b >= 1 else { throw bad("batch", try text("batch"), "a positive integer") }
        guard let t = try int("threads"), t >= 1 else { throw bad("threads", try text("threads"), "a positive integer") }
        batch = b; threads = t
        cores = try text("cores"); runs = try int("runs") ?? 0; warmup = try int("warmup") ?? 0
        memoryLimitBytes = try int("memory_limit_bytes") ?? 0; limitMethod = try text("limit_method")
        reason = try text("reason")
        meanMs = try double("mean_ms"); medianMs = try double("median_ms"); p99Ms = try double("p99_ms")
        minMs = try double("min_ms"); maxMs = try double("max_ms")
        params = try int("params"); macs = try int("macs"); flops = try int("flops")
        plannedWeightBytes = try int("planned_weight_bytes"); plannedArenaBytes = try int("planned_arena_bytes")
        plannedScratchpadBytes = try int("planned_scratchpad_bytes"); plannedIOBytes = try int("planned_io_bytes")
        plannedBytes = try int("planned_bytes"); baselineRSSBytes = try int("baseline_rss_bytes")
        peakRSSBytes = try int("peak_rss_bytes"); anonymousRSSBytes = try int("anon_rss_bytes")
        cgroupPeakBytes = try int("cgroup_peak_bytes")
        compiledRuntimeBytes = index["compiled_runtime_bytes"] == nil ? nil : try int("compiled_runtime_bytes")
        timestamp = try text("timestamp")
        if kind == .layer {
            kernelIndex = try int("kernel_index")
            let nodes = try text("nodes"), post = try text("post_ops")
            var k = KernelInfo(
                index: kernelIndex ?? 0, name: try text("kernel_name"),
                nodes: nodes.isEmpty ? [] : nodes.split(separator: "+").map(String.init), opType: try text("op_type"),
                backend: "", primitive: try text("primitive"), implementation: try text("implementation"),
                srcShape: try dims("src_shape"), weightsShape: try dims("weights_shape"), dstShape: try dims("dst_shape"),
                srcLayout: try text("src_layout"), dstLayout: try text("dst_layout"), kernelShape: try dims("kernel_shape"),
                strides: try dims("strides"), dilations: try dims("dilations"), groups: try int("groups") ?? 1,
                postOps: post.isEmpty ? [] : post.split(separator: "+").map(String.init))
            k.backend = k.implementation.hasPrefix("\(KernelInfo.trainingBackend):") ? KernelInfo.trainingBackend
                : k.primitive == "reference" ? "reference" : k.primitive == "copy" ? "copy" : "onednn"
            kernel = k
            layerMedianMs = try double("layer_median_ms"); layerMeanMs = try double("layer_mean_ms")
            layerShare = try double("layer_share")
        }
    }

    /// Reads a whole profile CSV.
    public static func read(path: String) throws -> [ProfileRecord] { try readWithHeader(path: path).records }

    /// Reads a whole profile CSV and its header (the columns it was written with, which a
    /// resumed profile keeps: a file from an older version gains no column mid-file).
    public static func readWithHeader(path: String) throws -> (header: [String], records: [ProfileRecord]) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CSV.FormatError(path: path, line: 0, problem: "cannot read the file")
        }
        let records = try CSV.parse(String(decoding: data, as: UTF8.self), path: path)
        guard let header = records.first?.fields else { return ([], []) }
        for required in ["row", "model", "batch", "threads", "status", "machine"] where !header.contains(required) {
            throw CSV.FormatError(path: path, line: 1, problem: "not a metronome profile: no column \(required)")
        }
        return (header, try records.dropFirst().map { try ProfileRecord(fields: $0.fields, header: header, path: path, line: $0.line) })
    }

    /// ``fields`` in the order of `header` (empty where this version has no such column, and
    /// this version's columns the header lacks left out).
    public func fields(in header: [String]) -> [String] {
        let values = Dictionary(zip(Self.columns, fields), uniquingKeysWith: { first, _ in first })
        return header.map { values[$0] ?? "" }
    }
}
