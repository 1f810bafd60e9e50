import Metronome

/// Small CNNs for training from scratch on Fashion-MNIST (1×28×28, 10 classes): weights
/// He-uniform, biases zero, batch norms at identity (scale 1, bias 0, mean 0, variance 1),
/// as a training run starts — unlike the zoo's inference models, whose batch-norm
/// statistics are drawn near trained ranges.
public enum TrainableCNNs {
    /// LeNet-5 (LeCun et al. 1998) as it is usually modernised: 5×5 convolutions with 6 and
    /// 16 maps (the first padded to keep 28×28), ReLU, 2×2 max pooling, and fully connected
    /// layers of 120, 84 and `classes` units.
    public static func lenet5(classes: Int = 10, channels: Int = 1, size: Int = 28, seed: UInt64 = 0) -> Graph {
        var b = GraphBuilder(name: "lenet5", seed: seed)
        var x = b.input("input", shape: [-1, channels, size, size])
        x = b.relu(conv(&b, x, in: channels, out: 6, kernel: 5, pad: 2))
        x = b.maxPool(x, kernel: 2, stride: 2, pad: 0)
        x = b.relu(conv(&b, x, in: 6, out: 16, kernel: 5, pad: 0))
        x = b.maxPool(x, kernel: 2, stride: 2, pad: 0)
        let s = ((size / 2) - 4) / 2
        x = b.flatten(x)
        x = b.relu(linear(&b, x, in: 16 * s * s, out: 120))
        x = b.relu(linear(&b, x, in: 120, out: 84))
        b.output(linear(&b, x, in: 84, out: classes))
        return b.graph
    }

    /// A small ResNet (He et al. 2016, CIFAR style): a 3×3 stem of `width` maps, three stages
    /// of `blocks` basic blocks with `width`, 2·`width` and 4·`width` maps (the last two
    /// halving the resolution, with 1×1 projection shortcuts), global average pooling and a
    /// classifier. With the defaults (16 maps, one block per stage) it is an 8-layer ResNet.
    public static func resnet(classes: Int = 10, channels: Int = 1, size: Int = 28, width: Int = 16, blocks: Int = 1,
                              seed: UInt64 = 0) -> Graph {
        var b = GraphBuilder(name: "resnet\(2 + 6 * blocks)", seed: seed)
        var x = b.input("input", shape: [-1, channels, size, size])
        x = b.relu(bn(&b, conv(&b, x, in: channels, out: width, kernel: 3, pad: 1), width))
        var c = width
        for (stage, out) in [width, 2 * width, 4 * width].enumerated() {
            for k in 0..<blocks {
                let stride = stage > 0 && k == 0 ? 2 : 1
                var y = b.relu(bn(&b, conv(&b, x, in: c, out: out, kernel: 3, stride: stride, pad: 1), out))
                y = bn(&b, conv(&b, y, in: out, out: out, kernel: 3, pad: 1), out)
                let shortcut = stride != 1 || c != out ? bn(&b, conv(&b, x, in: c, out: out, kernel: 1, stride: stride, pad: 0), out) : x
                x = b.relu(b.add(y, shortcut))
                c = out
            }
        }
        x = b.flatten(b.globalAveragePool(x))
        b.output(linear(&b, x, in: c, out: classes))
        return b.graph
    }

    static func conv(_ b: inout GraphBuilder, _ x: String, in cin: Int, out cout: Int, kernel: Int, stride: Int = 1, pad: Int) -> String {
        let name = b.uniqueName("conv")
        let w = name + ".weight", bias = name + ".bias"
        b.initializer(w, b.randomTensor([cout, cin, kernel, kernel], fanIn: cin * kernel * kernel))
        b.initializer(bias, Tensor(shape: [cout], repeating: 0))
        return b.node("Conv", [x, w, bias], attributes: [
            "kernel_shape": .ints([kernel, kernel]), "strides": .ints([stride, stride]), "pads": .ints([pad, pad, pad, pad]),
        ], name: name)[0]
    }

    static func bn(_ b: inout GraphBuilder, _ x: String, _ channels: Int) -> String {
        let name = b.uniqueName("bn")
        for (suffix, value) in [("scale", Float(1)), ("bias", 0), ("mean", 0), ("var", 1)] {
            b.initializer("\(name).\(suffix)", Tensor(shape: [channels], repeating: value))
        }
        return b.node("BatchNormalization", [x, "\(name).scale", "\(name).bias", "\(name).mean", "\(name).var"],
                      attributes: ["epsilon": .float(1e-5)], name: name)[0]
    }

    static func linear(_ b: inout GraphBuilder, _ x: String, in cin: Int, out cout: Int) -> String {
        let name = b.uniqueName("fc")
        b.initializer(name + ".weight", b.randomTensor([cout, cin], fanIn: cin))
        b.initializer(name + ".bias", Tensor(shape: [cout], repeating: 0))
        return b.node("Gemm", [x, name + ".weight", name + ".bias"], attributes: ["transB": .int(1)], name: name)[0]
    }
}
