// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Metronome",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "Metronome", targets: ["Metronome"]),
        .library(name: "MetronomeModels", targets: ["MetronomeModels"]),
        .library(name: "MetronomeONNX", targets: ["MetronomeONNX"]),
        .library(name: "MetronomeRealtime", targets: ["MetronomeRealtime"]),
        .executable(name: "metronome", targets: ["metronome"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.28.0"),
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
        .target(name: "MetronomeModels", dependencies: ["Metronome"]),
        // ONNX import/export. Generated/onnx.pb.swift is protoc-gen-swift's output for the ONNX
        // project's onnx.proto, generated once and committed (see README, "Regenerating").
        .target(
            name: "MetronomeONNX",
            dependencies: ["Metronome", .product(name: "SwiftProtobuf", package: "swift-protobuf")]
        ),
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
                "Metronome", "MetronomeModels", "MetronomeONNX", "MetronomeRealtime",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "MetronomeTests", dependencies: ["Metronome", "MetronomeModels"]),
        .testTarget(name: "MetronomeRealtimeTests", dependencies: ["MetronomeRealtime", "MetronomeModels"]),
    ]
)
