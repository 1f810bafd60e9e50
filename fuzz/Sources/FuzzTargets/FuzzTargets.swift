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
        guard let set = try? TaskSet.load(yaml: String(decoding: data, as: UTF8.self)),
              let analysis = ScheduleAnalysis.analyzeDeclared(set) else { return }
        // A synthetic set also goes through the analysis and a short simulation (at most 20 of
        // its longest periods; the simulator refuses more releases than it allows).
        _ = analysis.schedulable
        let horizon = (set.tasks.map(\.offset).max() ?? 0) + 20 * (set.tasks.map(\.period).max() ?? 0)
        _ = try? Simulator.run(set, demands: set.tasks.compactMap { TaskDemand(declared: $0) },
                               widthDemands: set.tasks.compactMap { TaskDemand.declaredPerWidth($0) },
                               options: .init(duration: min(horizon, Simulator.defaultDuration(set).duration)))
    }

    /// Runs `body` on libFuzzer's buffer.
    public static func run(_ bytes: UnsafePointer<UInt8>?, _ size: Int, _ body: (Data) -> Void) -> CInt {
        let data = bytes.map { Data(bytes: $0, count: size) } ?? Data()
        body(data)
        return 0
    }
}
