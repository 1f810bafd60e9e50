import Foundation
import XCTest
import Metronome
import MetronomeONNX

/// Helpers shared by the transform tests: running graphs on the engine and the reference
/// interpreter, and running exported ONNX files in ONNX Runtime through scripts/ort_run.py.
enum Support {
    /// A small network with a concat of two convs feeding a conv, and a residual add of that
    /// conv (through a batch norm) with another: the coupled-channel cases of slim and prune.
    static func concatResidualNet() -> Graph {
        var b = GraphBuilder(name: "concat-net", seed: 7)
        let x = b.input("input", shape: [-1, 3, 8, 8])
        let a = b.relu(b.conv(x, in: 3, out: 16, kernel: 3))
        let c = b.conv(x, in: 3, out: 24, kernel: 1, bias: true)
        let cat = b.node("Concat", [a, c], attributes: ["axis": .int(1)])[0]
        let d = b.conv(cat, in: 40, out: 32, kernel: 3)
        let e = b.conv(x, in: 3, out: 32, kernel: 1)
        let sum = b.relu(b.add(b.batchNorm(d, channels: 32), e))
        b.output(b.linear(b.flatten(b.globalAveragePool(sum)), in: 32, out: 10))
        return b.graph
    }

    static func randomInput(_ shape: [Int], seed: UInt64) -> Tensor {
        var rng = SplitMix64(seed: seed)
        return Tensor(shape: shape, uniformIn: -1...1, generator: &rng)
    }

    /// The graph's input shape at `batch`.
    static func inputShape(_ graph: Graph, batch: Int) -> [Int] {
        var s = graph.inputs[0].shape
        s[0] = batch
        return s
    }

    static func engine(_ graph: Graph, _ input: Tensor, threads: Int = 1) throws -> Tensor {
        let plan = try Plan.compile(graph, batch: input.shape[0], options: CompileOptions(threads: threads))
        return try Executor(plan: plan).run([input])[0]
    }

    static func reference(_ graph: Graph, _ input: Tensor) throws -> Tensor {
        try ReferenceRunner(program: Program(lowering: graph, batch: input.shape[0])).run([input])[0]
    }

    /// Weight shapes of every Conv and Gemm, in node order.
    static func weightShapes(_ graph: Graph) -> [[Int]] {
        graph.nodes.filter { $0.opType == "Conv" || $0.opType == "Gemm" }
            .compactMap { graph.initializers[$0.inputs[1]]?.shape }
    }

    static var repositoryRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    /// Exports each graph to ONNX, runs it in ONNX Runtime on its input and returns the outputs.
    static func onnxRuntime(_ cases: [(graph: Graph, input: Tensor)]) throws -> [Tensor] {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("metronome-ort-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var jobs: [[String: Any]] = []
        for (i, c) in cases.enumerated() {
            let model = dir.appendingPathComponent("m\(i).onnx"), input = dir.appendingPathComponent("x\(i).bin")
            try ONNXExporter.write(c.graph, to: model)
            try c.input.scalars.withUnsafeBufferPointer { Data(buffer: $0) }.write(to: input)
            jobs.append(["model": model.path, "input": input.path, "shape": c.input.shape,
                         "output": dir.appendingPathComponent("y\(i).bin").path])
        }
        let jobFile = dir.appendingPathComponent("jobs.json")
        try JSONSerialization.data(withJSONObject: jobs).write(to: jobFile)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", repositoryRoot.appendingPathComponent("scripts/ort_run.py").path, jobFile.path]
        let stdout = Pipe(), stderr = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        let out = stdout.fileHandleForReading.readDataToEndOfFile()
        let err = stderr.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw MetronomeError.invalidArgument("ort_run.py failed: \(String(decoding: err, as: UTF8.self))")
        }
        guard let done = try JSONSerialization.jsonObject(with: out) as? [[String: Any]] else {
            throw MetronomeError.invalidArgument("ort_run.py printed no job list")
        }
        return try done.map { job in
            guard let path = job["output"] as? String, let shape = job["output_shape"] as? [Int] else {
                throw MetronomeError.invalidArgument("ort_run.py job without output")
            }
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            var values = [Float](repeating: 0, count: data.count / 4)
            _ = values.withUnsafeMutableBytes { data.copyBytes(to: $0) }
            return try Tensor(shape: shape, scalars: values)
        }
    }
}

func assertClose(_ actual: Tensor, _ expected: Tensor, tolerance: Float = 1e-4, _ label: String = "",
                 file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(actual.shape, expected.shape, "shape \(label)", file: file, line: line)
    XCTAssertTrue(expected.scalars.allSatisfy(\.isFinite), "expected values not finite \(label)", file: file, line: line)
    let err = actual.relativeError(to: expected)
    XCTAssertLessThanOrEqual(err, tolerance, "relative error \(err) \(label)", file: file, line: line)
}
