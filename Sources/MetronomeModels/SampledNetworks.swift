import Foundation
import Metronome

/// Randomly sampled CNN architectures (`sampled-N` in the zoo): training data for the latency
/// predictor that is no family's.
///
/// A kernel-level predictor learns each kernel's efficiency from the shapes it was profiled
/// on; trees do not extrapolate, so a family whose input size, channel counts or classifier
/// lie outside every other family's (a 50×50 input with a large inner product, 32×32 maps
/// with 512 channels) is predicted poorly when left out. nn-Meter answers this by sampling
/// kernel configurations around those of real models instead of profiling whole models only.
/// Here each network is sampled whole, so that its kernels keep the context a deployed
/// network gives them (caches, fused post-ops, layouts): input sizes 28–224, stems of 3×3 to
/// 7×7, stages of plain, basic residual, bottleneck, inverted residual (depthwise, some with a
/// squeeze-and-excitation gate), grouped, ShuffleNet and Inception blocks (transposes and
/// concatenations, kernels the convolution blocks never make), channel counts that are often not multiples of 8 (as pruning leaves them),
/// pooling between stages, and either a global-average-pool head or a large flattened inner
/// product. Network `N` is a pure function of `N`.
///
/// About a third are drawn *small and wide* (ResNet-18-CIFAR, VGG-CIFAR, NoScope): a 28–64
/// input kept at full size by the stem, then stages widening to hundreds of channels on
/// 2×2–8×8 maps. Their late 3×3 convolutions read megabytes of weights for a few dozen
/// output pixels, so they run at the speed the weights arrive at: from the last-level cache
/// when the whole network's weights stay there between runs, from memory when they do not
/// (measured on a 2-vCPU Xeon: the same 512→512 3×3 convolution on a 4×4 map takes 0.7 ms in
/// a network with 38 MB of weights and 1.2–1.5 ms in one with 76 MB). A predictor learns
/// where that edge lies only from networks on both sides of it with such layers; the other
/// samples have few.
public enum SampledNetworks {
    /// The largest multiply-accumulate count of one image a sampled network may have; larger
    /// draws are redrawn, so that profiling a few hundred of them takes minutes.
    public static let maxMACs = 1_500_000_000

    /// The name prefix the zoo resolves: `sampled-N`.
    public static let prefix = "sampled-"

    /// `N` of a `sampled-N` name, or nil.
    public static func index(of name: String) -> Int? {
        guard name.hasPrefix(prefix), let n = Int(name.dropFirst(prefix.count)), n >= 0, n < 1_000_000,
              String(n) == name.dropFirst(prefix.count) else { return nil }
        return n
    }

    /// Network `index`: drawn with the seed `index`, redrawn (with derived seeds) until it has
    /// at most ``maxMACs`` multiply-accumulates per image; the 200th redraw is kept whatever
    /// its size, so that every index names a network.
    public static func network(index: Int, seed: UInt64 = 0) throws -> Graph {
        guard index >= 0 else { throw MetronomeError.invalidArgument("sampled network index must be non-negative, got \(index)") }
        var attempt: UInt64 = 0
        while true {
            let rng = SplitMix64(seed: UInt64(index) &* 0x9E37_79B9_7F4A_7C15 &+ attempt &* 0xD1B5_4A32_D192_ED03 &+ 17)
            var sampler = Sampler(name: "\(prefix)\(index)", seed: seed, rng: rng)
            let graph = sampler.build()
            if sampler.macs <= maxMACs || attempt >= 200 { return graph }
            attempt += 1
        }
    }

    /// One draw: the builder, the running shape and the MAC count.
    struct Sampler {
        var b: GraphBuilder
        var rng: SplitMix64
        var channels = 3
        var size = 0
        var macs = 0

        init(name: String, seed: UInt64, rng: SplitMix64) {
            b = GraphBuilder(name: name, seed: seed)
            self.rng = rng
        }

