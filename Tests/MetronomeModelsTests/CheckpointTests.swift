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

    /// Checkpoints whose tensor geometry would make a careless reader allocate gigabytes or
    /// trap on overflow (written by make_checkpoints.py's `hostile`): each is refused with a
    /// message naming the file and tensor.
    func testHostileGeometryIsRefused() throws {
        let d = try fixtures()
        let cases: [(String, String)] = [
            ("zero_stride_huge_zip.pt", "has 1073741824 elements but its storage holds 4"),
            ("zero_stride_zip.pt", "stride 0 on a dimension of size 2"),
            ("stride_overflow_zip.pt", "overflows 64-bit offsets"),
            ("storage_count_overflow_zip.pt", "declares 4611686018427387904 elements"),
            ("many_views_zip.pt", "more than 4× the 1000 elements stored"),
            ("view_offset_legacy.pt", "starts past the end of storage '0'"),
        ]
        for (file, expected) in cases {
            XCTAssertThrowsError(try TorchCheckpoint.load(d.appendingPathComponent(file)), file) { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains(file) && text.contains(expected), "\(file): \(text)")
                if file != "storage_count_overflow_zip.pt" { XCTAssertTrue(text.contains("tensor 'w"), text) }
            }
        }
    }

    /// 64 `DUP, TUPLE2` pairs build a tuple of 2^64 leaves in 132 bytes; its description (in
    /// the "not the legacy magic number" error) must stay short instead of running forever.
    func testExponentialSharedTupleIsDescribedBriefly() throws {
        let bytes: [UInt8] = [0x80, 0x02, 0x4E] + Array(repeating: [0x32, 0x86], count: 64).flatMap { $0 } + [0x2E]
        XCTAssertEqual(bytes.count, 132)
        XCTAssertThrowsError(try TorchCheckpoint.parse(Data(bytes), source: "dag.pt")) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("dag.pt: not a PyTorch checkpoint: the first pickle is ((((("), text)
            XCTAssertLessThan(text.count, 600, text)
        }
        var u = RestrictedUnpickler(bytes: bytes, source: "dag")
        let v = try u.load()
        XCTAssertLessThanOrEqual(v.description.count, PickleValue.describeLimit + 8)
        XCTAssertEqual(v.describe(limit: 11), String(repeating: "(", count: 11) + "…")
    }

    /// 200,000 nested TUPLE1 used to overflow the stack when the value was described or
    /// destroyed; nesting is now capped.
    func testDeepNestingIsAnError() throws {
        let bytes: [UInt8] = [0x80, 0x02, 0x4E] + [UInt8](repeating: 0x85, count: 200_000) + [0x2E]
        XCTAssertThrowsError(try TorchCheckpoint.parse(Data(bytes), source: "deep.pt")) {
            XCTAssertTrue("\($0)".contains("deep.pt: values nested deeper than 256 levels"), "\($0)")
        }
        // Exactly at the cap is fine: 256 TUPLE1 around None are 256 levels of nesting.
        var ok = RestrictedUnpickler(bytes: [0x80, 0x02, 0x4E] + [UInt8](repeating: 0x85, count: 256) + [0x2E], source: "t")
        XCTAssertNoThrow(try ok.load())
        var over = RestrictedUnpickler(bytes: [0x80, 0x02, 0x4E] + [UInt8](repeating: 0x85, count: 257) + [0x2E], source: "t")
        XCTAssertThrowsError(try over.load())
        // Lists filled innermost-last cannot dodge the cap: a list placed inside another value is sealed.
        var sealed = RestrictedUnpickler(bytes: [0x80, 0x02, 0x5D, 0x94, 0x85, 0x68, 0x00, 0x4E, 0x61, 0x2E], source: "t")
        XCTAssertThrowsError(try sealed.load()) { XCTAssertTrue("\($0)".contains("APPEND to a list that is already inside another value"), "\($0)") }
        var cycle = RestrictedUnpickler(bytes: [0x80, 0x02, 0x5D, 0x94, 0x68, 0x00, 0x61, 0x2E], source: "t")
        XCTAssertThrowsError(try cycle.load()) { XCTAssertTrue("\($0)".contains("a list that contains itself"), "\($0)") }
    }

    /// A dict of 100,000 string keys (SETITEMS) plus a repeated key: every entry is kept once,
    /// the last value wins, and lookups go through the index.
    func testLargeDictKeepsLastValuePerKey() throws {
        var bytes: [UInt8] = [0x80, 0x02, 0x7D, 0x28]
        let n = 100_000
        for i in 0..<n {
            let key = Array("k\(i)".utf8)
            bytes += [0x8C, UInt8(key.count)] + key + [0x4A] + withUnsafeBytes(of: Int32(i).littleEndian, Array.init)
        }
        bytes += [0x8C, 0x02] + Array("k7".utf8) + [0x4B, 0x63]  // "k7" again, now 99
        bytes += [0x75, 0x2E]
        var u = RestrictedUnpickler(bytes: bytes, source: "t")
        guard case .dict(let d) = try u.load() else { return XCTFail("not a dict") }
        XCTAssertEqual(d.items.count, n)
        guard case .int(99)? = d["k7"], case .int(99_999)? = d["k99999"], case .int(0)? = d["k0"] else {
            return XCTFail("wrong values: \(String(describing: d["k7"])) \(String(describing: d["k99999"]))")
        }
        XCTAssertNil(d["k100000"])
    }
}
