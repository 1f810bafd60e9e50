import Foundation
import Metronome
import MetronomeTransforms

/// Settings of a FoldedCNNs throughput sweep.
public struct SweepConfiguration: Sendable, Equatable {
    /// Requested batch sizes B: the original runs B images, fold f runs ⌊B/f⌋ folded inputs.
    public var batches: [Int]
    /// Fold factors; the original (f = 1) always runs first in each trial.
    public var folds: [Int]
    public var trials: Int
    /// Threads per inference (the executor's OpenMP team).
    public var threads: Int
    /// Timed runs per measurement, after `warmup` untimed ones.
    public var runs: Int
    public var warmup: Int
    /// Seed of the folded networks' fresh weights and of the inputs.
    public var seed: UInt64
    /// Folded widths rounded up to a multiple of this (1: the paper's ⌊√f·W⌋).
    public var channelMultiple: Int

    public init(batches: [Int], folds: [Int], trials: Int, threads: Int, runs: Int = 10, warmup: Int = 3, seed: UInt64 = 0,
                channelMultiple: Int = 1) {
        self.channelMultiple = channelMultiple
        self.batches = batches
        self.folds = folds
        self.trials = trials
        self.threads = threads
        self.runs = runs
        self.warmup = warmup
        self.seed = seed
    }

    func validate() throws {
        guard !batches.isEmpty, batches.allSatisfy({ $0 >= 1 }) else {
            throw MetronomeError.invalidArgument("batch sizes must be at least 1, got \(batches)")
        }
        guard !folds.isEmpty, folds.allSatisfy({ $0 >= 1 }) else {
            throw MetronomeError.invalidArgument("fold factors must be at least 1, got \(folds)")
        }
        for b in batches { for f in folds where b / f < 1 {
            throw MetronomeError.invalidArgument("batch \(b) holds no complete group of \(f) images; use a batch of at least \(f)")
        } }
        guard trials >= 1, runs >= 1, warmup >= 0, threads >= 1, channelMultiple >= 1 else {
            throw MetronomeError.invalidArgument("trials, runs and threads must be at least 1 and warm-up not negative")
        }
    }

    /// The fold factors in the order they run: 1 first, then the others as given.
    var order: [Int] {
        var seen: Set<Int> = [1]
        return [1] + folds.filter { seen.insert($0).inserted }
    }
}

/// One measurement, one row of the FoldedCNNs CSV.
public struct SweepRow: Sendable, Equatable, Codable {
    public var model: String
    public var trial: Int
    public var fold: Int
    /// The requested batch B (as the FoldedCNNs script logs it); folded rows ran ⌊B/f⌋ inputs.
    public var batchSize: Int
    /// `Original` or `Folded`.
    public var mode: String
    /// Images per second, counting every image inside the folded inputs.
    public var throughput: Double
    /// FLOPs per image × images per second (the cost model's total FLOPs of one input / f).
    public var flopsPerSecond: Double
    /// Ratios to the same trial's original row.
    public var throughputNorm: Double
    public var flopsNorm: Double
    /// Inputs per inference (⌊B/f⌋) and images they hold (f·⌊B/f⌋).
    public var inputs: Int
    public var images: Int
}

/// Runs the FoldedCNNs throughput comparison on the engine: for every model and batch, the
/// original network and its folded versions are compiled once, then each trial times the
/// original first and the folded versions after it, so that every ratio compares neighbours
/// in time.
public enum ThroughputSweep {
    public static let csvHeader = "Model,Trial,Fold,Batch Size,Mode,Throughput,FLOPs/sec,TputNorm,FLOPNorm"

    /// One compiled configuration.
    struct Config {
        let fold: Int
        let inputs: Int
        let executor: Executor
        let flopsPerImage: Double
        let buffers: PlanBuffers

        /// Images per second: the images of one run over the median duration of `runs` timed
        /// runs. The median rather than the total keeps bursts of load from other processes on
        /// a shared machine from deciding a ratio.
        func measure(runs: Int, warmup: Int) throws -> Double {
            let samples = try executor.timedRuns(runs, warmup: warmup, on: buffers)
            return Double(inputs * fold) * 1000 / (try LatencyStatistics(samples)).median
        }
    }

