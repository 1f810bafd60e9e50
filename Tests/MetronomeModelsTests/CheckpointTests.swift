import Foundation
import Metronome
import MetronomeIO
import CLITestHarness
import XCTest

/// PyTorch checkpoints written by tests/make_checkpoints.py (torch's zip and legacy formats,
/// reproduced with the standard library) read back by the restricted unpickler.
final class CheckpointTests: XCTestCase {
    nonisolated(unsafe) static var dir: URL?

    func fixtures() throws -> URL {
        if let d = Self.dir { return d }
        let d = try Harness.temporaryDirectory("checkpoints")
        let r = try Harness.runPython("make_checkpoints.py", [d.path], modules: ["numpy"])
        XCTAssertEqual(r.status, 0, r.stderr)
        Self.dir = d
        return d
    }

    override class func tearDown() {
        if let d = dir { try? FileManager.default.removeItem(at: d) }
    }

    func checkAgainstExpected(_ c: TorchCheckpoint, file: StaticString = #filePath, line: UInt = #line) throws {
        let d = try fixtures()
        XCTAssertEqual(c.names, ["layer.weight", "layer.bias", "layer.transposed", "conv.weight", "half", "double", "bn.num_batches_tracked"],
                       file: file, line: line)
        for (name, t) in c.entries {
            let expected = try NPY.read(d.appendingPathComponent("expected_\(name).npy"))
            XCTAssertEqual(t.shape, expected.shape, name, file: file, line: line)
            XCTAssertEqual(t.scalars, expected.scalars, name, file: file, line: line)
        }
        XCTAssertEqual(c["half"]?.dtype, .float16)
        XCTAssertEqual(c["double"]?.dtype, .float64)
        XCTAssertEqual(c["bn.num_batches_tracked"]?.scalars, [12345])
    }

    func testZipFormat() throws {
        let c = try TorchCheckpoint.load(try fixtures().appendingPathComponent("state_zip.pt"))
        XCTAssertEqual(c.format, .zip)
        try checkAgainstExpected(c)
    }

    func testLegacyFormat() throws {
        let c = try TorchCheckpoint.load(try fixtures().appendingPathComponent("state_legacy.pt"))
        XCTAssertEqual(c.format, .legacy)
        try checkAgainstExpected(c)
    }

    func testStateDictNestedInATrainingCheckpoint() throws {
        try checkAgainstExpected(try TorchCheckpoint.load(try fixtures().appendingPathComponent("wrapped_zip.pt")))
    }

    func testRefusesCodeAndNonTensorObjects() throws {
        let d = try fixtures()
        for name in ["evil_zip.pt", "evil_legacy.pt"] {
            XCTAssertThrowsError(try TorchCheckpoint.load(d.appendingPathComponent(name))) { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains("refusing to load global 'posix.system'") || text.contains("refusing to load global 'os.system'"), text)
            }
        }
        XCTAssertThrowsError(try TorchCheckpoint.load(d.appendingPathComponent("evil_plain.pkl"))) {
            XCTAssertTrue("\($0)".contains("refusing to load global"), "\($0)")
        }
        XCTAssertThrowsError(try TorchCheckpoint.load(d.appendingPathComponent("counter_zip.pt"))) {
            XCTAssertTrue("\($0)".contains("collections.Counter"), "\($0)")
        }
    }

    /// Every truncation and many random corruptions of both formats: errors, never crashes.
    func testTruncatedAndCorruptedCheckpoints() throws {
        let d = try fixtures()
        var rng = SplitMix64(seed: 11)
        for name in ["state_zip.pt", "state_legacy.pt"] {
            let data = try Data(contentsOf: d.appendingPathComponent(name))
            // Every cut in the headers and trailers, and a sample in between.
            var cuts = Set(0..<min(96, data.count)).union(max(0, data.count - 96)..<data.count)
            for _ in 0..<150 { cuts.insert(Int(rng.next() % UInt64(data.count))) }
            for n in cuts.sorted() {
                XCTAssertThrowsError(try TorchCheckpoint.parse(data.prefix(n), source: name), "\(name) truncated to \(n) bytes")
            }
            var survived = 0
            for _ in 0..<250 {
                var bytes = [UInt8](data)
                for _ in 0..<(1 + Int(rng.next() % 4)) { bytes[Int(rng.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: rng.next()) }
                do {
                    _ = try TorchCheckpoint.parse(Data(bytes), source: name)
                    survived += 1  // a flipped byte inside tensor data is still a valid checkpoint
                } catch let e as MetronomeError {
                    XCTAssertFalse(e.description.isEmpty)
                } catch {
                    XCTAssertFalse("\(error)".isEmpty)  // zip errors wrapped or not: still an error, not a crash
                }
            }
            XCTAssertLessThan(survived, 250)
        }
        XCTAssertThrowsError(try TorchCheckpoint.parse(Data("PK\u{3}\u{4}garbage".utf8))) { XCTAssertTrue("\($0)".contains("zip")) }
        XCTAssertThrowsError(try TorchCheckpoint.parse(Data([0x80, 0x02, 0x4B, 0x01, 0x2E]))) { XCTAssertTrue("\($0)".contains("magic")) }
    }

    func testUnpicklerBasics() throws {
        // {'a': [1, 2.5, 'x', True, None]} at protocol 2.
        let bytes: [UInt8] = [0x80, 0x02, 0x7D, 0x71, 0x00, 0x58, 0x01, 0x00, 0x00, 0x00, 0x61, 0x71, 0x01, 0x5D, 0x71, 0x02, 0x28,
                              0x4B, 0x01, 0x47, 0x40, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x58, 0x01, 0x00, 0x00, 0x00, 0x78,
                              0x71, 0x03, 0x88, 0x4E, 0x65, 0x73, 0x2E]
        var u = RestrictedUnpickler(bytes: bytes, source: "test")
        guard case .dict(let d) = try u.load(), case .list(let l)? = d["a"] else { return XCTFail("not a dict of a list") }
        XCTAssertEqual(l.items.map(\.description), ["1", "2.5", "'x'", "True", "None"])
    }
}
