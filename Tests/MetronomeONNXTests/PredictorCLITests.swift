import Foundation
import CLITestHarness
import XCTest

/// `fit`, `predict`, `evaluate` and `analyze --predicted` on a small real profile (three tiny
/// families pruned at three amounts), read back with Python's csv and json modules.
final class PredictorCLITests: XCTestCase {
    nonisolated(unsafe) static var shared: URL?

    /// One profiled dataset for all tests of the class (profiling is the slow part).
    func profile() throws -> (bin: String, dir: URL, csv: String) {
        let bin = try Harness.metronome()
        if let dir = Self.shared { return (bin, dir, dir.appendingPathComponent("profile.csv").path) }
        let dir = try Harness.temporaryDirectory("predictor-cli")
        let data = dir.appendingPathComponent("ds").path
        let d = try Harness.run(bin, ["dataset", "--models", "noscope-coral,noscope-roundabout,game-sot-timer3", "--amounts", "0,0.3,0.6",
                                      "--out", data])
        XCTAssertEqual(d.status, 0, d.stderr)
        let csv = dir.appendingPathComponent("profile.csv").path
        let p = try Harness.run(bin, ["profile", data, "--batch", "1,2", "--runs", "5", "--warmup", "2", "--layers", "--out", csv])
        XCTAssertEqual(p.status, 0, p.stderr)
        Self.shared = dir
        return (bin, dir, csv)
    }

    override class func tearDown() {
        if let dir = shared { try? FileManager.default.removeItem(at: dir) }
        shared = nil
    }

