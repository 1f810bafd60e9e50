import Metronome

/// The specialized CNNs of the FoldedCNNs paper (Hoffman et al., ICML 2021;
/// `msr-fiddle/folded-cnns`): the game-scraping `ConvN` family and the NoScope CNNs.
///
/// Both builders can also build the paper's hand-written folded versions (`fold` > 1): `f·3`
/// input channels, `f·K` outputs, and every intermediate width W becoming `int(W·√f)`, which
/// is what the generic `fold` transform must reproduce.
public enum SpecializedCNNs {
    /// One game-scraping task of `config/<game>/<task>/model_description.json`.
    public struct GameTask: Sendable, Equatable {
        /// The zoo name, e.g. `game-lol-goldnumber-fraction`.
        public var name: String
        /// The task's path in the FoldedCNNs repository, e.g. `lol/goldnumber-fraction`.
        public var path: String
        public var height: Int
        public var width: Int
        public var classes: Int
        public var convUnits: Int
    }

    /// The six game-scraping tasks (`1_3s_1_convnet` template, 32/32/8 feature maps).
    public static let gameTasks: [GameTask] = [
        GameTask(name: "game-lol-goldnumber-fraction", path: "lol/goldnumber-fraction", height: 22, width: 52, classes: 11, convUnits: 1),
        GameTask(name: "game-lol-goldnumber-int", path: "lol/goldnumber-int", height: 22, width: 52, classes: 111, convUnits: 1),
        GameTask(name: "game-lol-timer-minutes", path: "lol/timer-minutes", height: 15, width: 35, classes: 62, convUnits: 1),
        GameTask(name: "game-apex-squad-count", path: "apex/squad_count_v2", height: 19, width: 25, classes: 22, convUnits: 1),
        GameTask(name: "game-sot-coin-count", path: "sot/coin_count-digits_3_4-v2", height: 17, width: 40, classes: 15, convUnits: 1),
        GameTask(name: "game-sot-timer3", path: "sot/timer3", height: 22, width: 30, classes: 27, convUnits: 2),
    ]

    /// `ConvN` (`models/game.py`): conv3×3 → ReLU → MaxPool(3, s2); per conv unit three
    /// [conv3×3 → ReLU] and a MaxPool(3, s1); conv3×3 to 8 maps → ReLU → MaxPool(3, s2);
    /// flatten; linear. Convolutions have biases and no batch norm, as in PyTorch's defaults.
    ///
    /// `channelMultiplier` defaults to √`fold` (FoldedCNNs); pass (1/1.1)^φ with a reduced
    /// input size for the compound-scaled baseline.
    public static func gameConvN(_ task: GameTask, fold: Int = 1, channelMultiplier: Double? = nil,
                                 inputHeight: Int? = nil, inputWidth: Int? = nil, seed: UInt64 = 0) throws -> Graph {
        guard fold >= 1 else { throw MetronomeError.invalidArgument("fold must be at least 1, got \(fold)") }
        let m = channelMultiplier ?? Double(fold).squareRoot()
        func width(_ c: Int) -> Int { max(1, Int((Double(c) * m).rounded(.down))) }
        var h = inputHeight ?? task.height, w = inputWidth ?? task.width
        var b = GraphBuilder(name: fold == 1 ? task.name : "\(task.name)-fold\(fold)", seed: seed)
        var x = b.input("input", shape: [-1, 3 * fold, h, w])
        var c = width(32)
        x = b.relu(b.conv(x, in: 3 * fold, out: c, kernel: 3, bias: true))
        x = b.maxPool(x, kernel: 3, stride: 2, pad: 0)
        (h, w) = ((h - 3) / 2 + 1, (w - 3) / 2 + 1)
        for _ in 0..<task.convUnits {
            let next = width(32)
            x = b.relu(b.conv(x, in: c, out: next, kernel: 3, bias: true))
            c = next
            x = b.relu(b.conv(x, in: c, out: c, kernel: 3, bias: true))
            x = b.relu(b.conv(x, in: c, out: c, kernel: 3, bias: true))
            x = b.maxPool(x, kernel: 3, stride: 1, pad: 0)
            (h, w) = (h - 2, w - 2)
        }
        let last = width(8)
        x = b.relu(b.conv(x, in: c, out: last, kernel: 3, bias: true))
        x = b.maxPool(x, kernel: 3, stride: 2, pad: 0)
        (h, w) = ((h - 3) / 2 + 1, (w - 3) / 2 + 1)
        guard h >= 1, w >= 1 else {
            throw MetronomeError.invalidArgument("input \(inputHeight ?? task.height)x\(inputWidth ?? task.width) is too small for \(task.name)")
        }
        x = b.flatten(x)
        b.output(b.linear(x, in: last * h * w, out: task.classes * fold))
        return b.graph
    }

    /// One NoScope configuration (Table 2 of Kang et al., VLDB 2017, as `models/noscope.py` has it).
    public struct NoScopeTask: Sendable, Equatable {
        public var name: String
        public var filters: Int
        public var dense: Int
        public var layers: Int
        public var classes: Int { 2 }
        public var inputSize: Int { 50 }
    }

    public static let noScopeTasks: [NoScopeTask] = [
        NoScopeTask(name: "noscope-coral", filters: 16, dense: 128, layers: 2),
        NoScopeTask(name: "noscope-night", filters: 16, dense: 128, layers: 2),
        NoScopeTask(name: "noscope-taipei", filters: 64, dense: 32, layers: 2),
        NoScopeTask(name: "noscope-roundabout", filters: 32, dense: 32, layers: 4),
    ]

