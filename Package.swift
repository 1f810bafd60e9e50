// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Metronome",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "Metronome", targets: ["Metronome"]),
        .library(name: "MetronomeModels", targets: ["MetronomeModels"]),
        .library(name: "MetronomeONNX", targets: ["MetronomeONNX"]),
        .library(name: "MetronomeIO", targets: ["MetronomeIO"]),
        .library(name: "MetronomeRealtime", targets: ["MetronomeRealtime"]),
        .library(name: "MetronomeTraining", targets: ["MetronomeTraining"]),
        .executable(name: "metronome", targets: ["metronome"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.28.0"),
        .package(url: "https://github.com/weichsel/ZIPFoundation", from: "0.9.19"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.1.0"),
    ],
    targets: [
        // oneDNN (Debian libdnnl-dev, OpenMP runtime) plus the few libgomp entry points
        // the executor needs to size and pin its worker team.
        .systemLibrary(
            name: "CDNNL",
            path: "Sources/CDNNL",
            providers: [.apt(["libdnnl-dev"])]
        ),
        .target(name: "Metronome", dependencies: ["CDNNL"]),
        // libpng and libjpeg-turbo for `metronome classify` (Debian libpng-dev, libjpeg62-turbo-dev).
        .systemLibrary(name: "CPNG", path: "Sources/CPNG", providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CJPEG", path: "Sources/CJPEG", providers: [.apt(["libjpeg62-turbo-dev"])]),
        // File formats around the engine: NumPy .npy, PyTorch checkpoints (zip and legacy,
        // through a restricted unpickler), PNG/JPEG decoding and ImageNet preprocessing.
        .target(
            name: "MetronomeIO",
            dependencies: ["Metronome", "CPNG", "CJPEG", .product(name: "ZIPFoundation", package: "ZIPFoundation")]
        ),
        // Graph transforms: width slimming, folding, compound scaling (issue 4).
        .target(name: "MetronomeTransforms", dependencies: ["Metronome"]),
        // XGBoost's C API (Debian libxgboost-dev) for the kernel-level latency predictors.
        .systemLibrary(name: "CXGBoost", path: "Sources/CXGBoost", providers: [.apt(["libxgboost-dev"])]),
        // Cost analysis (MACs, FLOPs, bytes, arithmetic intensity), the fold throughput sweep,
        // profiles and latency predictors.
        .target(name: "MetronomeAnalysis", dependencies: ["Metronome", "MetronomeTransforms", "CXGBoost"]),
        // The zoo, and multi-branch networks built from NN-Stretch's pycls YAML configs (Yams).
        .target(name: "MetronomeModels", dependencies: ["Metronome", "MetronomeIO", "MetronomeTransforms",
                                                         .product(name: "Yams", package: "Yams")]),
        // ONNX import/export. Generated/onnx.pb.swift is protoc-gen-swift's output for the ONNX
        // project's onnx.proto, generated once and committed (see README, "Regenerating").
        .target(
            name: "MetronomeONNX",
            dependencies: ["Metronome", .product(name: "SwiftProtobuf", package: "swift-protobuf")]
        ),
        // zlib (Debian zlib1g-dev) to read the gzip-compressed Fashion-MNIST IDX files.
        .systemLibrary(name: "CGzip", path: "Sources/CGzip", providers: [.apt(["zlib1g-dev"])]),
        // Training: losses, optimizers, schedules, datasets and the loader thread, the
        // training loop over the operators' backward passes (issue 14).
        .target(name: "MetronomeTraining", dependencies: ["Metronome", "MetronomeIO", "MetronomeTransforms", "CGzip", "CDNNL"]),
        // Periodic multi-DNN task sets: release, dispatch, locks, traces, reports, analysis.
        .target(
            name: "MetronomeRealtime",
            dependencies: [
                "Metronome",
                .product(name: "Yams", package: "Yams"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]
        ),
        .executableTarget(
            name: "metronome",
            dependencies: [
                "Metronome", "MetronomeModels", "MetronomeONNX", "MetronomeRealtime", "MetronomeIO",
                "MetronomeAnalysis", "MetronomeTransforms", "MetronomeTraining",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "MetronomeTests", dependencies: ["Metronome", "MetronomeModels"]),
        // ONNX import/export, conformance and ONNX Runtime comparisons (these drive the built
        // `metronome` binary and Python generator scripts under tests/).
        // Runs the built CLI and the Python generator scripts for the CLI-level tests.
        .target(name: "CLITestHarness", path: "Tests/CLITestHarness"),
        // (MetronomeRealtime for the fuzz-corpus replay, which covers the task-set loader too.)
        .testTarget(name: "MetronomeONNXTests",
                    dependencies: ["Metronome", "MetronomeONNX", "MetronomeModels", "MetronomeIO", "MetronomeRealtime",
                                   "CLITestHarness"]),
        // Model zoo, real weights, checkpoints, .npy and images.
        .testTarget(name: "MetronomeModelsTests",
                    dependencies: ["Metronome", "MetronomeModels", "MetronomeIO", "CLITestHarness"]),
        // Per-thread heap-allocation counter (replaces malloc for the test process) for the test
        // that a real-time job allocates nothing.
        .target(name: "CAllocationCounter", path: "Tests/CAllocationCounter"),
        .testTarget(name: "MetronomeRealtimeTests", dependencies: ["MetronomeRealtime", "MetronomeModels", "MetronomeTransforms", "CAllocationCounter", "CLITestHarness"]),
        .testTarget(name: "MetronomeTransformsTests",
                    dependencies: ["Metronome", "MetronomeTransforms", "MetronomeModels", "MetronomeONNX", "MetronomeAnalysis"]),
        // Backward passes against finite differences, optimizers by hand, datasets, training runs.
        .testTarget(name: "MetronomeTrainingTests",
                    dependencies: ["Metronome", "MetronomeTraining", "MetronomeModels", "MetronomeIO", "MetronomeONNX", "MetronomeTransforms",
                                   "CLITestHarness"]),
        .testTarget(name: "MetronomeAnalysisTests",
                    dependencies: ["Metronome", "MetronomeAnalysis", "MetronomeModels", "MetronomeTransforms"]),
    ]
)
