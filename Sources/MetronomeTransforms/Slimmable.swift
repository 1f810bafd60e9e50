import Metronome

/// Bytes a ``SlimmableModel`` holds, against keeping one separate model per width.
public struct SlimmableMemory: Sendable, Equatable {
    /// Convolution and fully connected weights and biases: one full-width set for all widths.
    public var sharedWeightBytes: Int
    /// Private batch-norm parameters and statistics of every width together.
    public var batchNormBytes: Int
    public var totalBytes: Int { sharedWeightBytes + batchNormBytes }
    /// What the widths would take as independent models (each with its own weights).
    public var separateModelsBytes: Int
}

/// A slimmable network (Yu et al., ICLR 2019): one set of full-width weights that runs at
/// several widths, each width keeping the leading channel slices (``slim(_:width:options:)``)
/// and having its own private batch norms ("switchable batch normalization"), since the
/// statistics of a channel depend on how many channels feed it.
///
/// Instances are derived on demand from the shared weights, so loading all widths costs one
/// weight set plus the small per-width batch-norm tables (see ``memory``). The full-width
/// instance is the base graph itself, sharing its storage.
public struct SlimmableModel: Sendable {
    public let name: String
    /// The full-width graph, holding the shared weights and the width-1.0 batch norms.
    public let base: Graph
    /// The widths the model was trained for, ascending.
    public let widths: [Double]
    public let options: SlimOptions
    /// For each entry of ``widths``: batch-norm initializer name → that width's tensor.
    public let batchNormStatistics: [[String: Tensor]]

    /// Names of the batch-norm scale, bias, mean and variance initializers of `graph`
    /// (switchable batch norms are this type's subject, so it names the operator).
    public static func batchNormParameterNames(_ graph: Graph) -> [String] {
        graph.nodes.filter { $0.opType == "BatchNormalization" }
            .flatMap { $0.inputs.dropFirst().prefix(4) }
            .filter { graph.initializers[$0] != nil }
    }

    /// A model with the given per-width batch norms; every width's tensors must have the
    /// shapes that slimming to that width gives.
    public init(name: String, base: Graph, widths: [Double], options: SlimOptions = SlimOptions(),
                batchNormStatistics: [[String: Tensor]]) throws {
        guard !widths.isEmpty, widths.count == batchNormStatistics.count else {
            throw MetronomeError.invalidArgument("need one batch-norm table per width; got \(widths.count) widths and \(batchNormStatistics.count) tables")
        }
        guard widths.allSatisfy({ $0 > 0 && $0 <= 1 }), Set(widths).count == widths.count else {
            throw MetronomeError.invalidArgument("widths must be distinct and in (0, 1], got \(widths)")
        }
        let order = widths.indices.sorted { widths[$0] < widths[$1] }
        self.name = name
        self.base = base
        self.widths = order.map { widths[$0] }
        self.options = options
        self.batchNormStatistics = order.map { batchNormStatistics[$0] }
        let names = Self.batchNormParameterNames(base)
        for (w, table) in zip(self.widths, self.batchNormStatistics) {
            let slimmed = try slim(base, width: w, options: options)
            for n in names {
                guard let t = table[n] else {
                    throw MetronomeError.invalidArgument("width \(w): no batch-norm tensor '\(n)'")
                }
                guard let expected = slimmed.initializers[n]?.shape, t.shape == expected else {
                    throw MetronomeError.invalidArgument(
                        "width \(w): batch-norm tensor '\(n)' has shape \(t.shape) but slimming gives \(slimmed.initializers[n]?.shape ?? [])")
                }
            }
        }
    }

    /// A model whose width-1.0 batch norms are the base graph's and whose narrower widths get
    /// seeded statistics near the base's (the sliced base values, scale and variance perturbed
    /// by up to ±10%, bias and mean shifted by up to ±0.05), standing in for trained ones.
    public static func seeded(name: String, base: Graph, widths: [Double], options: SlimOptions = SlimOptions(),
                              seed: UInt64 = 0) throws -> SlimmableModel {
        let names = Self.batchNormParameterNames(base)
        var multiplicative = Set<String>()
        for node in base.nodes where node.opType == "BatchNormalization" && node.inputs.count >= 5 {
            multiplicative.insert(node.inputs[1])
            multiplicative.insert(node.inputs[4])
        }
        var tables: [[String: Tensor]] = []
        var rng = SplitMix64(seed: seed ^ 0x5EED_B47C_0000_0001)
        for w in widths {
            let slimmed = try slim(base, width: w, options: options)
            var table: [String: Tensor] = [:]
            for n in names {
                guard var t = slimmed.initializers[n] else { continue }
                if w < 1 {
                    for i in 0..<t.count {
                        if multiplicative.contains(n) {
                            t.scalars[i] *= 1 + rng.nextFloat(in: -0.1...0.1)
                        } else {
                            t.scalars[i] += rng.nextFloat(in: -0.05...0.05)
                        }
                    }
                }
                table[n] = t
            }
            tables.append(table)
        }
        return try SlimmableModel(name: name, base: base, widths: widths, options: options, batchNormStatistics: tables)
    }

    /// The index of `width` in ``widths``.
    func index(of width: Double) throws -> Int {
        guard let i = widths.firstIndex(where: { abs($0 - width) < 1e-9 }) else {
            throw MetronomeError.invalidArgument(
                "\(name) is slimmable to widths \(widths.map(formatWidth).joined(separator: ", ")), not \(width)")
        }
        return i
    }

    /// The network at one of the model's widths: slimmed shared weights plus that width's batch norms.
    public func instantiate(width: Double) throws -> Graph {
        let i = try index(of: width)
        var g = try slim(base, width: widths[i], options: options)
        for (n, t) in batchNormStatistics[i] where g.initializers[n] != nil { g.initializers[n] = t }
        g.name = widths[i] >= 1 ? name : "\(name)@\(formatWidth(widths[i]))"
        return g
    }

    public var memory: SlimmableMemory {
        get throws {
            let bnNames = Set(Self.batchNormParameterNames(base))
            let shared = base.initializers.filter { !bnNames.contains($0.key) }.values.reduce(0) { $0 + $1.byteCount }
            let bn = batchNormStatistics.reduce(0) { $0 + $1.values.reduce(0) { $0 + $1.byteCount } }
            var separate = 0
            for w in widths { separate += try instantiate(width: w).initializers.values.reduce(0) { $0 + $1.byteCount } }
            return SlimmableMemory(sharedWeightBytes: shared, batchNormBytes: bn, separateModelsBytes: separate)
        }
    }
}
