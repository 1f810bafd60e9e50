/// Builds a ``Graph`` in code with seeded random weights. Used by the model zoo and tests.
///
/// Weights use He-uniform initialisation and batch-norm statistics are drawn near their
/// trained ranges, so activations stay finite through deep networks and numerical
/// comparisons between backends are meaningful.
public struct GraphBuilder {
    public private(set) var graph: Graph
    public var generator: SplitMix64
    private var counters: [String: Int] = [:]
    /// Prepended to every generated name, e.g. a ``BranchPlacement`` prefix (`s1.b0@cpu/`).
    public var namePrefix = ""

    public init(name: String, seed: UInt64 = 0) {
        graph = Graph(name: name)
        generator = SplitMix64(seed: seed)
    }

    /// A fresh name with the given prefix: `conv_0`, `conv_1`, ...
    public mutating func uniqueName(_ prefix: String) -> String {
        let n = counters[prefix, default: 0]
        counters[prefix] = n + 1
        return "\(namePrefix)\(prefix)_\(n)"
    }

    @discardableResult
    public mutating func input(_ name: String, shape: [Int]) -> String {
        graph.inputs.append(ValueInfo(name: name, shape: shape))
        return name
    }

    public mutating func output(_ name: String) { graph.outputs.append(name) }

    /// Adds a float initializer (a weight the caller initialises itself).
    public mutating func initializer(_ name: String, _ tensor: Tensor) {
        graph.initializers[name] = tensor
    }

    public mutating func constant(_ tensor: Tensor, prefix: String = "const") -> String {
        let name = uniqueName(prefix)
        graph.initializers[name] = tensor
        return name
    }

    public mutating func integers(_ values: [Int], prefix: String = "ints") -> String {
        let name = uniqueName(prefix)
        graph.integerConstants[name] = values
        return name
    }

    /// Appends a node and returns its output names (`count` of them).
    @discardableResult
    public mutating func node(_ opType: String, _ inputs: [String],
                              attributes: [String: Attribute] = [:],
                              outputs count: Int = 1, name: String? = nil) -> [String] {
        let nodeName = name ?? uniqueName(opType.lowercased())
        let outs = count == 1 ? [nodeName] : (0..<count).map { "\(nodeName):\($0)" }
        graph.nodes.append(Node(name: nodeName, opType: opType, inputs: inputs,
                                outputs: outs, attributes: attributes))
        return outs
    }

    public mutating func randomTensor(_ shape: [Int], fanIn: Int) -> Tensor {
        let bound = (6 / Float(max(fanIn, 1))).squareRoot()
        return Tensor(shape: shape, uniformIn: -bound...bound, generator: &generator)
    }

    /// A 2-D convolution. `padding` is `[top, left, bottom, right]`; a single value pads all sides.
    public mutating func conv(_ x: String, in inChannels: Int, out outChannels: Int,
                              kernel: [Int], stride: [Int] = [1, 1], padding: [Int]? = nil,
                              dilation: [Int] = [1, 1], groups: Int = 1, bias: Bool = false) -> String {
        let name = uniqueName("conv")
        let fanIn = inChannels / groups * kernel[0] * kernel[1]
        let w = name + ".weight"
        graph.initializers[w] = randomTensor([outChannels, inChannels / groups] + kernel, fanIn: fanIn)
        var inputs = [x, w]
        if bias {
            let b = name + ".bias"
            graph.initializers[b] = Tensor(shape: [outChannels], uniformIn: -0.1...0.1, generator: &generator)
            inputs.append(b)
        }
        let pads = padding ?? [kernel[0] / 2 * dilation[0], kernel[1] / 2 * dilation[1],
                               kernel[0] / 2 * dilation[0], kernel[1] / 2 * dilation[1]]
        return node("Conv", inputs, attributes: [
            "kernel_shape": .ints(kernel), "strides": .ints(stride), "pads": .ints(pads),
            "dilations": .ints(dilation), "group": .int(groups),
        ], name: name)[0]
    }

    public mutating func conv(_ x: String, in inChannels: Int, out outChannels: Int, kernel: Int,
                              stride: Int = 1, groups: Int = 1, bias: Bool = false) -> String {
        conv(x, in: inChannels, out: outChannels, kernel: [kernel, kernel], stride: [stride, stride],
             groups: groups, bias: bias)
    }

    /// Batch normalization with plausible trained statistics.
    public mutating func batchNorm(_ x: String, channels: Int, epsilon: Float = 1e-5) -> String {
        let name = uniqueName("bn")
        let stats: [(String, ClosedRange<Float>)] = [
            ("scale", 0.5...1.5), ("bias", -0.2...0.2), ("mean", -0.2...0.2), ("var", 0.5...1.5),
        ]
        var inputs = [x]
        for (suffix, range) in stats {
            let n = "\(name).\(suffix)"
            graph.initializers[n] = Tensor(shape: [channels], uniformIn: range, generator: &generator)
            inputs.append(n)
        }
        return node("BatchNormalization", inputs, attributes: ["epsilon": .float(epsilon)], name: name)[0]
    }

    public mutating func relu(_ x: String) -> String { node("Relu", [x])[0] }

    /// ReLU6 as ONNX exporters write it: Clip with min and max given as inputs.
    public mutating func relu6(_ x: String) -> String {
        let lo = constant(Tensor(shape: [], repeating: 0), prefix: "clip_min")
        let hi = constant(Tensor(shape: [], repeating: 6), prefix: "clip_max")
        return node("Clip", [x, lo, hi])[0]
    }

    public mutating func add(_ a: String, _ b: String) -> String { node("Add", [a, b])[0] }

    public mutating func maxPool(_ x: String, kernel: Int, stride: Int, pad: Int) -> String {
        node("MaxPool", [x], attributes: [
            "kernel_shape": .ints([kernel, kernel]), "strides": .ints([stride, stride]),
            "pads": .ints([pad, pad, pad, pad]),
        ])[0]
    }

    public mutating func globalAveragePool(_ x: String) -> String { node("GlobalAveragePool", [x])[0] }

    public mutating func flatten(_ x: String) -> String {
        node("Flatten", [x], attributes: ["axis": .int(1)])[0]
    }

    /// A fully connected layer `y = x·Wᵀ + b` as ONNX Gemm with `transB = 1`.
    public mutating func linear(_ x: String, in inFeatures: Int, out outFeatures: Int) -> String {
        let name = uniqueName("fc")
        let w = name + ".weight", b = name + ".bias"
        graph.initializers[w] = randomTensor([outFeatures, inFeatures], fanIn: inFeatures)
        graph.initializers[b] = Tensor(shape: [outFeatures], uniformIn: -0.1...0.1, generator: &generator)
        return node("Gemm", [x, w, b], attributes: ["transB": .int(1)], name: name)[0]
    }
}