    static func compile(_ graph: Graph, fold f: Int, inputs: Int, configuration c: SweepConfiguration) throws -> Config {
        let g = f == 1 ? graph : try MetronomeTransforms.fold(graph, factor: f, seed: c.seed, channelMultiple: c.channelMultiple).graph
        let cost = try CostModel.analyze(g, batch: 1, plan: false)
        let plan = try Plan.compile(g, batch: inputs, options: CompileOptions(threads: c.threads))
        let executor = try Executor(plan: plan)
        var rng = SplitMix64(seed: c.seed &+ UInt64(f))
        return Config(fold: f, inputs: inputs, executor: executor, flopsPerImage: cost.flops > 0 ? Double(cost.flops) / Double(f) : 0,
                      buffers: PlanBuffers(plan: plan, generator: &rng, range: 0...1))
    }

    /// Runs the sweep; `progress` sees each row as soon as it is measured.
    public static func run(models: [(name: String, graph: Graph)], configuration c: SweepConfiguration,
                           progress: (SweepRow) -> Void = { _ in }) throws -> [SweepRow] {
        try c.validate()
        var rows: [SweepRow] = []
        for (name, graph) in models {
            for b in c.batches {
                var configs: [Config] = []
                for f in c.order { configs.append(try compile(graph, fold: f, inputs: b / f, configuration: c)) }
                for trial in 1...c.trials {
                    var original: (tput: Double, flops: Double)? = nil
                    for cfg in configs {
                        let tput = try cfg.measure(runs: c.runs, warmup: c.warmup)
                        let flops = tput * cfg.flopsPerImage
                        let base = original ?? (tput, flops)  // the original runs first in every trial
                        original = base
                        let row = SweepRow(
                            model: name, trial: trial, fold: cfg.fold, batchSize: b,
                            mode: cfg.fold == 1 ? "Original" : "Folded", throughput: tput, flopsPerSecond: flops,
                            throughputNorm: tput / base.tput,
                            flopsNorm: base.flops > 0 ? flops / base.flops : 0,
                            inputs: cfg.inputs, images: cfg.inputs * cfg.fold)
                        rows.append(row)
                        progress(row)
                    }
                }
            }
        }
        return rows
    }

    /// The FoldedCNNs CSV (columns of ``csvHeader``).
    public static func csv(_ rows: [SweepRow]) -> String {
        var s = csvHeader + "\n"
        for r in rows {
            let name = r.model.contains(",") ? "\"\(r.model)\"" : r.model
            s += "\(name),\(r.trial),\(r.fold),\(r.batchSize),\(r.mode),"
                + String(format: "%.2f,%.6e,%.4f,%.4f\n", r.throughput, r.flopsPerSecond, r.throughputNorm, r.flopsNorm)
        }
        return s
    }

    /// Per model and fold: median throughput and median normalized throughput over trials.
    public struct Summary: Sendable, Equatable {
        public var model: String
        public var batchSize: Int
        public var fold: Int
        public var medianThroughput: Double
        public var medianNorm: Double
        public var minThroughput: Double
        public var maxThroughput: Double
        public var medianFlopsPerSecond: Double
    }

    public static func summarize(_ rows: [SweepRow]) -> [Summary] {
        func median(_ v: [Double]) -> Double {
            let s = v.sorted()
            return s.isEmpty ? 0 : s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
        }
        var keys: [(String, Int, Int)] = []
        for r in rows where !keys.contains(where: { $0 == (r.model, r.batchSize, r.fold) }) {
            keys.append((r.model, r.batchSize, r.fold))
        }
        return keys.map { key in
            let g = rows.filter { ($0.model, $0.batchSize, $0.fold) == key }
            let t = g.map(\.throughput)
            return Summary(model: key.0, batchSize: key.1, fold: key.2, medianThroughput: median(t),
                           medianNorm: median(g.map(\.throughputNorm)), minThroughput: t.min() ?? 0,
                           maxThroughput: t.max() ?? 0, medianFlopsPerSecond: median(g.map(\.flopsPerSecond)))
        }
    }
}
