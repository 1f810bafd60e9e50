import Foundation
import Metronome
import CLITestHarness
import XCTest

/// `metronome profile` and `bench --layers`: memory limits that make a configuration really
/// fail, `--till-first-fail`, crashes and hangs isolated in their child process, resuming,
/// per-kernel rows, and the measured memory against the planner's figure.
final class ProfileCLITests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws { dir = try Harness.temporaryDirectory("profile-cli") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    /// The CSV as dictionaries keyed by column (Python's csv module, an independent reader).
    func rows(_ csvPath: String) throws -> [[String: String]] {
        let py = try Harness.python(modules: ["csv", "json"])
        let r = try Harness.run("/usr/bin/env", [py, "-c", "import csv, json, sys; print(json.dumps(list(csv.DictReader(open(sys.argv[1])))))", csvPath])
        XCTAssertEqual(r.status, 0, r.stderr)
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: String]])
    }

    func plannedBytes(_ bin: String, _ model: String, batch: Int) throws -> Int {
        let r = try Harness.run(bin, ["summary", model, "--batch", String(batch), "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let d = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        return ["planned_arena_bytes", "planned_io_bytes", "planned_weight_bytes"].reduce(0) { $0 + ((d[$1] as? Int) ?? 0) }
    }

    /// Two tiny models from a dataset directory at three batch sizes under a 128 MiB limit: the
    /// batch the planner says needs far more fails for real, the larger one is skipped, and
    /// the first fits; with the address-space limit and with the default (a cgroup here when
    /// the machine allows one).
    func testMemoryLimitMakesLargeBatchesFailAndTillFirstFailSkipsLarger() throws {
        let bin = try Harness.metronome()
        let data = path("ds")
        let d = try Harness.run(bin, ["dataset", "--models", "noscope-coral,game-sot-timer3", "--amounts", "0", "--out", data])
        XCTAssertEqual(d.status, 0, d.stderr)
        let limit = 128 << 20
        for model in ["noscope-coral", "game-sot-timer3"] {
            XCTAssertLessThan(try plannedBytes(bin, model, batch: 1), limit / 4)
            XCTAssertGreaterThan(try plannedBytes(bin, model, batch: 2048), limit * 3 / 2)
        }
        for method in ["rlimit", "auto"] {
            let out = path("profile-\(method).csv")
            let r = try Harness.run(bin, ["profile", data, "--batch", "1,2048,8192", "--runs", "3", "--warmup", "1",
                                          "--memory-limit", "128MiB", "--limit-method", method, "--till-first-fail",
                                          "--out", out])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(r.stdout.contains("4 configuration(s) measured (2 failed), 2 skipped"), r.stdout)
            let table = try rows(out)
            XCTAssertEqual(table.count, 4)
            for file in ["noscope-coral-l1-0.00.onnx", "game-sot-timer3-l1-0.00.onnx"] {
                let mine = table.filter { $0["model"] == file }
                XCTAssertEqual(mine.map { $0["batch"] }, ["1", "2048"], "\(method) \(file)")
                XCTAssertEqual(mine.map { $0["status"] }, ["ok", "failed"], "\(method) \(file)")
                XCTAssertEqual(mine.first?["mode"], "l1")
                XCTAssertEqual(mine.first?["amount"], "0.00")
                let reason = mine.last?["reason"] ?? ""
                XCTAssertTrue(reason.contains("out of memory") || reason.contains("cannot allocate"), reason)
                XCTAssertEqual(mine.last?["memory_limit_bytes"], String(limit))
                let used = mine.last?["limit_method"] ?? ""
                XCTAssertTrue(method == "rlimit" ? used == "rlimit-as" : ["cgroup-v1", "cgroup-v2", "rlimit-as"].contains(used), used)
                XCTAssertTrue(r.stdout.contains("batch 2048 failed"), r.stdout)
            }
        }
    }

    /// A crash and a hang end their own configuration only; the rest of the sweep is measured.
    func testCrashAndHangAreRecordedAndTheSweepGoesOn() throws {
        let bin = try Harness.metronome()
        let out = path("p.csv")
        let crash = try runWithEnvironment(bin, ["profile", "noscope-coral", "--batch", "1,2,4", "--runs", "3", "--warmup", "1", "--out", out],
                                           ["METRONOME_PROFILE_INJECT": "crash:2"])
        XCTAssertEqual(crash.status, 0, crash.stderr)
        let hang = try runWithEnvironment(bin, ["profile", "game-sot-timer3", "--batch", "1,3", "--runs", "3", "--timeout", "3", "--out", out],
                                          ["METRONOME_PROFILE_INJECT": "hang:3"])
        XCTAssertEqual(hang.status, 0, hang.stderr)
        let table = try rows(out)
        XCTAssertEqual(table.map { "\($0["model"]!) \($0["batch"]!) \($0["status"]!)" },
                       ["noscope-coral 1 ok", "noscope-coral 2 failed", "noscope-coral 4 ok",
                        "game-sot-timer3 1 ok", "game-sot-timer3 3 failed"])
        XCTAssertTrue(table[1]["reason"]?.contains("SIGABRT") == true, table[1]["reason"] ?? "")
        XCTAssertEqual(table[4]["reason"], "timed out")
        for row in table where row["status"] == "ok" {
            XCTAssertGreaterThan(Double(row["median_ms"] ?? "") ?? 0, 0)
            XCTAssertLessThanOrEqual(Double(row["min_ms"]!)!, Double(row["median_ms"]!)!)
            XCTAssertLessThanOrEqual(Double(row["median_ms"]!)!, Double(row["max_ms"]!)!)
        }
    }

    func runWithEnvironment(_ bin: String, _ arguments: [String], _ environment: [String: String]) throws -> Harness.Result {
        let env = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        return try Harness.run("/usr/bin/env", env.map { "\($0.key)=\($0.value)" }.sorted() + [bin] + arguments)
    }

    /// The memory the kernel reports for the worker against the planner's sum (weights, arena,
    /// scratchpad, inputs and outputs): anonymous memory within 2 MiB + 3%, the resident peak
    /// above it by no more than the libraries paged in; and within 2% once what compiling and
    /// creating the executor left resident (`compiled_runtime_bytes`, read before anything ran)
    /// is added, since this model has no gemm-based convolution (whose kernels oneDNN generates
    /// on the first run). Before AVX-512 its inner products run on oneDNN's sgemm
    /// (`x64:gemm:jit`), which sets up at most 2 MiB once per process on its first run
    /// (``RuntimeMemory/key(_:)``): then that much more is allowed, and no more.
    func testMeasuredMemoryMatchesThePlan() throws {
        let bin = try Harness.metronome()
        let out = path("mem.csv")
        let r = try Harness.run(bin, ["profile", "noscope-coral", "--batch", "1,64", "--runs", "3", "--warmup", "1", "--layers", "--out", out])
        XCTAssertEqual(r.status, 0, r.stderr)
        let table = try rows(out)
        let sgemm = table.contains { $0["row"] == "layer" && $0["implementation"] == "x64:gemm:jit" }
        for row in table where row["row"] == "model" {
            let planned = Double(row["planned_bytes"]!)!, anon = Double(row["anon_rss_bytes"]!)!
            let peak = Double(row["peak_rss_bytes"]!)!
            XCTAssertEqual(Int(planned), try plannedBytes(bin, "noscope-coral", batch: Int(row["batch"]!)!)
                           + Int(row["planned_scratchpad_bytes"]!)!)
            XCTAssertEqual(anon, planned, accuracy: 2 * 1_048_576 + 0.03 * planned, "batch \(row["batch"]!)")
            let compiled = try XCTUnwrap(Double(row["compiled_runtime_bytes"] ?? ""), "compiled_runtime_bytes")
            XCTAssertGreaterThan(compiled, 256 * 1024, "oneDNN's primitives hold JIT code")
            let once = sgemm ? 2.0 * 1_048_576 : 0
            XCTAssertGreaterThan(anon, planned + compiled - 0.02 * anon, "batch \(row["batch"]!): planned \(planned) + compiled \(compiled)")
            XCTAssertLessThan(anon, planned + compiled + once + 0.02 * anon, "batch \(row["batch"]!): planned \(planned) + compiled \(compiled), sgemm \(sgemm)")
            XCTAssertGreaterThanOrEqual(peak, anon - 1_048_576)
            XCTAssertLessThan(peak, planned + 16 * 1_048_576)
        }
    }

    /// A profile written before a column existed is resumed in its own columns: the appended
    /// rows line up with its header (read by Python's csv module), and the file still reads.
    func testResumingAnOlderFileKeepsItsColumns() throws {
        let bin = try Harness.metronome()
        let out = path("old.csv")
        let first = try Harness.run(bin, ["profile", "noscope-coral", "--batch", "1", "--runs", "2", "--warmup", "1", "--min-time", "0",
                                          "--out", out])
        XCTAssertEqual(first.status, 0, first.stderr)
        // Drop compiled_runtime_bytes, as a file from before it existed would lack it.
        let py = try Harness.python(modules: ["csv"])
        let strip = try Harness.run("/usr/bin/env", [py, "-c", """
            import csv, sys
            rows = list(csv.DictReader(open(sys.argv[1])))
            fields = [f for f in rows[0].keys() if f != "compiled_runtime_bytes"]
            w = csv.DictWriter(open(sys.argv[1], "w", newline=""), fieldnames=fields, extrasaction="ignore", lineterminator="\\n")
            w.writeheader(); w.writerows(rows)
            """, out])
        XCTAssertEqual(strip.status, 0, strip.stderr)
        let resumed = try Harness.run(bin, ["profile", "noscope-coral", "--batch", "1,2", "--runs", "2", "--warmup", "1", "--min-time", "0",
                                            "--out", out])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stdout.contains("1 configuration(s) measured (0 failed), 1 skipped"), resumed.stdout)
        let table = try rows(out)
        XCTAssertEqual(table.map { $0["batch"] }, ["1", "2"])
        XCTAssertNil(table[0]["compiled_runtime_bytes"])
        XCTAssertEqual(table.map { $0["status"] }, ["ok", "ok"])
        XCTAssertTrue(table.allSatisfy { Int($0["anon_rss_bytes"] ?? "") ?? 0 > 0 }, "\(table)")
        let again = try Harness.run(bin, ["profile", "noscope-coral", "--batch", "1,2", "--runs", "2", "--warmup", "1", "--out", out])
        XCTAssertTrue(again.stdout.contains("0 configuration(s) measured (0 failed), 2 skipped"), again.stdout + again.stderr)
    }

    /// Resuming skips what is done; --layers rows describe the compiled kernels, whose output
    /// shapes match the cost model's per-layer shapes; the machine columns match /proc/cpuinfo.
    func testResumeLayersAndMachineColumns() throws {
        let bin = try Harness.metronome()
        let out = path("layers.csv")
        let args = ["profile", "noscope-coral", "--batch", "2", "--threads", "1,2", "--runs", "3", "--warmup", "1", "--layers", "--out", out]
        let first = try Harness.run(bin, args)
        XCTAssertEqual(first.status, 0, first.stderr)
        let again = try Harness.run(bin, args)
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertTrue(again.stdout.contains("0 configuration(s) measured (0 failed), 2 skipped"), again.stdout)
        let table = try rows(out)
        let models = table.filter { $0["row"] == "model" }, layers = table.filter { $0["row"] == "layer" }
        XCTAssertEqual(models.map { $0["threads"] }, ["1", "2"])
        XCTAssertEqual(layers.count % 2, 0)
        XCTAssertGreaterThan(layers.count, 4)
        let s = try Harness.run(bin, ["summary", "noscope-coral", "--batch", "2", "--json", "--no-plan"])
        let summary = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(s.stdout.utf8)) as? [String: Any])
        let costLayers = try XCTUnwrap(summary["layers"] as? [[String: Any]])
        let convShapes = costLayers.filter { $0["op"] as? String == "Conv" }
            .compactMap { ($0["output_shapes"] as? [[Int]])?.first?.map(String.init).joined(separator: "x") }
        let convKernels = layers.filter { $0["threads"] == "1" && $0["op_type"] == "Conv" }
        XCTAssertEqual(convKernels.map { $0["dst_shape"]! }, convShapes)
        for k in convKernels {
            XCTAssertEqual(k["primitive"], "convolution")
            XCTAssertFalse(k["implementation"]!.isEmpty)
            XCTAssertFalse(k["implementation"]!.hasPrefix("ref"), k["implementation"]!)
            XCTAssertTrue(k["nodes"]!.hasPrefix(k["kernel_name"]!), k["nodes"]!)
        }
        let share = layers.filter { $0["threads"] == "1" }.reduce(0.0) { $0 + Double($1["layer_share"]!)! }
        XCTAssertEqual(share, 1, accuracy: 1e-3)
        let cpuinfo = try String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)
        let model = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }?
            .split(separator: ":", maxSplits: 1).last?.trimmingCharacters(in: .whitespaces) ?? "unknown"
        for row in table {
            XCTAssertEqual(row["cpu_model"], model)
            XCTAssertEqual(row["logical_cpus"], String(ProcessInfo.processInfo.activeProcessorCount))
            XCTAssertEqual(row["machine"]?.count, 16)
            XCTAssertFalse(row["onednn_version"]!.isEmpty)
            XCTAssertFalse(row["metronome_version"]!.isEmpty)
        }
    }

    /// `--precision bf16` rows sit beside fp32 rows of the same configuration (the precision
    /// is part of the key), their convolutions are bf16, and their planned weights take about
    /// half the bytes.
    func testPrecisionIsAColumnAndPartOfTheKey() throws {
        let bin = try Harness.metronome()
        let out = path("precision.csv")
        let base = ["profile", "noscope-coral", "--batch", "1", "--runs", "3", "--warmup", "1", "--layers", "--out", out]
        XCTAssertEqual(try Harness.run(bin, base).status, 0)
        let bf16 = try Harness.run(bin, base + ["--precision", "bf16"])
        XCTAssertEqual(bf16.status, 0, bf16.stderr)
        guard MachineInfo.bf16Kernels else {
            // No AVX-512: the configuration is recorded as failed, with the reason, and the
            // sweep goes on; a rerun does not retry it.
            XCTAssertTrue(bf16.stdout.contains("1 configuration(s) measured (1 failed)"), bf16.stdout)
            let models = try rows(out).filter { $0["row"] == "model" }
            XCTAssertEqual(models.map { $0["precision"] }, ["fp32", "bf16"])
            XCTAssertEqual(models.last?["status"], "failed")
            XCTAssertTrue(models.last?["reason"]?.contains("it needs AVX-512") == true, "\(String(describing: models.last))")
            return
        }
        XCTAssertTrue(bf16.stdout.contains("1 configuration(s) measured"), bf16.stdout)
        let again = try Harness.run(bin, base + ["--precision", "bf16"])
        XCTAssertTrue(again.stdout.contains("0 configuration(s) measured (0 failed), 1 skipped"), again.stdout)
        let table = try rows(out)
        let models = table.filter { $0["row"] == "model" }
        XCTAssertEqual(models.map { $0["precision"] }, ["fp32", "bf16"])
        let w32 = try XCTUnwrap(models.first?["planned_weight_bytes"].flatMap(Double.init))
        let w16 = try XCTUnwrap(models.last?["planned_weight_bytes"].flatMap(Double.init))
        XCTAssertLessThan(w16, 0.6 * w32)
        let convs = table.filter { $0["row"] == "layer" && $0["precision"] == "bf16" && $0["op_type"] == "Conv" }
        XCTAssertFalse(convs.isEmpty)
        for k in convs { XCTAssertTrue(k["dst_layout"]!.hasSuffix(":bf16"), k["dst_layout"]!) }
    }

    /// `--stage train` times training steps in the same CSV: the stage is part of the key, the
    /// trainer's memory is planned, and a training step costs more than an inference.
    func testTrainingStepsAreAStageOfTheProfile() throws {
        let bin = try Harness.metronome()
        let out = path("train.csv")
        let base = ["profile", "lenet5", "--batch", "8", "--runs", "5", "--warmup", "1", "--out", out]
        XCTAssertEqual(try Harness.run(bin, base).status, 0)
        let train = try Harness.run(bin, base + ["--stage", "train"])
        XCTAssertEqual(train.status, 0, train.stderr)
        XCTAssertTrue(train.stdout.contains("1 configuration(s) measured"), train.stdout)
        let models = try rows(out).filter { $0["row"] == "model" }
        XCTAssertEqual(models.map { $0["stage"] }, ["inference", "train"])
        let inference = Double(models[0]["median_ms"]!)!, step = Double(models[1]["median_ms"]!)!
        XCTAssertGreaterThan(step, inference, "a training step includes the forward pass")
        // Parameters, every value and its gradient are held: more than the inference arena.
        XCTAssertGreaterThan(Int(models[1]["planned_bytes"]!)!, Int(models[0]["planned_bytes"]!)!)
        let refused = try Harness.run(bin, base + ["--stage", "train", "--precision", "bf16"])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.stderr.contains("--precision"), refused.stderr)
    }

    /// `--min-time`: a 0.1 ms network keeps being timed past --runs until the time has passed,
    /// and the runs column records how many runs were made; `--min-time 0` makes exactly --runs.
    func testMinimumTimeSetsTheRunCount() throws {
        let bin = try Harness.metronome()
        let timed = path("timed.csv"), counted = path("counted.csv")
        let a = try Harness.run(bin, ["profile", "noscope-coral", "--runs", "3", "--warmup", "1", "--min-time", "0.25", "--layers", "--out", timed])
        XCTAssertEqual(a.status, 0, a.stderr)
        let b = try Harness.run(bin, ["profile", "noscope-coral", "--runs", "3", "--warmup", "1", "--min-time", "0", "--out", counted])
        XCTAssertEqual(b.status, 0, b.stderr)
        let model = try XCTUnwrap(try rows(timed).first { $0["row"] == "model" })
        let runs = try XCTUnwrap(Int(model["runs"] ?? ""))
        let mean = try XCTUnwrap(Double(model["mean_ms"] ?? ""))
        XCTAssertGreaterThan(runs, 3)
        // The timed runs together last about the minimum time (their sum leaves out the clock
        // reads between runs), and not many runs more.
        XCTAssertGreaterThanOrEqual(Double(runs) * mean, 250 * 0.9)
        XCTAssertLessThan(Double(runs - 1) * mean, 250 * 1.5 + 2 * mean)
        XCTAssertTrue(try rows(timed).filter { $0["row"] == "layer" }.allSatisfy { Int($0["runs"] ?? "") == min(runs, 5000) })
        XCTAssertEqual(try rows(counted).first { $0["row"] == "model" }?["runs"], "3")
    }

    func testRefusals() throws {
        let bin = try Harness.metronome()
        let bad = path("bad.csv")
        try "a,b\n1,2\n".write(toFile: bad, atomically: true, encoding: .utf8)
        let r = try Harness.run(bin, ["profile", "noscope-coral", "--out", bad])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("cannot be resumed") && r.stderr.contains("--force"), r.stderr)
        XCTAssertEqual(try String(contentsOfFile: bad, encoding: .utf8), "a,b\n1,2\n")
        for (args, message) in [(["--memory-limit", "1MiB"], "at least 16MiB"), (["--memory-limit", "lots"], "memory-limit"),
                                (["--batch", "0"], "--batch"), (["--threads", "x"], "--threads"), (["--runs", "0"], "--runs"),
                                (["--min-time", "-1"], "--min-time")] {
            let e = try Harness.run(bin, ["profile", "noscope-coral", "--out", path("x.csv")] + args)
            XCTAssertNotEqual(e.status, 0)
            XCTAssertTrue(e.stderr.contains(message), "\(args): \(e.stderr)")
        }
        let missing = try Harness.run(bin, ["profile", path("nope.onnx"), "--out", path("x.csv")])
        XCTAssertTrue(missing.stderr.contains("does not exist"), missing.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("x.csv")))
    }

    /// `bench --layers --json`: one entry per kernel with the implementation oneDNN chose, none
    /// of them a reference implementation on a zoo network, and a Chrome trace with one event each.
    func testBenchLayersAndTrace() throws {
        let bin = try Harness.metronome()
        let trace = path("trace.json")
        let r = try Harness.run(bin, ["bench", "mobilenet_v2", "--runs", "3", "--warmup", "1", "--layers", "--json", "--trace", trace])
        XCTAssertEqual(r.status, 0, r.stderr)
        let d = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let report = try XCTUnwrap(d["layers"] as? [String: Any])
        let layers = try XCTUnwrap(report["layers"] as? [[String: Any]])
        let kernels = (d["onednn_kernels"] as! Int) + (d["reference_kernels"] as! Int)
        XCTAssertEqual(layers.filter { ($0["kernel"] as? [String: Any])?["backend"] as? String != "copy" }.count, kernels)
        XCTAssertEqual(report["onednn_reference_implementations"] as? Int, 0)
        let convs = layers.compactMap { $0["kernel"] as? [String: Any] }.filter { $0["op_type"] as? String == "Conv" }
        XCTAssertEqual(convs.count, 52)  // MobileNetV2: 52 convolutions, each one kernel
        XCTAssertEqual(convs.filter { ($0["groups"] as? Int ?? 1) > 1 }.count, 17)  // its depthwise ones
        let events = try XCTUnwrap((Harness.json(URL(fileURLWithPath: trace)) as? [String: Any])?["traceEvents"] as? [[String: Any]])
        XCTAssertEqual(events.filter { $0["ph"] as? String == "X" }.count, layers.count)
        let again = try Harness.run(bin, ["bench", "mobilenet_v2", "--runs", "1", "--trace", trace])
        XCTAssertNotEqual(again.status, 0)
        XCTAssertTrue(again.stderr.contains("--force"), again.stderr)
    }

    /// Squeeze-excite's per-channel Mul beside a channel-blocked convolution output: oneDNN 2.6
    /// picks its reference binary (`ref:any`) for a plain broadcast operand; the compiler must
    /// find a layout pair with a JIT implementation. Checked on bench/bench_models.py's
    /// RegNet-style and SE-ResNet networks (their outputs are compared with ONNX Runtime in
    /// ONNXRuntimeOperatorTests' squeeze-excite graphs).
    func testSqueezeExciteHasNoReferenceImplementation() throws {
        let bin = try Harness.metronome()
        let py = try Harness.python(modules: ["onnx", "numpy"])
        let g = try Harness.run("/usr/bin/env", [py, Harness.root.appendingPathComponent("bench/bench_models.py").path, dir.path])
        XCTAssertEqual(g.status, 0, g.stderr)
        for model in ["regnet_y", "se_resnet18"] {
            let r = try Harness.run(bin, ["bench", path("\(model).onnx"), "--runs", "1", "--warmup", "0", "--layers", "--json"])
            XCTAssertEqual(r.status, 0, r.stderr)
            let d = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
            let report = try XCTUnwrap(d["layers"] as? [String: Any])
            let layers = try XCTUnwrap(report["layers"] as? [[String: Any]]).compactMap { $0["kernel"] as? [String: Any] }
            let slow = layers.filter { ($0["implementation"] as? String ?? "").hasPrefix("ref") }.map { "\($0["name"] ?? "?")" }
            XCTAssertEqual(slow, [], model)
            XCTAssertGreaterThan(layers.filter { $0["op_type"] as? String == "Mul" && $0["primitive"] as? String == "binary" }.count, 0, model)
        }
    }
}
