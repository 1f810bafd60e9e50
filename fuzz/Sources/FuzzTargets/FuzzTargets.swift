import Foundation
import MetronomeIO
import MetronomeONNX
import MetronomeRealtime

/// One loader each: feed it arbitrary bytes; an error is the expected outcome for most
/// inputs, and anything else (a trap, a signal, a hang, runaway memory) is a finding.
/// The same functions live in the main package's corpus-replay test, so keep them in step.
public enum FuzzTargets {
    public static func checkpoint(_ data: Data) {
        _ = try? TorchCheckpoint.parse(data, source: "fuzz.pt")
    }

    public static func onnx(_ data: Data) {
        _ = try? ONNXImporter.parse(data, source: "fuzz.onnx")
    }

    public static func npy(_ data: Data) {
        _ = try? NPY.decode(data, source: "fuzz.npy")
    }

    public static func image(_ data: Data) {
        _ = try? ImageDecoder.decode(data, source: "fuzz-image")
    }

    public static func taskset(_ data: Data) {
        _ = try? TaskSet.load(yaml: String(decoding: data, as: UTF8.self))
    }

    /// Runs `body` on libFuzzer's buffer.
    public static func run(_ bytes: UnsafePointer<UInt8>?, _ size: Int, _ body: (Data) -> Void) -> CInt {
        let data = bytes.map { Data(bytes: $0, count: size) } ?? Data()
        body(data)
        return 0
    }
}
