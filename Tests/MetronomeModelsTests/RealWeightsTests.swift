import Foundation
import Metronome
import MetronomeIO
import MetronomeModels
import CLITestHarness
import XCTest

/// EfficientNet-Lite0 with its real ImageNet weights (installed by `make weights`), read
/// from the package's legacy-format checkpoint, on real photographs.
final class RealWeightsTests: XCTestCase {
    func checkpointURL() throws -> URL {
        let url = PretrainedWeights.efficientNetLite0URL
        guard FileManager.default.fileExists(atPath: url.path) else {
            XCTFail("EfficientNet-Lite0 weights are not installed at \(url.path); run `make weights`")
            throw XCTSkip("weights missing")
        }
        return url
    }

    func testCheckpointLoadsIntoTheModel() throws {
        let c = try TorchCheckpoint.load(try checkpointURL())
        XCTAssertEqual(c.format, .legacy)
        XCTAssertEqual(c.entries.count, 296)
        XCTAssertEqual(c["_conv_stem.weight"]?.shape, [32, 3, 3, 3])
        let graph = try Zoo.entry(named: "efficientnet-lite0").build()
        XCTAssertEqual(Zoo.learnableParameterCount(graph), 4_652_008)
        XCTAssertEqual(graph.initializers["_fc.bias"]?.scalars, c["_fc.bias"]?.scalars)
    }

    /// classify on the cat, coffee and rocket photographs scikit-image ships; Metronome's
    /// logits against ONNX Runtime on the exported model; preprocessing against Pillow;
    /// the Swift checkpoint reader against a Python one.
    func testClassifiesPhotographsLikeONNXRuntime() throws {
        let url = try checkpointURL()
        let bin = try Harness.metronome()
        let work = try Harness.temporaryDirectory("real")
        defer { try? FileManager.default.removeItem(at: work) }
        let report = work.appendingPathComponent("report.json")
        let r = try Harness.runPython("real_weights_check.py", ["--metronome", bin, "--checkpoint", url.path, "--work", work.path,
                                                                "--report", report.path],
                                      modules: ["onnx", "onnxruntime", "numpy", "skimage", "PIL"])
        XCTAssertEqual(r.status, 0, r.stderr)
        print(r.stdout)
        guard let json = try Harness.json(report) as? [String: Any], let images = json["images"] as? [[String: Any]] else {
            return XCTFail("no report")
        }
        let acceptable: [String: Set<Int>] = [
            "chelsea.png": [281, 282, 285, 287],      // tabby, tiger cat, Egyptian cat, lynx
            "coffee.png": [504, 967, 968],            // coffee mug, espresso, cup
            "rocket.jpg": [657, 744, 812],            // missile, projectile, space shuttle
        ]
        XCTAssertEqual(images.count, 3)
        for image in images {
            let name = image["image"] as? String ?? "?"
            let top1 = image["top1"] as? Int ?? -1
            XCTAssertTrue(acceptable[name]?.contains(top1) ?? false, "\(name): top-1 \(top1) (\(ImageNetClasses.names[max(0, top1)]))")
            XCTAssertEqual(image["ort_top1"] as? Int, top1, name)
            XCTAssertLessThanOrEqual(image["ort_relerr"] as? Double ?? 1, 1e-4, name)
            // Within one 8-bit level of Pillow's resampling (which rounds to uint8), after normalization.
            XCTAssertLessThanOrEqual(image["preprocess_max_abs_diff"] as? Double ?? 1, 1.0 / 255 / 0.224 + 1e-3, name)
        }
        let c = try TorchCheckpoint.load(url)
        for name in ["_conv_stem.weight", "_blocks.15._project_conv.weight", "_fc.bias", "_bn1.running_var"] {
            let expected = try NPY.read(work.appendingPathComponent("ckpt_\(name).npy"))
            XCTAssertEqual(c[name]?.shape, expected.shape, name)
            XCTAssertEqual(c[name]?.scalars, expected.scalars, name)
        }
    }

