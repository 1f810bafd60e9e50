import ArgumentParser
import Foundation
import Metronome
import MetronomeAnalysis
import MetronomeIO
import MetronomeModels
import MetronomeONNX
import MetronomeTransforms

/// `metronome dataset`: prunes every model at every amount, mode and seed, writes each variant
/// as ONNX and indexes them in `DIR/manifest.csv` with their costs and sha256.
///
/// The manifest doubles as the resume state: a variant whose row exists and whose file still
/// has the recorded sha256 is skipped, so a rerun after an interruption (or with a larger
/// grid) only builds what is missing.
struct Dataset: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a dataset of pruned model variants and a manifest.csv that indexes them.",
        discussion: """
            For every model, mode, amount and seed, prunes the model as `metronome prune` does \
            and writes DIR/MODEL-MODE-AMOUNT[-sSEED].onnx. DIR/manifest.csv gets one row per \
            variant (file, base_model, mode, amount, seed, params, macs, flops, weight_bytes, \
            sha256), appended as each variant finishes. Rerunning skips variants whose row exists \
            and whose file has the recorded sha256, and rebuilds missing or changed ones. \
            l1 is deterministic: one variant per amount, with an empty seed. random and \
            random-weighted get seeds 0..<N from --seeds. --skew sets random-weighted's depth \
            skew (default late, as in `metronome prune`); with early or uniform its variants are \
            named, and listed in the manifest's mode column, as random-weighted-early or \
            random-weighted-uniform.

            sampled:N adds N sampled CNN architectures (input sizes 28-224, plain, residual, \
            bottleneck, depthwise and grouped blocks, pooling, flattened inner products): \
            training data for the latency predictor that belongs to no family (`metronome \
            evaluate --train-also`). `--amounts 0` keeps them unpruned.
            """)

    @Option(help: "Comma-separated zoo names (and the groups game, noscope, specialized; sampled:N for the sampled architectures sampled-0 … sampled-(N-1)) or .onnx files.")
    var models: String
    @Option(help: "Fractions of the parameters to remove: START:STOP:STEP (STOP included when a step lands on it) or a comma list, each in [0, 1).")
    var amounts: String
    @Option(help: "Comma-separated pruning modes: l1, random, random-weighted.")
    var modes: String = "l1"
    @Option(help: "Seeds 0..<N for the random modes. (default: 1)")
    var seeds: Int?
    @Option(help: "Depth skew of random-weighted: early, late or uniform. (default: late)")
    var skew: PruneSkew?
    @Option(help: "Output directory (created if missing).")
    var out: String
    @Flag(help: "Replace variant files that exist in DIR but are not in its manifest.")
    var force = false

    /// One file of the grid.
    struct Variant {
        var spec: String
        var mode: PruneMode
        /// The mode as file names and the manifest write it (random-weighted's skew included
        /// unless it is the default, late).
        var modeLabel: String
        var amount: Double
        var amountText: String
        var seed: UInt64?
        var file: String
    }

    func validate() throws {
        _ = try plan()
    }

    /// The grid in the order it is built (model, mode, amount, seed); refuses bad arguments
    /// before any file is written.
    func plan() throws -> [Variant] {
        let specs = ArgumentLists.models(models).filter { !$0.isEmpty }
        guard !specs.isEmpty else { throw ValidationError("--models is empty") }
        var stems: [String: String] = [:]
        for spec in specs {
            if ModelSource.isFile(spec) {
                guard FileManager.default.fileExists(atPath: spec) else { throw ValidationError("--models: \(spec) does not exist") }
            } else {
                do { _ = try Zoo.entry(named: spec) } catch { throw ValidationError("--models: \(error)") }
            }
            let stem = Self.stem(spec)
            if let other = stems[stem] {
                throw ValidationError("--models: \(other) and \(spec) would both write variants named \(stem)-…")
            }
            stems[stem] = spec
        }
        let modeList = try modes.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.map { name -> PruneMode in
            guard let m = PruneMode(rawValue: name) else {
                throw ValidationError("--modes: unknown mode '\(name)'; the modes are \(PruneMode.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            return m
        }
        guard !modeList.isEmpty else { throw ValidationError("--modes is empty") }
        guard Set(modeList).count == modeList.count else { throw ValidationError("--modes '\(modes)' repeats a mode") }
        if skew != nil && !modeList.contains(.randomWeighted) {
            throw ValidationError("--skew applies only to the random-weighted mode")
        }
        if let seeds {
            guard seeds >= 1 else { throw ValidationError("--seeds must be at least 1, got \(seeds)") }
            guard modeList.contains(where: { $0 != .l1 }) else {
                throw ValidationError("--seeds applies only to the random modes; l1 has no random scores")
            }
        }
        let amountList = try ArgumentLists.amounts(amounts)
        let decimals = Self.decimals(amountList)
        var variants: [Variant] = []
        for spec in specs {
            for mode in modeList {
                for amount in amountList {
                    let text = String(format: "%.\(decimals)f", amount)
                    let seedList: [UInt64?] = mode == .l1 ? [nil] : (0..<UInt64(seeds ?? 1)).map { $0 }
                    let label = mode == .randomWeighted && (skew ?? .late) != .late ? "\(mode.rawValue)-\(skew!.rawValue)" : mode.rawValue
                    for seed in seedList {
                        let file = "\(Self.stem(spec))-\(label)-\(text)\(seed.map { "-s\($0)" } ?? "").onnx"
                        variants.append(Variant(spec: spec, mode: mode, modeLabel: label, amount: amount, amountText: text,
                                                seed: seed, file: file))
                    }
                }
            }
        }
        return variants
    }

    /// The name a model's variants start with: the zoo name, or the file name without `.onnx`.
    static func stem(_ spec: String) -> String {
        guard ModelSource.isFile(spec) else { return spec }
        let name = URL(fileURLWithPath: spec).lastPathComponent
        return name.hasSuffix(".onnx") ? String(name.dropLast(5)) : name
    }

    /// The fewest decimals (at least 2) that write every amount exactly, so file names sort
    /// and stay unique (0.05 and 0.055 must not both become "0.05").
    static func decimals(_ amounts: [Double]) -> Int {
        for d in 2...9 {
            let scale = pow(10, Double(d))
            if amounts.allSatisfy({ abs(($0 * scale).rounded() / scale - $0) < 1e-10 }) { return d }
        }
        return 9
    }

    func run() throws {
        let variants = try plan()
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        if fm.fileExists(atPath: out, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw ValidationError("--out \(out) exists and is not a directory") }
        } else {
            do { try fm.createDirectory(atPath: out, withIntermediateDirectories: true) } catch {
                throw ValidationError("--out: cannot create the directory \(out): \(error.localizedDescription)")
            }
        }
        let probe = (out as NSString).appendingPathComponent(".metronome-write-test-\(getpid())")
        guard fm.createFile(atPath: probe, contents: Data()) else {
            throw ValidationError("--out: cannot write files in \(out)")
        }
        try? fm.removeItem(atPath: probe)

        var manifest = try DatasetManifest(path: (out as NSString).appendingPathComponent("manifest.csv"))
        // Which variants are done, which rows are stale (file missing or changed), and which
        // files exist without a row (not ours to replace without --force).
        var done = Set<String>(), stale = Set<String>()
        for v in variants {
            let path = (out as NSString).appendingPathComponent(v.file)
            let exists = fm.fileExists(atPath: path)
            if let row = manifest.row(file: v.file) {
                if exists, try SHA256Digest.file(path) == row.sha256 { done.insert(v.file) } else { stale.insert(v.file) }
            } else if exists && !force {
                throw ValidationError("\(path) exists but is not in \(manifest.path); pass --force to replace it")
            }
        }
        if !stale.isEmpty {
            FileHandle.standardError.write(Data("rebuilding \(stale.count) variant(s) whose file is missing or changed: \(stale.sorted().joined(separator: ", "))\n".utf8))
            try manifest.remove(files: stale)
        }

        var progress = ProgressBar(total: variants.count)
        var graphs: [String: Graph] = [:]
        var built = 0
        let start = Date()
        for v in variants {
            if done.contains(v.file) { progress.advance(v.file, skipped: true); continue }
            progress.show(v.file)
            let original: Graph
            if let g = graphs[v.spec] { original = g } else {
                original = try ModelSource.load(v.spec)
                graphs = [v.spec: original]  // one base model in memory at a time: the grid is ordered by model
            }
            let result = try prune(original, amount: v.amount, options: PruneOptions(mode: v.mode, skew: skew ?? .late, seed: v.seed ?? 0))
            let cost = try CostModel.analyze(result.graph, plan: false)
            // Write beside the target, record the row, then rename: a crash leaves either a
            // row whose file is missing (rebuilt on resume) or a stray .partial file, never a
            // file that looks complete without its row.
            let path = (out as NSString).appendingPathComponent(v.file)
            let partial = (out as NSString).appendingPathComponent(".\(v.file).partial")
            try ONNXExporter.write(result.graph, to: URL(fileURLWithPath: partial), overwrite: true)
            let digest = try SHA256Digest.file(partial)
            try manifest.append(DatasetManifest.Row(
                file: v.file, baseModel: v.spec, mode: v.modeLabel, amount: v.amountText, seed: v.seed.map(String.init) ?? "",
                params: cost.params, macs: cost.macs, flops: cost.flops, weightBytes: cost.weightBytes, sha256: digest))
            guard rename(partial, path) == 0 else {
                throw ValidationError("cannot rename \(partial) to \(path): \(String(cString: strerror(errno)))")
            }
            built += 1
            progress.advance(v.file)
        }
        let seconds = Date().timeIntervalSince(start)
        print("\(out): wrote \(built) variant(s) in \(String(format: "%.1f", seconds)) s, skipped \(variants.count - built) already in the manifest; "
            + "\(manifest.rows.count) row(s) in \(manifest.path)")
    }
}
