import Foundation
import XCTest

/// Running the built `metronome` binary and the Python generator scripts under tests/,
/// shared by the test targets that drive the CLI.
public enum Harness {
    /// The repository root (this file is Tests/CLITestHarness/Harness.swift).
    public static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    public struct Result {
        public var status: Int32
        public var signaled: Bool
        public var stdout: String
        public var stderr: String
    }

    /// Runs a program to completion; output goes through files so large outputs cannot block it.
    public static func run(_ executable: String, _ arguments: [String], timeout: TimeInterval = 600) throws -> Result {
        let dir = try temporaryDirectory("run")
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("stdout"), err = dir.appendingPathComponent("stderr")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        _ = FileManager.default.createFile(atPath: err.path, contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        p.standardOutput = try FileHandle(forWritingTo: out)
        p.standardError = try FileHandle(forWritingTo: err)
        try p.run()
        let deadline = Date().addingTimeInterval(timeout)
        while p.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        if p.isRunning { p.terminate(); p.waitUntilExit() }
        p.waitUntilExit()
        return Result(status: p.terminationStatus, signaled: p.terminationReason == .uncaughtSignal,
                      stdout: (try? String(contentsOf: out, encoding: .utf8)) ?? "",
                      stderr: (try? String(contentsOf: err, encoding: .utf8)) ?? "")
    }

    /// The `metronome` executable built next to the test bundle (or $METRONOME_BIN).
    public static func metronome() throws -> String {
        if let env = ProcessInfo.processInfo.environment["METRONOME_BIN"], !env.isEmpty { return env }
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent("metronome")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate.path }
            dir = dir.deletingLastPathComponent()
        }
        for config in ["release", "debug"] {
            for scratch in [".build-a", ".build"] {
                let candidate = root.appendingPathComponent("\(scratch)/\(config)/metronome")
                if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate.path }
            }
        }
        throw XCTSkip("the metronome executable is not built next to the tests; build it first (swift build)")
    }

    /// python3 with onnx, onnxruntime and numpy, or a skip (the only reason these tests skip).
    public static func python(modules: [String] = ["onnx", "onnxruntime", "numpy"]) throws -> String {
        for candidate in ["/usr/bin/env"] {
            let r = try? run(candidate, ["python3", "-c", "import " + modules.joined(separator: ", ")])
            if let r, r.status == 0 { return "python3" }
        }
        throw XCTSkip("python3 with \(modules.joined(separator: ", ")) is not available")
    }

    public static func runPython(_ script: String, _ arguments: [String], modules: [String] = ["onnx", "onnxruntime", "numpy"]) throws -> Result {
        let py = try python(modules: modules)
        return try run("/usr/bin/env", [py, root.appendingPathComponent("tests/\(script)").path] + arguments)
    }

    public static func temporaryDirectory(_ label: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("metronome-\(label)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    public static func json(_ url: URL) throws -> Any {
        try JSONSerialization.jsonObject(with: Data(contentsOf: url))
    }
}