    /// bf16 keeps EfficientNet-Lite0's top class on the photographs (a class a person would
    /// accept, as above) and its logits within a few percent of fp32.
    func testBF16KeepsTheTopClassOnPhotographs() throws {
        _ = try checkpointURL()
        let bin = try Harness.metronome()
        let data = try Self.scikitImageData()
        let acceptable: [String: Set<Int>] = ["chelsea.png": [281, 282, 285, 287], "coffee.png": [504, 967, 968], "rocket.jpg": [657, 744, 812]]
        let r = try Harness.run(bin, ["classify", "--precision", "bf16", "--top", "1"] + acceptable.keys.sorted().map { data + "/" + $0 })
        guard MachineInfo.bf16Kernels else {
            // No AVX-512: refused with the reason and the way out, nothing printed as a result.
            XCTAssertNotEqual(r.status, 0)
            XCTAssertTrue(r.stderr.contains("it needs AVX-512") && r.stderr.contains("--precision fp32"), r.stderr)
            return
        }
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = r.stdout.split(separator: "\n").map(String.init)
        for name in acceptable.keys {
            guard let i = lines.firstIndex(where: { $0.hasSuffix("/" + name) }), i + 2 < lines.count else { return XCTFail("\(name) missing: \(r.stdout)") }
            let top = lines[i + 1].split(separator: "(").dropFirst().first.flatMap { Int($0.prefix { $0.isNumber }) } ?? -1
            XCTAssertTrue(acceptable[name]!.contains(top), "\(name): \(lines[i + 1])")
            XCTAssertTrue(lines[i + 2].contains("top-1 same"), lines[i + 2])
            let err = Double(lines[i + 2].split(separator: " ").last ?? "") ?? 1
            XCTAssertLessThan(err, 5e-2, lines[i + 2])
        }
    }

    /// int8: EfficientNet-Lite0 quantized on the photographs scikit-image ships keeps fp32's
    /// top class on the cat, coffee and rocket photographs.
    func testInt8KeepsTheTopClassOnPhotographs() throws {
        _ = try checkpointURL()
        let bin = try Harness.metronome()
        let data = try Self.scikitImageData()
        let work = try Harness.temporaryDirectory("int8-photos")
        defer { try? FileManager.default.removeItem(at: work) }
        let quantized = work.appendingPathComponent("enl-int8.onnx").path
        let q = try Harness.run(bin, ["quantize", "efficientnet-lite0", "--calibration", data, "--out", quantized, "--per-channel", "--batch", "4"])
        XCTAssertEqual(q.status, 0, q.stderr)
        let photos = ["chelsea.png", "coffee.png", "rocket.jpg"].map { data + "/" + $0 }
        func top1(_ args: [String]) throws -> [Int] {
            let r = try Harness.run(bin, ["classify", "--top", "1"] + args + photos)
            XCTAssertEqual(r.status, 0, r.stderr)
            let lines = r.stdout.split(separator: "\n").map(String.init)
            return photos.map { p in
                guard let i = lines.firstIndex(of: p), i + 1 < lines.count else { return -1 }
                return lines[i + 1].split(separator: "(").dropFirst().first.flatMap { Int($0.prefix { $0.isNumber }) } ?? -1
            }
        }
        let fp32 = try top1([]), int8 = try top1(["--model", quantized, "--precision", "int8"])
        let acceptable: [Set<Int>] = [[281, 282, 285, 287], [504, 967, 968], [657, 744, 812]]
        for (c, ok) in zip(fp32, acceptable) { XCTAssertTrue(ok.contains(c), "fp32 top-1 \(c)") }
        XCTAssertEqual(int8, fp32)
    }

    /// The folder of sample photographs scikit-image ships (chelsea.png, coffee.png, rocket.jpg, …).
    static func scikitImageData() throws -> String {
        let python = try Harness.python(modules: ["skimage"])
        let dir = try Harness.run("/usr/bin/env", [python, "-c", "import skimage, os; print(os.path.join(os.path.dirname(skimage.__file__), 'data'))"])
        XCTAssertEqual(dir.status, 0, dir.stderr)
        return dir.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
