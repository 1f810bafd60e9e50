import Metronome

/// One model the zoo can build.
public struct ZooEntry: Sendable {
    public var name: String
    public var summary: String
    /// Input shape with a symbolic (-1) batch.
    public var inputShape: [Int]
    public var classes: Int
    /// Where the weights come from: seeded random values unless stated otherwise.
    public var weights: String = "seeded random"
    let builder: @Sendable (UInt64) throws -> Graph

    public func build(seed: UInt64 = 0) throws -> Graph { try builder(seed) }
}

/// Built-in networks with seeded, deterministic random weights.
public enum Zoo {
    public static let entries: [ZooEntry] = [
        ZooEntry(name: "resnet18", summary: "ResNet-18 (He et al. 2016), torchvision layout",
                 inputShape: [-1, 3, 224, 224], classes: 1000) { try resNet(depth: 18, seed: $0) },
        ZooEntry(name: "resnet34", summary: "ResNet-34, basic blocks [3,4,6,3]",
                 inputShape: [-1, 3, 224, 224], classes: 1000) { try resNet(depth: 34, seed: $0) },
        ZooEntry(name: "resnet50", summary: "ResNet-50 v1.5, bottleneck blocks [3,4,6,3]",
                 inputShape: [-1, 3, 224, 224], classes: 1000) { try resNet(depth: 50, seed: $0) },
        ZooEntry(name: "mobilenet_v2", summary: "MobileNetV2 (Sandler et al. 2018), width 1.0",
                 inputShape: [-1, 3, 224, 224], classes: 1000) { try mobileNetV2(seed: $0) },
    ] + [0.35, 0.5, 0.75, 1.4].map { w in
        ZooEntry(name: "mobilenet_v2@\(w)", summary: "MobileNetV2, width multiplier \(w)",
                 inputShape: [-1, 3, 224, 224], classes: 1000) { try mobileNetV2(width: w, seed: $0) }
    } + [
        ZooEntry(name: "efficientnet-lite0", summary: "EfficientNet-Lite0 (ReLU6, no squeeze-excite, TF SAME padding)",
                 inputShape: [-1, 3, 224, 224], classes: 1000,
                 weights: "ImageNet (\(PretrainedWeights.efficientNetLite0Package); make weights)") { _ in
            try EfficientNetLite.lite0(checkpoint: PretrainedWeights.efficientNetLite0())
        },
        ZooEntry(name: "vgg16", summary: "VGG-16 (Simonyan & Zisserman 2015), torchvision layout",
                 inputShape: [-1, 3, 224, 224], classes: 1000) { try vgg16(seed: $0) },
        ZooEntry(name: "lenet5", summary: "LeNet-5 for Fashion-MNIST (1x28x28, ReLU, max pooling), initialised for training",
                 inputShape: [-1, 1, 28, 28], classes: 10) { TrainableCNNs.lenet5(seed: $0) },
        ZooEntry(name: "resnet8", summary: "8-layer ResNet for Fashion-MNIST (16/32/64 maps), initialised for training",
                 inputShape: [-1, 1, 28, 28], classes: 10) { TrainableCNNs.resnet(seed: $0) },
    ] + specializedEntries + slimmableEntries

    public static var names: [String] { entries.map(\.name) }

    /// A named entry, or `sampled-N` (``SampledNetworks``), which the zoo builds on demand
    /// rather than listing. Its shapes are known only once it is drawn, so the entry keeps that
    /// draw for the default seed instead of drawing it again.
    public static func entry(named name: String) throws -> ZooEntry {
        if let index = SampledNetworks.index(of: name) {
            let graph = try SampledNetworks.network(index: index)
            let classes = graph.nodes.last.flatMap { graph.initializers[$0.inputs[1]]?.shape.first } ?? 0
            return ZooEntry(name: name, summary: "sampled CNN architecture \(index) (latency-predictor training data)",
                            inputShape: graph.inputs.first?.shape ?? [], classes: classes) { seed in
                seed == 0 ? graph : try SampledNetworks.network(index: index, seed: seed)
            }
        }
        guard let e = entries.first(where: { $0.name == name }) else {
            throw MetronomeError.invalidArgument(
                "unknown model '\(name)'; the zoo has: \(names.joined(separator: ", ")), and sampled-N (N = 0, 1, …) for sampled architectures")
        }
        return e
    }

    /// Conv → BatchNorm → optional activation, the unit every zoo CNN is made of.
    static func convBN(_ b: inout GraphBuilder, _ x: String, in cin: Int, out cout: Int, kernel: Int,
                       stride: Int = 1, groups: Int = 1, activation: ((inout GraphBuilder, String) -> String)?) -> String {
        var y = b.conv(x, in: cin, out: cout, kernel: kernel, stride: stride, groups: groups)
        y = b.batchNorm(y, channels: cout)
        if let activation { y = activation(&b, y) }
        return y
    }

    static func relu(_ b: inout GraphBuilder, _ x: String) -> String { b.relu(x) }
    static func relu6(_ b: inout GraphBuilder, _ x: String) -> String { b.relu6(x) }

