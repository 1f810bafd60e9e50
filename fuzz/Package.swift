// swift-tools-version:6.0
// Coverage-guided fuzz targets (libFuzzer) for Metronome's loaders. A separate package so
// that `swift build` / `swift test` of the main package never build or instrument them;
// `make fuzz` builds this one with `--sanitize=fuzzer` and runs each target for a set time.
// CI replays the committed corpora (fuzz/corpus/<target>/) through the same entry points
// in-process instead (Tests/MetronomeONNXTests/FuzzCorpusTests.swift).
import PackageDescription

let loaders = ["checkpoint", "onnx", "npy", "image", "taskset"]

let package = Package(
    name: "MetronomeFuzz",
    dependencies: [.package(name: "Metronome", path: "..")],
    targets: [
        // The per-loader entry points, shared by every fuzzer executable.
        .target(
            name: "FuzzTargets",
            dependencies: [
                .product(name: "MetronomeIO", package: "Metronome"),
                .product(name: "MetronomeONNX", package: "Metronome"),
                .product(name: "MetronomeRealtime", package: "Metronome"),
            ]
        ),
    ] + loaders.map { name in
        .executableTarget(name: "fuzz-\(name)", dependencies: ["FuzzTargets"], path: "Sources/fuzz-\(name)",
                          swiftSettings: [.unsafeFlags(["-parse-as-library"])])
    }
)
