import Foundation
import Metronome
import MetronomeIO
import CLITestHarness
import XCTest

final class NPYTests: XCTestCase {
    func header(_ dict: String, version: UInt8 = 1) -> Data {
        var h = dict
        let pad = (64 - (10 + h.utf8.count + 1) % 64) % 64
        h += String(repeating: " ", count: pad) + "\n"
        var d = Data(NPY.magic)
        d.append(contentsOf: [version, 0, UInt8(h.utf8.count & 0xFF), UInt8(h.utf8.count >> 8)])
        d.append(contentsOf: Array(h.utf8))
        return d
    }

    func testRoundTrip() throws {
        for shape in [[], [3], [2, 3, 4], [1, 0, 5]] {
            var g = SplitMix64(seed: 4)
            let t = Tensor(shape: shape, uniformIn: -5...5, generator: &g)
            XCTAssertEqual(try NPY.decode(NPY.encode(t)), t)
            XCTAssertEqual(NPY.encode(t).count % 16, (t.count * 4) % 16, "header is padded to 64 bytes")
        }
    }

    func testReadsWhatNumPyWrites() throws {
        // np.save(f, np.arange(6, dtype='<f4').reshape(2, 3)) — the exact bytes NumPy produces.
        var d = header("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }")
        for v in 0..<6 { withUnsafeBytes(of: Float(v).bitPattern.littleEndian) { d.append(contentsOf: $0) } }
        let t = try NPY.decode(d)
        XCTAssertEqual(t.shape, [2, 3])
        XCTAssertEqual(t.scalars, [0, 1, 2, 3, 4, 5])
    }

    func testRejectsOtherLayoutsWithClearErrors() throws {
        let cases: [(Data, String)] = [
            (header("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }") + Data(count: 16), "'<f8'"),
            (header("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }") + Data(count: 8), "'>f4'"),
            (header("{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }") + Data(count: 16), "'<i8'"),
            (header("{'descr': '|O', 'fortran_order': False, 'shape': (2,), }") + Data(count: 16), "'|O'"),
            (header("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }") + Data(count: 16), "Fortran"),
            (header("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }") + Data(count: 12), "needs 16 bytes"),
            (header("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }") + Data(count: 20), "needs 16 bytes"),
            (header("{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }"), "malformed shape"),
            (header("{'descr': '<f4', 'shape': (2,), }") + Data(count: 8), "lacks"),
            (Data("hello world".utf8), "not a NumPy"),
            (Data(NPY.magic + [1, 0, 0xFF, 0x7F]), "truncated header"),
            (header("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", version: 9), "version 9"),
        ]
        for (data, text) in cases {
            XCTAssertThrowsError(try NPY.decode(data)) { XCTAssertTrue("\($0)".contains(text), "'\($0)' lacks '\(text)'") }
        }
        // Every truncation of a valid file is an error.
        let valid = NPY.encode(Tensor(shape: [3, 4], repeating: 1))
        for n in 0..<valid.count { XCTAssertThrowsError(try NPY.decode(valid.prefix(n))) }
    }
}

final class ImageTests: XCTestCase {
    func testResizeWeightsAreNormalizedAndAntialiased() {
        // Downscaling 4:1 spreads each output over about eight inputs (triangle of width 2·4).
        let down = ImagePreprocessor.weights(input: 400, output: 100)
        for (_, w) in down { XCTAssertEqual(w.reduce(0, +), 1, accuracy: 1e-5) }
        for (_, w) in down[2..<98] { XCTAssertGreaterThanOrEqual(w.filter { $0 > 0 }.count, 7) }
        // Upscaling keeps the plain bilinear two-tap filter.
        let up = ImagePreprocessor.weights(input: 100, output: 250)
        for (_, w) in up { XCTAssertLessThanOrEqual(w.filter { $0 > 0 }.count, 2) }
    }

    func testPreprocessingOfAConstantImage() throws {
        let image = try RGBImage(width: 300, height: 500, pixels: [UInt8](repeating: 128, count: 300 * 500 * 3))
        let t = try ImagePreprocessor()(image)
        XCTAssertEqual(t.shape, [1, 3, 224, 224])
        let mean: [Float] = [0.485, 0.456, 0.406], std: [Float] = [0.229, 0.224, 0.225]
        for c in 0..<3 {
            let expected = (128 / 255 - mean[c]) / std[c]
            XCTAssertEqual(t.scalars[c * 224 * 224 + 1000], expected, accuracy: 1e-4)
        }
    }

    func testCorruptImagesAreErrors() throws {
        XCTAssertThrowsError(try ImageDecoder.decode(Data("GIF89a".utf8))) { XCTAssertTrue("\($0)".contains("neither a PNG nor a JPEG")) }
        XCTAssertThrowsError(try ImageDecoder.decode(Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0]))) {
            XCTAssertTrue("\($0)".contains("invalid PNG"), "\($0)")
        }
        XCTAssertThrowsError(try ImageDecoder.decode(Data([0xFF, 0xD8, 0xFF, 0xDB, 0, 4, 0, 0]))) {
            XCTAssertTrue("\($0)".contains("invalid JPEG"), "\($0)")
        }
    }

    /// The sample photographs scikit-image ships, truncated at random points: errors, never crashes.
    func testTruncatedPhotographsAreErrors() throws {
        let r = try Harness.run("/usr/bin/env", ["python3", "-c", "import skimage, os; print(os.path.join(os.path.dirname(skimage.__file__), 'data'))"])
        guard r.status == 0 else { throw XCTSkip("python3 with scikit-image is not available") }
        let dir = URL(fileURLWithPath: r.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        var rng = SplitMix64(seed: 8)
        for name in ["chelsea.png", "rocket.jpg"] {
            let data = try Data(contentsOf: dir.appendingPathComponent(name))
            let full = try ImageDecoder.decode(data, source: name)
            XCTAssertGreaterThan(full.width, 200)
            for _ in 0..<25 {
                let n = Int(rng.next() % UInt64(data.count - 200))
                XCTAssertThrowsError(try ImageDecoder.decode(data.prefix(n), source: name), "\(name) cut at \(n)")
            }
        }
    }
}