        mutating func uniform(_ range: ClosedRange<Double>) -> Double {
            range.lowerBound + (range.upperBound - range.lowerBound) * Double(rng.next() >> 11) / Double(1 << 53)
        }
        mutating func int(_ range: ClosedRange<Int>) -> Int { range.lowerBound + Int(rng.next() % UInt64(range.count)) }
        mutating func pick<T>(_ values: [T]) -> T { values[Int(rng.next() % UInt64(values.count))] }
        mutating func chance(_ p: Double) -> Bool { uniform(0...1) < p }

        /// A width near `nominal`: half the time a multiple of 8, else what pruning leaves
        /// (any count from 35% of it up).
        mutating func width(_ nominal: Double) -> Int {
            let w = max(4.0, nominal)
            if chance(0.5) { return max(8, Int((w / 8).rounded()) * 8) }
            return max(4, Int(w * uniform(0.35...1.0)))
        }

        /// The output size of a window of `kernel` with stride `stride` and padding `kernel / 2`.
        static func outSize(_ size: Int, kernel: Int, stride: Int) -> Int { (size + 2 * (kernel / 2) - kernel) / stride + 1 }

        mutating func conv(_ x: String, out: Int, kernel: Int, stride: Int = 1, groups: Int = 1,
                           activation: Bool, relu6: Bool) -> String {
            let o = Self.outSize(size, kernel: kernel, stride: stride)
            macs += out * (channels / groups) * kernel * kernel * o * o
            var y = b.conv(x, in: channels, out: out, kernel: kernel, stride: stride, groups: groups)
            y = b.batchNorm(y, channels: out)
            if activation { y = relu6 ? b.relu6(y) : b.relu(y) }
            channels = out
            size = o
            return y
        }

        mutating func build() -> Graph {
            let wide = chance(0.35)
            size = wide ? pick([28, 32, 32, 32, 48, 64]) : pick([28, 32, 32, 48, 50, 56, 64, 96, 112, 128, 160, 192, 224, 224])
            channels = chance(0.15) ? 1 : 3
            var x = b.input("input", shape: [-1, channels, size, size])
            let relu6 = chance(0.4)
            // Stem: large inputs are reduced early, as every ImageNet network does; small and
            // wide networks keep their input's size.
            let stemStride = wide ? 1 : size >= 96 ? 2 : (chance(0.3) ? 2 : 1)
            // Widths scale log-uniformly over 0.5–3× so that MAC counts span 1 M to 1.5 G.
            let scale = Foundation.exp(uniform(Foundation.log(0.5)...Foundation.log(3.0)))
            let stem = wide ? uniform(16...64) * scale.squareRoot() : uniform(8...64) * scale
            x = conv(x, out: width(stem), kernel: pick([3, 3, 5, 7]), stride: stemStride, activation: true, relu6: relu6)
            if size >= 96 && chance(0.5) {
                x = pool(x, max: true, kernel: 3, stride: 2)
            }
            var nominal = Double(channels) * uniform(1.0...2.0)
            let stages = wide ? int(3...5) : int(2...5)
            for stage in 0..<stages {
                // Small and wide networks are mostly plain and basic 3×3 stages (VGG, ResNet).
                let kind = wide ? pick(["plain", "basic", "basic", "bottleneck", "inverted", "grouped"])
                                : pick(["plain", "basic", "bottleneck", "inverted", "inverted", "grouped", "shuffle", "inception"])
                let blocks = int(1...3)
                if stage > 0 {
                    nominal = min(wide ? 1024 : 2048, nominal * (wide ? uniform(1.6...2.2) : uniform(1.3...2.2)))
                    if size >= 4 && chance(0.25) { x = pool(x, max: chance(0.6), kernel: 2, stride: 2) }
                }
                for i in 0..<blocks {
                    let stride = i == 0 && stage > 0 && size >= 4 ? 2 : 1
                    x = block(kind, x, nominal: nominal, stride: stride, relu6: relu6)
                }
            }
            // Head: a global-average-pool classifier, or (NoScope, VGG) a flattened map into a
            // large inner product.
            let classes = pick([2, 10, 10, 100, 1000])
            if channels * size * size <= 80_000 && chance(0.3) {
                let features = channels * size * size
                x = b.flatten(x)
                let dense = pick([32, 64, 128, 256, 512])
                macs += features * dense + dense * classes
                x = b.relu(b.linear(x, in: features, out: dense))
                b.output(b.linear(x, in: dense, out: classes))
            } else {
                x = b.flatten(b.globalAveragePool(x))
                macs += channels * classes
                b.output(b.linear(x, in: channels, out: classes))
            }
            return b.graph
        }

