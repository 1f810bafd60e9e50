import Metronome

/// A multi-branch network as NN-Stretch's pycls configs describe it (`MODEL.TYPE: mbanynet`):
/// a stem, stages whose branches run side by side and meet by channel concatenation, and a
/// head. Single-branch configs (`anynet`, or one branch per stage) are the baselines.
///
/// Loaded from YAML by ``load(yaml:name:)``; every list is checked against the others so that
/// an inconsistent config fails with the key that is wrong, never with a bad graph.
public struct MultiBranchConfig: Equatable, Sendable {
    public enum StemType: String, Sendable, CaseIterable {
        /// 7×7 convolution, stride 2, BN, activation, 3×3 max pool stride 2 (ResNet).
        case resStemIn = "res_stem_in"
        /// 3×3 convolution, stride 2, BN, activation (RegNet, EfficientNet).
        case simpleStemIn = "simple_stem_in"
        /// 3×3 convolution, stride 1, BN, activation (CIFAR ResNets).
        case resStemCifar = "res_stem_cifar"
    }

    public enum BlockType: String, Sendable, CaseIterable {
        /// Two 3×3 convolutions and a shortcut (ResNet-18/34).
        case resBasic = "res_basic_block"
        /// 1×1 → 3×3 (grouped, `GROUP_WS`) → 1×1 with bottleneck `BOT_MULS`, and a shortcut (ResNet-50, RegNetX).
        case resBottleneck = "res_bottleneck_block"
        /// EfficientNet's MBConv: 1×1 expansion by `BOT_MULS`, k×k depthwise, optional SE, 1×1 projection.
        case mbconv = "mbconv"
        /// MobileNetV2's inverted residual: as MBConv without SE.
        case invertedResidual = "inverted_residual"
    }

    public enum Activation: String, Sendable, CaseIterable {
        case relu, relu6, silu, swish, hardswish, sigmoid, tanh
    }

    /// One branch of one stage.
    public struct Branch: Equatable, Sendable {
        public var depth: Int
        public var width: Int
        public var stride: Int
        public var groupWidth: Int
        /// Bottleneck multiplier (residual blocks) or expansion ratio (MBConv, inverted residual).
        public var bottleneck: Double
        public var kernel: Int
        public var device: String
    }

    public struct Stage: Equatable, Sendable {
        public var branches: [Branch]
        /// `ORIGINAL_WIDTHS[i]`: the width after the stage's merge (MB_VER 1), or nil.
        public var originalWidth: Int?
    }

    public var name: String
    public var classes: Int
    public var imageSize: Int
    public var stemType: StemType
    public var stemWidth: Int
    public var stemKernel: Int?
    public var blockType: BlockType
    public var stages: [Stage]
    public var headWidth: Int
    public var squeezeExcite: Bool
    public var squeezeRatio: Double
    /// 2: branch outputs are concatenated as they are; 1: "convfirst"/"convlast" 1×1
    /// projections keep every stage's merged width at `ORIGINAL_WIDTHS`.
    public var version: Int
    public var devices: [String]
    public var stemDevice: String
    public var headDevice: String
    public var mergeDevice: String
    /// The activation of each device's layers (`ACTIVATION_FUN`); missing devices use `defaultActivation`.
    public var activations: [String: Activation]
    public var defaultActivation: Activation
    /// Keys that were read but do not change the network (e.g. `TEST.WEIGHTS`), with why.
    public var notes: [String]

    public func activation(on device: String) -> Activation { activations[device] ?? defaultActivation }

    /// Whether any stage has more than one branch.
    public var isBranched: Bool { stages.contains { $0.branches.count > 1 } }

    /// The width each stage's merge produces.
    public func mergedWidth(_ stage: Int) -> Int {
        let s = stages[stage]
        if version == 1, s.branches.count > 1, let o = s.originalWidth { return o }
        return s.branches.reduce(0) { $0 + $1.width }
    }
}

/// A config that cannot be built: `key` is the YAML path of the value at fault
/// (`ANYNET.WIDTHS[1][0]`), `file` the config's name.
public struct MultiBranchConfigError: Error, CustomStringConvertible, Equatable {
    public var file: String
    public var key: String
    public var message: String

    public var description: String {
        let at = key.isEmpty ? "" : "\(key): "
        return file.isEmpty ? "\(at)\(message)" : "\(file): \(at)\(message)"
    }
}