    /// Classifier head: global average pool, flatten, fully connected.
    static func head(_ b: inout GraphBuilder, _ x: String, channels: Int, classes: Int) {
        let p = b.globalAveragePool(x)
        let f = b.flatten(p)
        let logits = b.linear(f, in: channels, out: classes)
        b.output(logits)
    }

    /// torchvision's ResNets: 18 and 34 use basic blocks, 50/101/152 bottlenecks (stride on the 3×3).
    public static func resNet(depth: Int, classes: Int = 1000, inputSize: Int = 224, seed: UInt64 = 0) throws -> Graph {
        let layout: [Int: ([Int], Bool)] = [
            18: ([2, 2, 2, 2], false), 34: ([3, 4, 6, 3], false),
            50: ([3, 4, 6, 3], true), 101: ([3, 4, 23, 3], true), 152: ([3, 8, 36, 3], true),
        ]
        guard let (blocks, bottleneck) = layout[depth] else {
            throw MetronomeError.invalidArgument("ResNet depth must be 18, 34, 50, 101 or 152, got \(depth)")
        }
        var b = GraphBuilder(name: "resnet\(depth)", seed: seed)
        var x = b.input("input", shape: [-1, 3, inputSize, inputSize])
        x = convBN(&b, x, in: 3, out: 64, kernel: 7, stride: 2, activation: relu)
        x = b.maxPool(x, kernel: 3, stride: 2, pad: 1)
        var cin = 64
        let expansion = bottleneck ? 4 : 1
        for (stage, count) in blocks.enumerated() {
            let width = 64 << stage
            for i in 0..<count {
                let stride = i == 0 && stage > 0 ? 2 : 1
                let cout = width * expansion
                var y: String
                if bottleneck {
                    y = convBN(&b, x, in: cin, out: width, kernel: 1, activation: relu)
                    y = convBN(&b, y, in: width, out: width, kernel: 3, stride: stride, activation: relu)
                    y = convBN(&b, y, in: width, out: cout, kernel: 1, activation: nil)
                } else {
                    y = convBN(&b, x, in: cin, out: width, kernel: 3, stride: stride, activation: relu)
                    y = convBN(&b, y, in: width, out: cout, kernel: 3, activation: nil)
                }
                let shortcut = stride != 1 || cin != cout
                    ? convBN(&b, x, in: cin, out: cout, kernel: 1, stride: stride, activation: nil) : x
                x = b.relu(b.add(y, shortcut))
                cin = cout
            }
        }
        head(&b, x, channels: cin, classes: classes)
        return b.graph
    }

    /// `make_divisible` from the MobileNet reference code: round to a multiple of `divisor`
    /// without going more than 10% below `value`.
    public static func makeDivisible(_ value: Double, _ divisor: Int = 8) -> Int {
        var v = max(divisor, Int(value + Double(divisor) / 2) / divisor * divisor)
        if Double(v) < 0.9 * value { v += divisor }
        return v
    }

    /// An inverted residual (MBConv) block: 1×1 expansion, k×k depthwise, 1×1 linear projection.
    static func invertedResidual(_ b: inout GraphBuilder, _ x: String, in cin: Int, out cout: Int,
                                 expand: Int, kernel: Int, stride: Int) -> String {
        let hidden = cin * expand
        var y = x
        if expand != 1 { y = convBN(&b, y, in: cin, out: hidden, kernel: 1, activation: relu6) }
        y = convBN(&b, y, in: hidden, out: hidden, kernel: kernel, stride: stride, groups: hidden, activation: relu6)
        y = convBN(&b, y, in: hidden, out: cout, kernel: 1, activation: nil)
        return stride == 1 && cin == cout ? b.add(y, x) : y
    }

    public static func mobileNetV2(width: Double = 1.0, classes: Int = 1000, inputSize: Int = 224,
                                   seed: UInt64 = 0) throws -> Graph {
        guard width > 0 else { throw MetronomeError.invalidArgument("width must be positive, got \(width)") }
        var b = GraphBuilder(name: width == 1 ? "mobilenet_v2" : "mobilenet_v2_\(width)", seed: seed)
        var x = b.input("input", shape: [-1, 3, inputSize, inputSize])
        var cin = makeDivisible(32 * width)
        x = convBN(&b, x, in: 3, out: cin, kernel: 3, stride: 2, activation: relu6)
        let settings = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
        for (t, c, n, s) in settings {
            let cout = makeDivisible(Double(c) * width)
            for i in 0..<n {
                x = invertedResidual(&b, x, in: cin, out: cout, expand: t, kernel: 3, stride: i == 0 ? s : 1)
                cin = cout
            }
        }
        let last = makeDivisible(1280 * max(1.0, width))
        x = convBN(&b, x, in: cin, out: last, kernel: 1, activation: relu6)
        head(&b, x, channels: last, classes: classes)
        return b.graph
    }

    /// EfficientNet-Lite0 with seeded random weights (see ``EfficientNetLite``; the zoo entry
    /// loads the real ImageNet weights).
    public static func efficientNetLite0(classes: Int = 1000, inputSize: Int = 224, seed: UInt64 = 0) throws -> Graph {
        try EfficientNetLite.lite0(classes: classes, inputSize: inputSize, seed: seed)
    }
}