        mutating func pool(_ x: String, max: Bool, kernel: Int, stride: Int) -> String {
            let pad = kernel == 3 ? 1 : 0
            size = (size + 2 * pad - kernel) / stride + 1
            return b.node(max ? "MaxPool" : "AveragePool", [x], attributes: [
                "kernel_shape": .ints([kernel, kernel]), "strides": .ints([stride, stride]),
                "pads": .ints([pad, pad, pad, pad]),
            ])[0]
        }

        /// ShuffleNet's channel shuffle: `[N, g·c, H, W]` → `[N, g, c, H, W]` → swap → back.
        mutating func channelShuffle(_ x: String, groups: Int) -> String {
            let c = channels
            let split = b.node("Reshape", [x, b.integers([0, groups, c / groups, size, size])])[0]
            let swapped = b.node("Transpose", [split], attributes: ["perm": .ints([0, 2, 1, 3, 4])])[0]
            return b.node("Reshape", [swapped, b.integers([0, c, size, size])])[0]
        }

        /// A ShuffleNet (v1) unit: grouped 1×1, channel shuffle, depthwise 3×3, grouped 1×1;
        /// added to its input, or, when it halves the map, concatenated with the input's
        /// 3×3 average pool. Its transposes and grouped 1×1 convolutions are kernels no other
        /// block has.
        mutating func shuffleUnit(_ x: String, nominal: Double, stride: Int, relu6: Bool) -> String {
            let cin = channels, sizeIn = size
            let groups = pick([2, 3, 4, 8])
            let mid = max(groups, width(nominal / 4) / groups * groups)
            let branchOut = stride == 1 ? cin : max(groups, (max(width(nominal), cin + groups) - cin) / groups * groups)
            var y = conv(x, out: mid, kernel: 1, groups: cin % groups == 0 ? groups : 1, activation: true, relu6: relu6)
            y = channelShuffle(y, groups: groups)
            y = conv(y, out: mid, kernel: 3, stride: stride, groups: mid, activation: false, relu6: relu6)
            y = conv(y, out: branchOut, kernel: 1, groups: branchOut % groups == 0 ? groups : 1, activation: false, relu6: relu6)
            if stride == 1 {
                let sum = b.add(y, x)
                return relu6 ? b.relu6(sum) : b.relu(sum)
            }
            let sizeOut = size
            size = sizeIn
            let pooled = pool(x, max: false, kernel: 3, stride: 2)
            precondition(size == sizeOut, "the pooled shortcut has the branch's size")
            channels = branchOut + cin
            let joined = b.node("Concat", [y, pooled], attributes: ["axis": .int(1)])[0]
            return relu6 ? b.relu6(joined) : b.relu(joined)
        }

        /// An Inception block (GoogLeNet): 1×1, 1×1→3×3, 1×1→5×5 and 3×3 max pool→1×1
        /// branches concatenated; a halving block max-pools first, as GoogLeNet does between
        /// stages. Concats and stride-1 pooling come from here.
        mutating func inceptionBlock(_ x: String, nominal: Double, stride: Int, relu6: Bool) -> String {
            var input = x
            if stride == 2 { input = pool(x, max: true, kernel: 3, stride: 2) }
            let cin = channels, sizeIn = size
            var branches: [String] = [], total = 0
            branches.append(conv(input, out: width(nominal / 4), kernel: 1, activation: true, relu6: relu6)); total += channels
            channels = cin; size = sizeIn
            var y = conv(input, out: width(nominal / 6), kernel: 1, activation: true, relu6: relu6)
            branches.append(conv(y, out: width(nominal / 3), kernel: 3, activation: true, relu6: relu6)); total += channels
            channels = cin; size = sizeIn
            y = conv(input, out: width(nominal / 16), kernel: 1, activation: true, relu6: relu6)
            branches.append(conv(y, out: width(nominal / 8), kernel: pick([3, 5]), activation: true, relu6: relu6)); total += channels
            channels = cin; size = sizeIn
            y = pool(input, max: true, kernel: 3, stride: 1)
            branches.append(conv(y, out: width(nominal / 8), kernel: 1, activation: true, relu6: relu6)); total += channels
            channels = total
            return b.node("Concat", branches, attributes: ["axis": .int(1)])[0]
        }

