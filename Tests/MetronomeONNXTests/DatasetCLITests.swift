import Foundation
import CLITestHarness
import XCTest

/// `metronome dataset`: the manifest's rows and columns against `metronome summary --json` of
/// each written file and Python's hashlib, resuming, and refusals.
final class DatasetCLITests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws { dir = try Harness.temporaryDirectory("dataset-cli") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    /// The manifest as header plus rows of fields (the test's own split: no field here needs quoting).
    func manifest(_ out: String) throws -> [[String]] {
        try String(contentsOfFile: out + "/manifest.csv", encoding: .utf8)
            .split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
    }

    /// sha256 of every file in `files`, from Python's hashlib.
    func hashlib(_ files: [String]) throws -> [String: String] {
        let py = try Harness.python(modules: ["hashlib", "json"])
        let script = "import hashlib, json, sys; print(json.dumps({p: hashlib.sha256(open(p, 'rb').read()).hexdigest() for p in sys.argv[1:]}))"
        let r = try Harness.run("/usr/bin/env", [py, "-c", script] + files)
        XCTAssertEqual(r.status, 0, r.stderr)
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: String])
    }

    func summary(_ bin: String, _ model: String) throws -> [String: Any] {
        let r = try Harness.run(bin, ["summary", model, "--json", "--no-plan"])
        XCTAssertEqual(r.status, 0, r.stderr)
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
    }

    func testManifestMatchesSummaryAndHashlib() throws {
        let bin = try Harness.metronome()
        let out = path("ds")
        let r = try Harness.run(bin, ["dataset", "--models", "noscope-coral", "--amounts", "0:0.5:0.25",
                                      "--modes", "l1,random", "--seeds", "2", "--out", out])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("9/9"), r.stderr)
        XCTAssertTrue(r.stderr.contains("ETA"), r.stderr)
        let rows = try manifest(out)
        XCTAssertEqual(rows.first, ["file", "base_model", "mode", "amount", "seed", "params", "macs", "flops", "weight_bytes", "sha256"])
        // 3 amounts x (l1 once + random with seeds 0 and 1).
        var expected: [[String]] = []
        for mode in ["l1", "random"] {
            for amount in ["0.00", "0.25", "0.50"] {
                for seed in mode == "l1" ? [""] : ["0", "1"] {
                    expected.append(["noscope-coral-\(mode)-\(amount)\(seed.isEmpty ? "" : "-s\(seed)").onnx", "noscope-coral", mode, amount, seed])
                }
            }
        }
        XCTAssertEqual(rows.dropFirst().map { Array($0.prefix(5)) }, expected)
        let files = rows.dropFirst().map { out + "/" + $0[0] }
        let hashes = try hashlib(files)
        let original = try summary(bin, "noscope-coral")
        for row in rows.dropFirst() {
            XCTAssertEqual(row.count, 10)
            let file = out + "/" + row[0]
            let s = try summary(bin, file)
            XCTAssertEqual(Int(row[5]), s["params"] as? Int, row[0])
            XCTAssertEqual(Int(row[6]), s["macs"] as? Int, row[0])
            XCTAssertEqual(Int(row[7]), s["flops"] as? Int, row[0])
            XCTAssertEqual(Int(row[8]), s["weight_bytes"] as? Int, row[0])
            XCTAssertEqual(row[9], hashes[file], row[0])
            // The removed fraction is the requested amount (the prune tests bound the error).
            let fraction = 1 - Double(Int(row[5])!) / Double(original["params"] as! Int)
            XCTAssertEqual(fraction, Double(row[3])!, accuracy: 0.02, row[0])
        }
        // At amount 0 the variant is the original model.
        XCTAssertEqual(Int(rows[1][5]), original["params"] as? Int)
        XCTAssertEqual(Int(rows[1][6]), original["macs"] as? Int)
    }

    func testResumeSkipsDoneVariantsAndRebuildsMissingOrChangedOnes() throws {
        let bin = try Harness.metronome()
        let out = path("ds")
        let args = ["dataset", "--models", "noscope-coral,game-sot-timer3", "--amounts", "0.2,0.4", "--modes", "l1", "--out", out]
        XCTAssertEqual(try Harness.run(bin, args).status, 0)
        let manifestPath = out + "/manifest.csv"
        let first = try Data(contentsOf: URL(fileURLWithPath: manifestPath))
        let names = try manifest(out).dropFirst().map { $0[0] }
        XCTAssertEqual(names.count, 4)
        func mtimes() throws -> [String: Date] {
            try Dictionary(uniqueKeysWithValues: names.map {
                ($0, try FileManager.default.attributesOfItem(atPath: out + "/" + $0)[.modificationDate] as! Date)
            })
        }
        let before = try mtimes()
        Thread.sleep(forTimeInterval: 1.1)

        // A second run writes nothing.
        var r = try Harness.run(bin, args)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("wrote 0 variant(s)"), r.stdout)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: manifestPath)), first)
        XCTAssertEqual(try mtimes(), before)

        // Deleting one file rebuilds just that one (l1 is deterministic: same bytes, same row).
        try FileManager.default.removeItem(atPath: out + "/" + names[1])
        r = try Harness.run(bin, args)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("wrote 1 variant(s)"), r.stdout)
        var after = try mtimes()
        for name in names where name != names[1] { XCTAssertEqual(after[name], before[name], name) }
        XCTAssertEqual(Set(try manifest(out).dropFirst().map { $0 }), Set(String(decoding: first, as: UTF8.self)
            .split(separator: "\n").dropFirst().map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }))
        XCTAssertEqual(try manifest(out).count, 5)

        // A changed file is rebuilt too, and its hash is again hashlib's.
        let handle = try XCTUnwrap(FileHandle(forWritingAtPath: out + "/" + names[2]))
        try handle.seekToEnd(); try handle.write(contentsOf: Data([0])); try handle.close()
        r = try Harness.run(bin, args)
        XCTAssertTrue(r.stdout.contains("wrote 1 variant(s)"), r.stdout)
        let row = try XCTUnwrap(try manifest(out).first { $0[0] == names[2] })
        XCTAssertEqual(row[9], try hashlib([out + "/" + names[2]])[out + "/" + names[2]])
        after = try mtimes()
        XCTAssertEqual(after[names[0]], before[names[0]])

        // A larger grid builds only the new amount's variants.
        r = try Harness.run(bin, ["dataset", "--models", "noscope-coral,game-sot-timer3", "--amounts", "0.2,0.4,0.6", "--modes", "l1", "--out", out])
        XCTAssertTrue(r.stdout.contains("wrote 2 variant(s)"), r.stdout)
        XCTAssertEqual(try manifest(out).count, 7)
    }

    /// `--skew early` gives random-weighted variants named and listed with their skew, byte
    /// for byte what `metronome prune` writes with the same mode, skew, seed and amount.
    func testSkewMatchesPrune() throws {
        let bin = try Harness.metronome()
        let out = path("skew")
        let r = try Harness.run(bin, ["dataset", "--models", "noscope-roundabout", "--amounts", "0.5", "--modes", "random-weighted",
                                      "--skew", "early", "--seeds", "2", "--out", out])
        XCTAssertEqual(r.status, 0, r.stderr)
        let rows = try manifest(out)
        XCTAssertEqual(rows.dropFirst().map { [$0[0], $0[2]] },
                       [["noscope-roundabout-random-weighted-early-0.50-s0.onnx", "random-weighted-early"],
                        ["noscope-roundabout-random-weighted-early-0.50-s1.onnx", "random-weighted-early"]])
        for seed in ["0", "1"] {
            let single = path("single-\(seed).onnx")
            let p = try Harness.run(bin, ["prune", "noscope-roundabout", "--amount", "0.5", "--mode", "random-weighted",
                                          "--skew", "early", "--seed", seed, "--out", single])
            XCTAssertEqual(p.status, 0, p.stderr)
            let hashes = try hashlib([single, out + "/noscope-roundabout-random-weighted-early-0.50-s\(seed).onnx"])
            XCTAssertEqual(Set(hashes.values).count, 1, "seed \(seed)")
        }
        let late = try Harness.run(bin, ["prune", "noscope-roundabout", "--amount", "0.5", "--mode", "random-weighted",
                                         "--seed", "0", "--out", path("late.onnx")])
        XCTAssertEqual(late.status, 0, late.stderr)
        let differ = try hashlib([path("late.onnx"), out + "/noscope-roundabout-random-weighted-early-0.50-s0.onnx"])
        XCTAssertEqual(Set(differ.values).count, 2, "early and late skews must prune differently")
    }

    func testRefusalsNameTheProblem() throws {
        let bin = try Harness.metronome()
        XCTAssertTrue(FileManager.default.createFile(atPath: path("plain"), contents: Data("x".utf8)))
        let base = ["dataset", "--models", "noscope-coral", "--modes", "l1"]
        for (args, text) in [
            (base + ["--amounts", "0.1", "--out", path("plain")], "not a directory"),
            (base + ["--amounts", "0.1", "--out", path("plain") + "/sub"], "cannot create the directory"),
            (base + ["--amounts", "0:0.9", "--out", path("a")], "START:STOP:STEP"),
            (base + ["--amounts", "0.5:0.1:0.1", "--out", path("a")], "STOP at least START"),
            (base + ["--amounts", "0:0.9:0", "--out", path("a")], "STEP must be positive"),
            (base + ["--amounts", "0.2,1.0", "--out", path("a")], "[0, 1)"),
            (base + ["--amounts", "0.2,x", "--out", path("a")], "comma-separated list"),
            (base + ["--amounts", "0.2,0.2", "--out", path("a")], "repeats"),
            (base + ["--amounts", "0.2", "--skew", "early", "--out", path("a")], "--skew applies only"),
            (["dataset", "--models", "noscope-coral", "--modes", "l2", "--amounts", "0.1", "--out", path("a")], "unknown mode 'l2'"),
            (base + ["--amounts", "0.1", "--seeds", "2", "--out", path("a")], "--seeds"),
            (["dataset", "--models", "no-such-model", "--amounts", "0.1", "--out", path("a")], "unknown model"),
            (["dataset", "--models", path("missing.onnx"), "--amounts", "0.1", "--out", path("a")], "missing.onnx does not exist"),
        ] {
            let r = try Harness.run(bin, args)
            XCTAssertFalse(r.signaled, "\(args)")
            XCTAssertNotEqual(r.status, 0, "\(args)")
            XCTAssertTrue(r.stderr.contains(text), "stderr of \(args) lacks '\(text)': \(r.stderr)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("a")), "a refused run created --out")

        // A malformed manifest is refused with its line; a file without a row needs --force.
        let out = path("ds")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let header = "file,base_model,mode,amount,seed,params,macs,flops,weight_bytes,sha256\n"
        let good = "x.onnx,noscope-coral,l1,0.10,,1,2,3,4,\(String(repeating: "a", count: 64))\n"
        try (header + good + "y.onnx,noscope-coral,l1,0.20,,1,two,3,4,\(String(repeating: "a", count: 64))\n")
            .write(toFile: out + "/manifest.csv", atomically: true, encoding: .utf8)
        var r = try Harness.run(bin, base + ["--amounts", "0.1", "--out", out])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("manifest.csv line 3") && r.stderr.contains("macs"), r.stderr)
        try (header + good + "z.onnx,1\n").write(toFile: out + "/manifest.csv", atomically: true, encoding: .utf8)
        r = try Harness.run(bin, base + ["--amounts", "0.1", "--out", out])
        XCTAssertTrue(r.stderr.contains("manifest.csv line 3") && r.stderr.contains("10 fields"), r.stderr)
        try FileManager.default.removeItem(atPath: out + "/manifest.csv")
        XCTAssertTrue(FileManager.default.createFile(atPath: out + "/noscope-coral-l1-0.10.onnx", contents: Data("mine".utf8)))
        r = try Harness.run(bin, base + ["--amounts", "0.1", "--out", out])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("noscope-coral-l1-0.10.onnx exists") && r.stderr.contains("--force"), r.stderr)
        XCTAssertEqual(try String(contentsOfFile: out + "/noscope-coral-l1-0.10.onnx", encoding: .utf8), "mine")
        r = try Harness.run(bin, base + ["--amounts", "0.1", "--out", out, "--force"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try manifest(out).count, 2)
    }

    /// An ONNX file as the base model, with a quote in its name: the manifest quotes the
    /// fields (Python's csv module reads them back), and a rerun parses them and skips.
    func testONNXFileInputAndQuotedFields() throws {
        let bin = try Harness.metronome()
        let py = try Harness.python(modules: ["csv", "json"])
        let model = path("my \"net\".onnx")
        XCTAssertEqual(try Harness.run(bin, ["export", "noscope-coral", "--out", model]).status, 0)
        let out = path("ds")
        let args = ["dataset", "--models", model, "--amounts", "0.3", "--modes", "l1,random", "--out", out]
        var r = try Harness.run(bin, args)
        XCTAssertEqual(r.status, 0, r.stderr)
        let script = "import csv, json, sys; print(json.dumps(list(csv.reader(open(sys.argv[1], newline='')))))"
        let read = try Harness.run("/usr/bin/env", [py, "-c", script, out + "/manifest.csv"])
        XCTAssertEqual(read.status, 0, read.stderr)
        let rows = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(read.stdout.utf8)) as? [[String]])
        XCTAssertEqual(rows.count, 3)
        XCTAssertEqual(rows[1].prefix(5), ["my \"net\"-l1-0.30.onnx", model, "l1", "0.30", ""])
        XCTAssertEqual(rows[2].prefix(5), ["my \"net\"-random-0.30-s0.onnx", model, "random", "0.30", "0"])
        for row in rows.dropFirst() {
            XCTAssertEqual(row.count, 10)
            XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/" + row[0]), row[0])
        }
        r = try Harness.run(bin, args)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("wrote 0 variant(s)"), r.stdout)
    }
}
