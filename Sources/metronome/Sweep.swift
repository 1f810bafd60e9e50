import ArgumentParser
import Foundation
import Metronome
import MetronomeAnalysis

struct Sweep: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "FoldedCNNs throughput sweep: original vs folded models, written as CSV and SVG.",
        discussion: """
            For each model and batch B, compiles the original and its folds, then in each \
            trial times the original first (B images per run) and then each fold f (floor(B/f) \
            folded inputs per run), after warm-up runs. Throughput is the images of one run \
            over the median run time (robust to load from other processes), counting every \
            image inside the folded inputs. Writes the FoldedCNNs CSV columns \
            Model,Trial,Fold,Batch Size,Mode,Throughput,FLOPs/sec,TputNorm,FLOPNorm (Norm = ratio \
            to the same trial's original; Batch Size is the requested B) and an SVG chart of \
            throughput vs fold next to it. --models accepts the aliases game, noscope and \
            specialized. Folded models have fresh seeded weights: this measures speed only.
            """)

    @Option(help: "Comma-separated zoo names or .onnx files, or game / noscope / specialized.") var models = "game"
    @Option(help: "Comma-separated batch sizes B.") var batch = "256"
    @Option(help: "Comma-separated fold factors (the original always runs).") var fold = "1,2,3,4"
    @Option(help: "Trials (each times every configuration once).") var trials = 3
    @Option(help: "Threads per inference (default: all cores).") var threads = ProcessInfo.processInfo.activeProcessorCount
    @Option(help: "Timed runs per measurement.") var runs = 10
    @Option(help: "Untimed warm-up runs before each measurement.") var warmup = 3
    @Option(help: "Seed of the folded models' weights and of the inputs.") var seed: UInt64 = 0
    @Option(help: "Round folded widths up to a multiple of this (1 = the paper's floor(sqrt(f)*W)).")
    var align = 1
    @Option(help: "CSV output path; the chart goes to the same path with .svg.") var out: String
    @Flag(help: "Replace existing output files.") var force = false
    @Flag(help: "Print the summary as JSON instead of a table (the CSV and SVG are written either way).") var json = false

    /// `results.csv` → `results.svg`, in the same directory and spelled the same way.
    var svgPath: String {
        let ext = URL(fileURLWithPath: out).pathExtension
        return ext.isEmpty ? out + ".svg" : String(out.dropLast(ext.count)) + "svg"
    }

    func validate() throws {
        let batches = try ArgumentLists.ints(batch, option: "--batch")
        let folds = try ArgumentLists.ints(fold, option: "--fold")
        guard batches.allSatisfy({ $0 >= 1 }), folds.allSatisfy({ $0 >= 1 }) else {
            throw ValidationError("--batch and --fold values must be at least 1")
        }
        for b in batches { for f in folds where b < f {
            throw ValidationError("batch \(b) holds no complete group of \(f) images; use batches of at least \(f)")
        } }
        guard trials >= 1, runs >= 1, threads >= 1 else { throw ValidationError("--trials, --runs and --threads must be at least 1") }
        guard warmup >= 0 else { throw ValidationError("--warmup must not be negative") }
        guard align >= 1 else { throw ValidationError("--align must be at least 1") }
        guard !ArgumentLists.models(models).isEmpty else { throw ValidationError("--models is empty") }
        try checkWritable(out, force: force)
        try checkWritable(svgPath, force: force)
    }

    func run() throws {
        let names = ArgumentLists.models(models)
        let graphs = try names.map { ($0, try ModelSource.load($0)) }
        let config = SweepConfiguration(batches: try ArgumentLists.ints(batch, option: "--batch"),
                                        folds: try ArgumentLists.ints(fold, option: "--fold"), trials: trials,
                                        threads: threads, runs: runs, warmup: warmup, seed: seed,
                                        channelMultiple: align)
        FileHandle.standardError.write(Data("sweep: \(names.count) model(s), batch \(batch), folds \(fold), \(trials) trial(s), \(threads) thread(s)\n".utf8))
        let rows = try ThroughputSweep.run(models: graphs, configuration: config) { r in
            let line = String(format: "%@ trial %d fold %d: %.1f images/s (%.2fx)\n", r.model, r.trial, r.fold, r.throughput, r.throughputNorm)
            FileHandle.standardError.write(Data(line.utf8))
        }
        try ThroughputSweep.csv(rows).write(toFile: out, atomically: true, encoding: .utf8)
        try SweepChart.svg(rows).write(toFile: svgPath, atomically: true, encoding: .utf8)
        if !json { print("wrote \(out) and \(svgPath)") }
        let summaries = ThroughputSweep.summarize(rows)
        if json {
            let objects: [[String: Any]] = summaries.map {
                ["model": $0.model, "batch": $0.batchSize, "fold": $0.fold, "images_per_s": $0.medianThroughput,
                 "gflops_per_s": $0.medianFlopsPerSecond / 1e9, "vs_original": $0.medianNorm]
            }
            print(String(decoding: try JSONSerialization.data(withJSONObject: objects, options: [.prettyPrinted, .sortedKeys]), as: UTF8.self))
            return
        }
        var table = TextTable([.left("model"), .right("B"), .right("fold"), .right("images/s"), .right("GFLOP/s"), .right("vs orig")])
        for s in summaries {
            table.append([s.model, String(s.batchSize), String(s.fold), String(format: "%.1f", s.medianThroughput),
                          String(format: "%.2f", s.medianFlopsPerSecond / 1e9), String(format: "%.3fx", s.medianNorm)])
        }
        print(table.render())
    }
}
