import Metronome
import MetronomeTransforms

/// The slimmable networks of Yu et al. (ICLR 2019): S-MobileNetV2 at widths 0.35, 0.5, 0.75
/// and 1.0 and S-ResNet-50 at 0.25, 0.5, 0.75 and 1.0, each one set of full-width weights with
/// private batch norms per width.
public enum SlimmableZoo {
    public struct Family: Sendable {
        /// The zoo name of the full-width model, e.g. `s-mobilenet_v2`.
        public var name: String
        public var widths: [Double]
        public var summary: String
        let make: @Sendable (UInt64) throws -> SlimmableModel

        public func model(seed: UInt64 = 0) throws -> SlimmableModel { try make(seed) }
    }

    public static let families: [Family] = [
        Family(name: "s-mobilenet_v2", widths: [0.35, 0.5, 0.75, 1.0],
               summary: "Slimmable MobileNetV2 (Yu et al. 2019), shared weights, private batch norms") { seed in
            let base = try Zoo.mobileNetV2(seed: seed)
            // As in the slimmable-networks code, the 1280-channel last convolution is not slimmed
            // and hidden widths are t × the slimmed block input.
            let last = base.nodes.last { $0.opType == "Conv" }.map { Set([$0.name]) } ?? []
            return try SlimmableModel.seeded(name: "s-mobilenet_v2", base: base, widths: [0.35, 0.5, 0.75, 1.0],
                                             options: SlimOptions(fullWidthNodes: last, expansionFollowsInput: true),
                                             seed: seed)
        },
        Family(name: "s-resnet50", widths: [0.25, 0.5, 0.75, 1.0],
               summary: "Slimmable ResNet-50 (Yu et al. 2019), shared weights, private batch norms") { seed in
            let base = try Zoo.resNet(depth: 50, seed: seed)
            return try SlimmableModel.seeded(name: "s-resnet50", base: base, widths: [0.25, 0.5, 0.75, 1.0], seed: seed)
        },
    ]

    /// The family called `name` (`s-mobilenet_v2`, `s-resnet50`), or nil.
    public static func family(named name: String) -> Family? { families.first { $0.name == name } }

    /// Splits a zoo name `s-resnet50@0.5` into its family and width.
    public static func parse(_ name: String) -> (Family, Double)? {
        let parts = name.split(separator: "@", maxSplits: 1).map(String.init)
        guard let f = family(named: parts[0]) else { return nil }
        if parts.count == 1 { return (f, 1.0) }
        guard let w = Double(parts[1]), f.widths.contains(where: { abs($0 - w) < 1e-9 }) else { return nil }
        return (f, w)
    }
}

extension Zoo {
    /// One entry per slimmable family and width: `s-mobilenet_v2` (full width), `s-mobilenet_v2@0.35`, ….
    static let slimmableEntries: [ZooEntry] = SlimmableZoo.families.flatMap { family in
        [ZooEntry(name: family.name, summary: family.summary + ", width 1.0",
                  inputShape: [-1, 3, 224, 224], classes: 1000) { try family.model(seed: $0).instantiate(width: 1.0) }]
            + family.widths.filter { $0 < 1 }.map { w in
                ZooEntry(name: "\(family.name)@\(w)", summary: "\(family.name) at width \(w)",
                         inputShape: [-1, 3, 224, 224], classes: 1000) { try family.model(seed: $0).instantiate(width: w) }
            }
    }
}