        /// A squeeze-and-excitation gate (EfficientNet, MobileNetV3): global average pool,
        /// 1×1 down, ReLU, 1×1 up, sigmoid, scaling the input's channels: broadcast
        /// element-wise kernels, which convolutions cannot absorb as post-ops.
        mutating func squeezeExcite(_ x: String) -> String {
            let c = channels, sizeIn = size
            size = 1
            var s = b.globalAveragePool(x)
            s = conv(s, out: max(4, c / 4), kernel: 1, activation: true, relu6: false)
            s = conv(s, out: c, kernel: 1, activation: false, relu6: false)
            s = b.node("Sigmoid", [s])[0]
            channels = c; size = sizeIn
            return b.node("Mul", [x, s])[0]
        }

        /// One block of `kind`; residual blocks add a projected shortcut when the shape changes.
        mutating func block(_ kind: String, _ x: String, nominal: Double, stride: Int, relu6: Bool) -> String {
            let cin = channels, sizeIn = size
            var y: String
            switch kind {
            case "plain":
                return conv(x, out: width(nominal), kernel: pick([1, 3, 3, 5]), stride: stride, activation: true, relu6: relu6)
            case "basic":
                let cout = width(nominal)
                y = conv(x, out: width(nominal), kernel: 3, stride: stride, activation: true, relu6: relu6)
                y = conv(y, out: cout, kernel: 3, activation: false, relu6: relu6)
            case "bottleneck":
                let inner = width(nominal / 4)
                y = conv(x, out: inner, kernel: 1, activation: true, relu6: relu6)
                y = conv(y, out: width(nominal / 4), kernel: 3, stride: stride, activation: true, relu6: relu6)
                y = conv(y, out: width(nominal), kernel: 1, activation: false, relu6: relu6)
            case "inverted":
                let expand = pick([1, 3, 4, 6])
                y = x
                if expand > 1 { y = conv(y, out: width(Double(cin * expand)), kernel: 1, activation: true, relu6: relu6) }
                y = conv(y, out: channels, kernel: pick([3, 3, 5, 7]), stride: stride, groups: channels, activation: true, relu6: relu6)
                if chance(0.3) { y = squeezeExcite(y) }
                y = conv(y, out: width(nominal / 2), kernel: 1, activation: false, relu6: relu6)
            case "shuffle":
                return shuffleUnit(x, nominal: nominal, stride: stride, relu6: relu6)
            case "inception":
                return inceptionBlock(x, nominal: nominal, stride: stride, relu6: relu6)
            default:  // grouped (ResNeXt): 1×1, grouped 3×3, 1×1
                let groups = pick([2, 4, 8, 16, 32])
                let perGroup = max(1, width(nominal / 2) / groups)
                y = conv(x, out: perGroup * groups, kernel: 1, activation: true, relu6: relu6)
                y = conv(y, out: perGroup * groups, kernel: 3, stride: stride, groups: groups, activation: true, relu6: relu6)
                y = conv(y, out: width(nominal), kernel: 1, activation: false, relu6: relu6)
            }
            let cout = channels, sizeOut = size
            var shortcut = x
            if cin != cout || sizeIn != sizeOut {
                if kind == "inverted" { return y }  // MobileNetV2 adds only where nothing changes
                channels = cin; size = sizeIn
                shortcut = conv(x, out: cout, kernel: 1, stride: stride, activation: false, relu6: relu6)
            }
            let sum = b.add(y, shortcut)
            return relu6 ? b.relu6(sum) : b.relu(sum)
        }
    }
}
