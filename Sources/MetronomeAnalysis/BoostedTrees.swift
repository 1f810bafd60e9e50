import CXGBoost
import Foundation

/// Gradient-boosted regression trees through XGBoost's C API (Debian's libxgboost-dev): the
/// regressor behind the kernel-level latency models.
///
/// The fitted model is kept as XGBoost's own JSON, so a predictor file carries it verbatim and
/// loads it back bit for bit. Training is deterministic for a given seed and thread count.
public struct BoostedTrees: Sendable, Equatable {
    public struct Parameters: Codable, Sendable, Equatable {
        public var rounds = 200
        public var maxDepth = 6
        public var learningRate = 0.15
        public var subsample = 0.9
        public var columnSample = 0.9
        public var minChildWeight = 2.0
        public var seed = 7

        public init() {}
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// XGBoost's JSON model.
    public let model: Data
    public let featureCount: Int

    public init(model: Data, featureCount: Int) {
        self.model = model
        self.featureCount = featureCount
    }

    static func check(_ status: Int32, _ what: String) throws {
        guard status == 0 else {
            let message = XGBGetLastError().map { String(cString: $0) } ?? "unknown error"
            throw Failure(description: "XGBoost \(what): \(message)")
        }
    }

    /// A DMatrix over row-major features; freed when the closure returns.
    static func withMatrix<T>(_ rows: [[Float]], width: Int, _ body: (DMatrixHandle) throws -> T) throws -> T {
        var flat: [Float] = []
        flat.reserveCapacity(rows.count * width)
        for row in rows {
            guard row.count == width else { throw Failure(description: "a feature row has \(row.count) values, expected \(width)") }
            flat.append(contentsOf: row)
        }
        var matrix: DMatrixHandle?
        try check(XGDMatrixCreateFromMat(flat, UInt64(rows.count), UInt64(width), Float.nan, &matrix), "matrix")
        guard let matrix else { throw Failure(description: "XGBoost returned no matrix") }
        defer { XGDMatrixFree(matrix) }
        return try body(matrix)
    }

    /// Fits `targets` (squared error) on `features`.
    public static func fit(features: [[Float]], targets: [Float], parameters: Parameters = Parameters(),
                           threads: Int = 1) throws -> BoostedTrees {
        guard let width = features.first?.count, features.count == targets.count, !features.isEmpty else {
            throw Failure(description: "fitting needs as many target values as feature rows, and at least one row")
        }
        return try withMatrix(features, width: width) { matrix in
            try check(XGDMatrixSetFloatInfo(matrix, "label", targets, UInt64(targets.count)), "labels")
            var booster: BoosterHandle?
            var handles: [DMatrixHandle?] = [matrix]
            try check(XGBoosterCreate(&handles, 1, &booster), "booster")
            guard let booster else { throw Failure(description: "XGBoost returned no booster") }
            defer { XGBoosterFree(booster) }
            let settings: [(String, String)] = [
                ("objective", "reg:squarederror"), ("tree_method", "hist"), ("max_depth", String(parameters.maxDepth)),
                ("eta", String(parameters.learningRate)), ("subsample", String(parameters.subsample)),
                ("colsample_bytree", String(parameters.columnSample)), ("min_child_weight", String(parameters.minChildWeight)),
                ("seed", String(parameters.seed)), ("nthread", String(max(1, threads))), ("verbosity", "0"),
            ]
            for (key, value) in settings { try check(XGBoosterSetParam(booster, key, value), "parameter \(key)") }
            for round in 0..<parameters.rounds {
                try check(XGBoosterUpdateOneIter(booster, Int32(round), matrix), "training round \(round)")
            }
            var length: UInt64 = 0
            var bytes: UnsafePointer<CChar>?
            try check(XGBoosterSaveModelToBuffer(booster, "{\"format\": \"json\"}", &length, &bytes), "saving")
            guard let bytes else { throw Failure(description: "XGBoost saved nothing") }
            let data = Data(bytes: bytes, count: Int(length))
            return BoostedTrees(model: data, featureCount: width)
        }
    }

    /// Predictions for `features`, one per row.
    public func predict(_ features: [[Float]], threads: Int = 1) throws -> [Float] {
        guard !features.isEmpty else { return [] }
        var booster: BoosterHandle?
        try Self.check(XGBoosterCreate(nil, 0, &booster), "booster")
        guard let booster else { throw Failure(description: "XGBoost returned no booster") }
        defer { XGBoosterFree(booster) }
        try model.withUnsafeBytes { raw in
            try Self.check(XGBoosterLoadModelFromBuffer(booster, raw.baseAddress, UInt64(raw.count)), "loading the model")
        }
        try Self.check(XGBoosterSetParam(booster, "nthread", String(max(1, threads))), "parameter nthread")
        return try Self.withMatrix(features, width: featureCount) { matrix in
            var length: UInt64 = 0
            var result: UnsafePointer<Float>?
            try Self.check(XGBoosterPredict(booster, matrix, 0, 0, 0, &length, &result), "prediction")
            guard let result, Int(length) == features.count else {
                throw Failure(description: "XGBoost returned \(length) predictions for \(features.count) rows")
            }
            return Array(UnsafeBufferPointer(start: result, count: Int(length)))
        }
    }
}