    func json(_ text: String) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], text)
    }

    func testFitPredictAndMemoryFromThePlan() throws {
        let (bin, dir, csv) = try profile()
        let predictor = dir.appendingPathComponent("p.json").path
        let f = try Harness.run(bin, ["fit", csv, "--folds", "3", "--out", predictor])
        XCTAssertEqual(f.status, 0, f.stderr)
        XCTAssertTrue(f.stdout.contains("fitted on 18 configurations (9 networks"), f.stdout)
        XCTAssertTrue(f.stdout.contains("cross-validated (3 folds)"), f.stdout)
        let again = try Harness.run(bin, ["fit", csv, "--out", predictor])
        XCTAssertNotEqual(again.status, 0)
        XCTAssertTrue(again.stderr.contains("--force"), again.stderr)

        let p = try Harness.run(bin, ["predict", "noscope-taipei", "--predictor", predictor, "--batch", "2", "--json"])
        XCTAssertEqual(p.status, 0, p.stderr)
        let report = try json(p.stdout)
        let latency = try XCTUnwrap(report["latency_ms"] as? Double)
        XCTAssertGreaterThan(latency, 0)
        let kernels = try XCTUnwrap(report["kernels"] as? [[String: Any]])
        let sum = kernels.reduce(0.0) { $0 + ($1["predicted_ms"] as! Double) }
        XCTAssertEqual(latency, sum + (report["overhead_ms"] as! Double), accuracy: 1e-9)
        XCTAssertEqual(report["machine_matches"] as? Bool, true)
        XCTAssertEqual(report["extrapolated"] as? Bool, false)
        // Memory from the plan equals the summary's planned arena + weights + I/O (+ scratchpad).
        let s = try Harness.run(bin, ["summary", "noscope-taipei", "--batch", "2", "--json"])
        let summary = try json(s.stdout)
        let memory = try XCTUnwrap(report["memory"] as? [String: Int])
        XCTAssertEqual(memory["arena_bytes"], summary["planned_arena_bytes"] as? Int)
        XCTAssertEqual(memory["weight_bytes"], summary["planned_weight_bytes"] as? Int)
        XCTAssertEqual(memory["io_bytes"], summary["planned_io_bytes"] as? Int)
        XCTAssertEqual(report["memory_bytes"] as? Int, memory.values.reduce(0, +))
        // The expected resident memory adds what compiling the network leaves resident (read in
        // a child process that runs nothing) and the once-per-process bytes fitted on the other
        // networks' profiles; measured on a network the predictor never saw, it is within 2%.
        XCTAssertTrue(f.stdout.contains("memory ≈ plan + "), f.stdout)
        let planned = try XCTUnwrap(report["memory_bytes"] as? Int)
        let resident = try XCTUnwrap(report["resident_bytes"] as? Int)
        XCTAssertGreaterThan(resident, planned)
        let measuredCSV = dir.appendingPathComponent("taipei.csv").path
        let m = try Harness.run(bin, ["profile", "noscope-taipei", "--batch", "2", "--runs", "2", "--warmup", "1", "--min-time", "0",
                                      "--out", measuredCSV])
        XCTAssertEqual(m.status, 0, m.stderr)
        let py = try Harness.python(modules: ["csv"])
        let r = try Harness.run("/usr/bin/env", [py, "-c", "import csv, sys; print(next(csv.DictReader(open(sys.argv[1])))['anon_rss_bytes'])", measuredCSV])
        let measured = try XCTUnwrap(Int(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)), r.stdout + r.stderr)
        XCTAssertLessThan(abs(resident - measured), abs(planned - measured), "planned \(planned), resident \(resident), measured \(measured)")
        XCTAssertLessThan(Double(abs(resident - measured)), 0.02 * Double(measured), "resident \(resident), measured \(measured)")
        // Outside the training grid: said on stderr and in the JSON.
        let outside = try Harness.run(bin, ["predict", "noscope-taipei", "--predictor", predictor, "--batch", "16", "--json"])
        XCTAssertEqual(try json(outside.stdout)["extrapolated"] as? Bool, true)
        XCTAssertTrue(outside.stderr.contains("outside the predictor's training grid"), outside.stderr)
        let missing = try Harness.run(bin, ["predict", "noscope-taipei", "--predictor", dir.appendingPathComponent("none.json").path])
        XCTAssertTrue(missing.stderr.contains("does not exist"), missing.stderr)
    }

    /// Training steps: `profile --stage train --layers` times each step of the trainer's program
    /// plus the gradient and optimizer pseudo-kernels; `fit --stage train` learns them and
    /// `predict --stage train` predicts a step and computes the trainer's memory, which the
    /// profile measured; predictors of one stage are refused for the other.
    func testTrainingStepPredictor() throws {
        let bin = try Harness.metronome()
        let dir = try Harness.temporaryDirectory("train-predictor")
        defer { try? FileManager.default.removeItem(at: dir) }
        let data = dir.appendingPathComponent("ds").path
        let d = try Harness.run(bin, ["dataset", "--models", "lenet5,game-sot-timer3", "--amounts", "0,0.4,0.7", "--out", data])
        XCTAssertEqual(d.status, 0, d.stderr)
        let csv = dir.appendingPathComponent("train.csv").path
        let p = try Harness.run(bin, ["profile", data, "--stage", "train", "--batch", "4,8", "--runs", "2", "--warmup", "1",
                                      "--min-time", "0", "--layers", "--out", csv])
        XCTAssertEqual(p.status, 0, p.stderr)
        let py = try Harness.python(modules: ["csv", "json"])
        let r = try Harness.run("/usr/bin/env", [py, "-c", "import csv, json, sys; print(json.dumps(list(csv.DictReader(open(sys.argv[1])))))", csv])
        let rows = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: String]])
        XCTAssertTrue(rows.allSatisfy { $0["stage"] == "train" })
        let lenet = rows.filter { $0["model"] == "lenet5-l1-0.00.onnx" && $0["batch"] == "8" }
        let layers = lenet.filter { $0["row"] == "layer" }
        // LeNet-5: 12 steps (2 conv, 4 ReLU, 2 max pool, flatten, 3 Gemm) + gradients + optimizer.
        XCTAssertEqual(layers.map { $0["op_type"]! },
                       ["Conv", "Relu", "MaxPool", "Conv", "Relu", "MaxPool", "Flatten", "Gemm", "Relu", "Gemm", "Relu", "Gemm",
                        "Gradients", "Optimizer"])
        XCTAssertTrue(layers.allSatisfy { Double($0["layer_median_ms"] ?? "") ?? 0 > 0 })
        // Convolutions name the oneDNN implementation that ran them; the Swift kernels, the set.
        for row in layers {
            let implementation = row["implementation"] ?? ""
            if row["op_type"] == "Conv" {
                XCTAssertTrue(implementation.hasPrefix("train:") && implementation != "train:fast" && implementation.contains(":avx")
                              || implementation.contains("gemm"), implementation)
            } else {
                XCTAssertEqual(implementation, "train:fast")
            }
        }

        let predictor = dir.appendingPathComponent("t.json").path
        let inferenceOnly = try Harness.run(bin, ["fit", csv, "--folds", "0", "--out", predictor])
        XCTAssertNotEqual(inferenceOnly.status, 0)
        XCTAssertTrue(inferenceOnly.stderr.contains("--stage train"), inferenceOnly.stderr)
        let f = try Harness.run(bin, ["fit", csv, "--stage", "train", "--folds", "0", "--out", predictor])
        XCTAssertEqual(f.status, 0, f.stderr)
        XCTAssertTrue(f.stdout.contains("fitted on 12 training-step configurations (6 networks"), f.stdout)
        let t = try Harness.run(bin, ["predict", "lenet5", "--stage", "train", "--predictor", predictor, "--batch", "8", "--json"])
        XCTAssertEqual(t.status, 0, t.stderr)
        let report = try json(t.stdout)
        XCTAssertEqual(report["stage"] as? String, "train")
        let kernels = try XCTUnwrap(report["kernels"] as? [[String: Any]])
        XCTAssertEqual(kernels.map { $0["family"] as? String },
                       ["conv_dense", "elementwise", "pooling", "conv_dense", "elementwise", "pooling", "copy", "inner_product",
                        "elementwise", "inner_product", "elementwise", "inner_product", "copy", "other"])
        XCTAssertGreaterThan(try XCTUnwrap(report["latency_ms"] as? Double), 0)
        // The trainer's memory, as the profile planned it for the same model and batch.
        let model = try XCTUnwrap(lenet.first { $0["row"] == "model" })
        let memory = try XCTUnwrap(report["memory"] as? [String: Int])
        XCTAssertEqual(memory["weight_bytes"], Int(model["planned_weight_bytes"]!))
        XCTAssertEqual(memory["arena_bytes"], Int(model["planned_arena_bytes"]!))
        XCTAssertEqual(memory["scratchpad_bytes"], Int(model["planned_scratchpad_bytes"]!))
        XCTAssertEqual(report["memory_bytes"] as? Int, Int(model["planned_bytes"]!))
        // LeNet-5 at batch 8 by hand: 61,706 parameters, held twice (the trainer's copy and the
        // graph's, kept for export). Scratchpad: Adam's two moments; both max poolings'
        // positions (8·6·14·14 and 8·16·5·5); the loss gradient (8 × 10); and the oneDNN
        // convolutions' blocked copies and workspace, whose sizes follow the layouts oneDNN
        // picks (TrainingTests checks them against the trainer's own allocations): more than
        // the second convolution's blocked input copy (8·8·14·14 floats, six channels padded
        // to eight), less than a MiB.
        XCTAssertEqual(memory["weight_bytes"], 2 * 61_706 * 4)
        let convolutions = try XCTUnwrap(memory["scratchpad_bytes"]) - (2 * 61_706 * 4 + (8 * 6 * 14 * 14 + 8 * 16 * 5 * 5) * 4 + 8 * 10 * 4)
        XCTAssertGreaterThanOrEqual(convolutions, 8 * 8 * 14 * 14 * 4)
        XCTAssertLessThan(convolutions, 1 << 20)
        XCTAssertEqual(memory["io_bytes"], 8 * 28 * 28 * 4)
        // Each stage's predictor is refused for the other.
        let wrongStage = try Harness.run(bin, ["predict", "lenet5", "--predictor", predictor])
        XCTAssertNotEqual(wrongStage.status, 0)
        XCTAssertTrue(wrongStage.stderr.contains("predicts training steps"), wrongStage.stderr)
        let (_, _, inferenceCSV) = try profile()
        let inference = dir.appendingPathComponent("i.json").path
        XCTAssertEqual(try Harness.run(bin, ["fit", inferenceCSV, "--folds", "0", "--out", inference]).status, 0)
        let wrongStage2 = try Harness.run(bin, ["predict", "lenet5", "--stage", "train", "--predictor", inference])
        XCTAssertTrue(wrongStage2.stderr.contains("fit --stage train"), wrongStage2.stderr)
        let e = try Harness.run(bin, ["evaluate", csv, "--stage", "train", "--split", "family", "--out", dir.appendingPathComponent("ev").path])
        XCTAssertEqual(e.status, 0, e.stderr)
        XCTAssertTrue(e.stdout.contains("family split: 2 folds over 6 networks, 12 configurations"), e.stdout)
    }

    /// Profiles from two machines are refused unless --mix-machines; a predictor from another
    /// machine makes `predict` warn and `analyze --predicted` refuse unless --force.
    func testOtherMachines() throws {
        let (bin, dir, csv) = try profile()
        let text = try String(contentsOfFile: csv, encoding: .utf8)
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let header = lines[0].split(separator: ",").map(String.init)
        let column = try XCTUnwrap(header.firstIndex(of: "machine"))
        // Another machine's copy of every row (no field before `machine` is quoted in this profile).
        for i in 1..<lines.count where !lines[i].isEmpty {
            var fields = lines[i].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            fields[column] = "ffffffffffffffff"
            lines[i] = fields.joined(separator: ",")
        }
        let other = dir.appendingPathComponent("other.csv").path
        try lines.joined(separator: "\n").write(toFile: other, atomically: true, encoding: .utf8)
        let mixed = try Harness.run(bin, ["fit", csv, other, "--folds", "0", "--out", dir.appendingPathComponent("m.json").path])
        XCTAssertNotEqual(mixed.status, 0)
        XCTAssertTrue(mixed.stderr.contains("2 machines") && mixed.stderr.contains("--mix-machines"), mixed.stderr)
        let forced = try Harness.run(bin, ["fit", csv, other, "--folds", "0", "--mix-machines", "--out", dir.appendingPathComponent("m.json").path])
        XCTAssertEqual(forced.status, 0, forced.stderr)

        let foreign = dir.appendingPathComponent("foreign.json").path
        let f = try Harness.run(bin, ["fit", other, "--folds", "3", "--out", foreign])
        XCTAssertEqual(f.status, 0, f.stderr)
        let p = try Harness.run(bin, ["predict", "noscope-coral", "--predictor", foreign])
        XCTAssertEqual(p.status, 0, p.stderr)
        XCTAssertTrue(p.stderr.contains("fitted on another machine"), p.stderr)
        let set = try taskSet(dir)
        let refused = try Harness.run(bin, ["analyze", set, "--predicted", "--predictor", foreign])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.stderr.contains("another machine") && refused.stderr.contains("--force"), refused.stderr)
        let accepted = try Harness.run(bin, ["analyze", set, "--predicted", "--predictor", foreign, "--force"])
        XCTAssertEqual(accepted.status, 0, accepted.stderr)
    }

    func taskSet(_ dir: URL) throws -> String {
        let path = dir.appendingPathComponent("predicted.yaml").path
        try """
        name: predicted
        duration: 1s
        policy: fixed-priority
        preemption: layer
        cores: [0, 1]
        tasks:
          - name: fast
            model: game-sot-timer3
            period: 5ms
            priority: 20
            cores: [0]
          - name: slow
            model: noscope-coral
            batch: 2
            period: 20ms
            priority: 10
            cores: [0]
        """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// `analyze --predicted`: each WCET is `predict`'s latency × (1 + the predictor's stored p99
    /// relative error), each NPR its longest kernel × the same; nothing is run.
    func testAnalyzePredicted() throws {
        let (bin, dir, csv) = try profile()
        let predictor = dir.appendingPathComponent("a.json").path
        let f = try Harness.run(bin, ["fit", csv, "--folds", "3", "--out", predictor])
        XCTAssertEqual(f.status, 0, f.stderr)
        let stored = try XCTUnwrap(try Harness.json(URL(fileURLWithPath: predictor)) as? [String: Any])
        let p99 = try XCTUnwrap((stored["validation"] as? [String: Any])?["p99_relative_error"] as? Double)
        let set = try taskSet(dir)
        let a = try Harness.run(bin, ["analyze", set, "--predicted", "--predictor", predictor, "--json"])
        XCTAssertEqual(a.status, 0, a.stderr)
        let tasks = try XCTUnwrap(try json(a.stdout)["tasks"] as? [[String: Any]])
        for (name, model, batch) in [("fast", "game-sot-timer3", 1), ("slow", "noscope-coral", 2)] {
            let r = try Harness.run(bin, ["predict", model, "--batch", String(batch), "--predictor", predictor, "--json"])
            let report = try json(r.stdout)
            let latency = report["latency_ms"] as! Double
            let longest = (report["kernels"] as! [[String: Any]]).map { $0["predicted_ms"] as! Double }.max()!
            let task = try XCTUnwrap(tasks.first { $0["name"] as? String == name })
            XCTAssertEqual(task["wcet_ms"] as! Double, latency * (1 + p99), accuracy: 1e-5 + 1e-6 * latency)
            XCTAssertEqual(task["npr_ms"] as! Double, longest * (1 + p99), accuracy: 1e-5 + 1e-6 * longest)
            XCTAssertNotNil(task["schedulable"])
        }
        let text = try Harness.run(bin, ["analyze", set, "--predicted", "--predictor", predictor])
        XCTAssertTrue(text.stdout.contains(String(format: "p99 relative error %.1f%%", p99 * 100)), text.stdout)
        XCTAssertFalse(text.stdout.contains("measuring"), text.stdout)
        let noCV = dir.appendingPathComponent("nocv.json").path
        XCTAssertEqual(try Harness.run(bin, ["fit", csv, "--folds", "0", "--out", noCV]).status, 0)
        let refused = try Harness.run(bin, ["analyze", set, "--predicted", "--predictor", noCV])
        XCTAssertTrue(refused.stderr.contains("no cross-validated error"), refused.stderr)
    }

    func testEvaluateWritesEveryMetric() throws {
        let (bin, dir, csv) = try profile()
        let out = dir.appendingPathComponent("eval").path
        let e = try Harness.run(bin, ["evaluate", csv, "--split", "family", "--out", out])
        XCTAssertEqual(e.status, 0, e.stderr)
        XCTAssertTrue(e.stdout.contains("family split: 3 folds over 9 networks, 18 configurations"), e.stdout)
        let py = try Harness.python(modules: ["csv", "json"])
        let r = try Harness.run("/usr/bin/env", [py, "-c", "import csv, json, sys; print(json.dumps([list(csv.DictReader(open(p))) for p in sys.argv[1:]]))",
                                                 out + "/metrics.csv", out + "/predictions.csv"])
        let tables = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[[String: String]]])
        let metrics = tables[0], predictions = tables[1]
        XCTAssertEqual(Set(metrics.map { $0["method"]! }), ["predictor", "flops_baseline", "kernels", "memory_plan", "memory_plan_runtime"])
        // Memory: the plan alone and with the runtime fitted on the other families, per held-out family.
        XCTAssertEqual(Set(metrics.filter { $0["method"] == "memory_plan_runtime" }.map { $0["subset"]! }),
                       ["all", "noscope-coral", "noscope-roundabout", "game-sot-timer3"])
        XCTAssertEqual(Set(metrics.filter { $0["method"] != "kernels" }.map { $0["subset"]! }),
                       ["all", "noscope-coral", "noscope-roundabout", "game-sot-timer3", "threads 1", "batch 1", "batch 2"])
        // Kernel-level rows: one per kernel family these networks compile to.
        XCTAssertTrue(Set(metrics.filter { $0["method"] == "kernels" }.map { $0["subset"]! }).isSuperset(of: ["conv_dense", "inner_product"]))
        for m in metrics {
            for key in ["count", "within_2", "within_5", "within_10", "mape", "rmspe", "spearman"] { XCTAssertNotNil(Double(m[key] ?? ""), key) }
        }
        XCTAssertEqual(predictions.count, 18)
        for p in predictions {
            for key in ["measured_bytes", "planned_bytes", "runtime_bytes"] { XCTAssertGreaterThan(Int(p[key] ?? "") ?? 0, 0, key) }
        }
        // Each prediction of a family comes from a fold that held that family out.
        XCTAssertTrue(predictions.allSatisfy { $0["fold"] == $0["family"] })
        let svg = try String(contentsOfFile: out + "/scatter.svg", encoding: .utf8)
        XCTAssertEqual(svg.components(separatedBy: "<circle cx=").count - 1, 2 * 18 + 3)  // two panels, three legend dots
        let again = try Harness.run(bin, ["evaluate", csv, "--out", out])
        XCTAssertTrue(again.stderr.contains("--force"), again.stderr)

        // --train-also: a profile of two sampled architectures joins every fold's training set
        // and is never tested; the evaluated profile itself is refused there.
        let sampledDir = dir.appendingPathComponent("sampled").path
        let sd = try Harness.run(bin, ["dataset", "--models", "sampled:2", "--amounts", "0", "--out", sampledDir])
        XCTAssertEqual(sd.status, 0, sd.stderr)
        let manifest = try String(contentsOfFile: sampledDir + "/manifest.csv", encoding: .utf8)
        XCTAssertTrue(manifest.contains("\nsampled-1-l1-0.00.onnx,sampled-1,l1,0.00,"), manifest)
        let sampledCSV = dir.appendingPathComponent("sampled.csv").path
        let sp = try Harness.run(bin, ["profile", sampledDir, "--batch", "1", "--runs", "3", "--warmup", "1", "--layers", "--out", sampledCSV])
        XCTAssertEqual(sp.status, 0, sp.stderr)
        let withSampled = dir.appendingPathComponent("eval-sampled").path
        let ws = try Harness.run(bin, ["evaluate", csv, "--split", "family", "--train-also", sampledCSV, "--out", withSampled])
        XCTAssertEqual(ws.status, 0, ws.stderr)
        XCTAssertTrue(ws.stdout.contains("family split: 3 folds over 9 networks, 18 configurations"), ws.stdout)
        XCTAssertFalse(try String(contentsOfFile: withSampled + "/predictions.csv", encoding: .utf8).contains("sampled"))
        let leak = try Harness.run(bin, ["evaluate", csv, "--train-also", csv, "--out", withSampled, "--force"])
        XCTAssertNotEqual(leak.status, 0)
        XCTAssertTrue(leak.stderr.contains("both evaluated and always trained on"), leak.stderr)

        // --retest: the CLI's files and columns (the metrics are checked by hand in
        // PredictorTests); a profile without a configuration in common is refused by name.
        let retest = dir.appendingPathComponent("retest").path
        let r2 = try Harness.run(bin, ["evaluate", csv, "--retest", csv, "--out", retest])
        XCTAssertEqual(r2.status, 0, r2.stderr)
        XCTAssertTrue(r2.stdout.contains("retest: 18 configurations of 9 networks measured twice"), r2.stdout)
        let header = try String(contentsOfFile: retest + "/predictions.csv", encoding: .utf8).split(separator: "\n").first
        XCTAssertEqual(header, "model,family,amount,batch,threads,fold,first_ms,second_ms")
        let retestMetrics = try String(contentsOfFile: retest + "/metrics.csv", encoding: .utf8)
        XCTAssertTrue(retestMetrics.contains("retest,all,18,1.0000,1.0000,1.0000,0.0000"), retestMetrics)
        XCTAssertTrue(try String(contentsOfFile: retest + "/scatter.svg", encoding: .utf8).contains("first median latency (ms)"))
        let empty = dir.appendingPathComponent("empty.csv").path
        let text = try String(contentsOfFile: csv, encoding: .utf8)
        try String(text.prefix { $0 != "\n" } + "\n").write(toFile: empty, atomically: true, encoding: .utf8)
        let none = try Harness.run(bin, ["evaluate", csv, "--retest", empty, "--out", retest, "--force"])
        XCTAssertNotEqual(none.status, 0)
        XCTAssertTrue(none.stderr.contains("no successful configuration in common"), none.stderr)
        let both = try Harness.run(bin, ["evaluate", csv, "--retest", csv, "--test", csv, "--out", retest, "--force"])
        XCTAssertTrue(both.stderr.contains("cannot be combined"), both.stderr)
    }
}