    /// conv3×3(F) → ReLU → conv3×3(F) → ReLU → MaxPool 2; with 4 layers also
    /// [conv3×3(2F) → ReLU] × 2 → MaxPool 2; flatten → FC(D) → ReLU → FC(2). Input 50×50.
    public static func noScope(_ task: NoScopeTask, fold: Int = 1, channelMultiplier: Double? = nil,
                               seed: UInt64 = 0) throws -> Graph {
        guard fold >= 1 else { throw MetronomeError.invalidArgument("fold must be at least 1, got \(fold)") }
        let m = channelMultiplier ?? Double(fold).squareRoot()
        func width(_ c: Int) -> Int { max(1, Int((Double(c) * m).rounded(.down))) }
        var b = GraphBuilder(name: fold == 1 ? task.name : "\(task.name)-fold\(fold)", seed: seed)
        var size = task.inputSize
        var x = b.input("input", shape: [-1, 3 * fold, size, size])
        let first = width(task.filters), middle = width(2 * task.filters)
        x = b.relu(b.conv(x, in: 3 * fold, out: first, kernel: 3, bias: true))
        x = b.relu(b.conv(x, in: first, out: first, kernel: 3, bias: true))
        x = b.maxPool(x, kernel: 2, stride: 2, pad: 0)
        size /= 2
        var c = first
        if task.layers > 2 {
            x = b.relu(b.conv(x, in: first, out: middle, kernel: 3, bias: true))
            x = b.relu(b.conv(x, in: middle, out: middle, kernel: 3, bias: true))
            x = b.maxPool(x, kernel: 2, stride: 2, pad: 0)
            size /= 2
            c = middle
        }
        x = b.flatten(x)
        let dense = width(task.dense)
        x = b.relu(b.linear(x, in: c * size * size, out: dense))
        b.output(b.linear(x, in: dense, out: task.classes * fold))
        return b.graph
    }

    /// ResNet-18 for 32×32 CIFAR images (`models/resnet.py` of FoldedCNNs, after kefth's
    /// fashion-mnist code): 3×3 stem with stride 1 and no max pool, basic blocks [2, 2, 2, 2] of
    /// widths 64/128/256/512·m, global average pooling, linear. The reference pools with
    /// `AvgPool2d(4)` on the final 4×4 map, which is the global average used here.
    public static func cifarResNet18(classes: Int = 10, fold: Int = 1, channelMultiplier: Double? = nil,
                                     seed: UInt64 = 0) throws -> Graph {
        guard fold >= 1 else { throw MetronomeError.invalidArgument("fold must be at least 1, got \(fold)") }
        let m = channelMultiplier ?? Double(fold).squareRoot()
        func width(_ c: Int) -> Int { max(1, Int((Double(c) * m).rounded(.down))) }
        let suffix = fold == 1 ? "" : "-fold\(fold)"
        var b = GraphBuilder(name: "resnet18-cifar\(classes)\(suffix)", seed: seed)
        var x = b.input("input", shape: [-1, 3 * fold, 32, 32])
        var cin = width(64)
        x = Zoo.convBN(&b, x, in: 3 * fold, out: cin, kernel: 3, activation: Zoo.relu)
        for (stage, base) in [64, 128, 256, 512].enumerated() {
            let planes = width(base)
            for i in 0..<2 {
                let stride = i == 0 && stage > 0 ? 2 : 1
                var y = Zoo.convBN(&b, x, in: cin, out: planes, kernel: 3, stride: stride, activation: Zoo.relu)
                y = Zoo.convBN(&b, y, in: planes, out: planes, kernel: 3, activation: nil)
                let shortcut = stride != 1 || cin != planes
                    ? Zoo.convBN(&b, x, in: cin, out: planes, kernel: 1, stride: stride, activation: nil) : x
                x = b.relu(b.add(y, shortcut))
                cin = planes
            }
        }
        Zoo.head(&b, x, channels: cin, classes: classes * fold)
        return b.graph
    }
}

extension Zoo {
    /// The FoldedCNNs specialized models and the CIFAR ResNets.
    static let specializedEntries: [ZooEntry] =
        SpecializedCNNs.gameTasks.map { task in
            ZooEntry(name: task.name,
                     summary: "FoldedCNNs game-scraping ConvN for \(task.path) (\(task.height)x\(task.width), \(task.classes) classes)",
                     inputShape: [-1, 3, task.height, task.width], classes: task.classes) {
                try SpecializedCNNs.gameConvN(task, seed: $0)
            }
        }
        + SpecializedCNNs.noScopeTasks.map { task in
            ZooEntry(name: task.name,
                     summary: "NoScope CNN (F=\(task.filters), D=\(task.dense), \(task.layers) conv layers; 50x50, 2 classes)",
                     inputShape: [-1, 3, 50, 50], classes: 2) {
                try SpecializedCNNs.noScope(task, seed: $0)
            }
        }
        + [10, 100].map { classes in
            ZooEntry(name: "resnet18-cifar\(classes)", summary: "ResNet-18 for CIFAR-\(classes) (3x3 stem, no max pool; 32x32)",
                     inputShape: [-1, 3, 32, 32], classes: classes) {
                try SpecializedCNNs.cifarResNet18(classes: classes, seed: $0)
            }
        }
}
