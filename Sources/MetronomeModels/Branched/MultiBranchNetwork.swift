import Metronome

/// Builds the network a ``MultiBranchConfig`` describes, as NN-Stretch's pycls `mbanynet`
/// constructor does (`pycls/ir/constructor/*/anynet.py`): stem → stages → head, where every
/// branch of a stage reads the stage's input and the branches meet by channel
/// concatenation. Weights are seeded (He-uniform; batch norms near trained ranges).
///
/// Every node's name starts with its ``BranchPlacement`` (`stem@cpu/`, `s2.b1@dsp/`,
/// `s2.merge@cpu/`, `head@cpu/`; stages count from 1 as pycls's `s1…`, branches from 0 as
/// `DEVICES`), which the compiler reads to run branches in parallel. Under MB_VER 1 a
/// branch's "convlast" projection runs in its branch, before the merge's concatenation.
public enum MultiBranchNetwork {
    public static func build(_ c: MultiBranchConfig, seed: UInt64 = 0) -> Graph {
        var b = GraphBuilder(name: c.name, seed: seed)
        var x = b.input("input", shape: [-1, 3, c.imageSize, c.imageSize])
        let stemAct = c.activation(on: c.stemDevice)
        b.namePrefix = "\(BranchPlacement(.stem, device: c.stemDevice))/"
        switch c.stemType {
        case .resStemIn:
            x = activation(&b, convBN(&b, x, in: 3, out: c.stemWidth, kernel: c.stemKernel ?? 7, stride: 2), stemAct)
            x = b.maxPool(x, kernel: 3, stride: 2, pad: 1)
        case .simpleStemIn:
            x = activation(&b, convBN(&b, x, in: 3, out: c.stemWidth, kernel: c.stemKernel ?? 3, stride: 2), stemAct)
        case .resStemCifar:
            x = activation(&b, convBN(&b, x, in: 3, out: c.stemWidth, kernel: c.stemKernel ?? 3, stride: 1), stemAct)
        }
        var width = c.stemWidth
        for (i, stage) in c.stages.enumerated() {
            let s = i + 1
            let branched = stage.branches.count > 1
            let targets = convlastWidths(c, stage: i)
            var outputs: [String] = []
            for (j, branch) in stage.branches.enumerated() {
                b.namePrefix = "\(BranchPlacement(.branch(stage: s, branch: j), device: branch.device))/"
                let act = c.activation(on: branch.device)
                var y = x
                var w = width
                if branched && c.version == 1 {
                    // "convfirst": project the stage input in proportion to the branch's share.
                    let o = Double(stage.originalWidth ?? width)
                    let first = makeDivisible(Double(branch.width) / o * Double(width), by: 8)
                    y = convBN(&b, y, in: w, out: first, kernel: 1)
                    w = first
                }
                for k in 0..<branch.depth {
                    y = block(&b, c, y, in: w, out: branch.width, stride: k == 0 ? branch.stride : 1, branch: branch, activation: act)
                    w = branch.width
                }
                if let target = targets?[j], target != w {
                    y = convBN(&b, y, in: w, out: target, kernel: 1)
                }
                outputs.append(y)
            }
            if branched {
                b.namePrefix = "\(BranchPlacement(.merge(stage: s), device: c.mergeDevice))/"
                x = b.node("Concat", outputs, attributes: ["axis": .int(1)])[0]
            } else {
                x = outputs[0]
            }
            width = c.mergedWidth(i)
        }
        b.namePrefix = "\(BranchPlacement(.head, device: c.headDevice))/"
        if c.headWidth > 0 {
            x = activation(&b, convBN(&b, x, in: width, out: c.headWidth, kernel: 1), c.activation(on: c.headDevice))
            width = c.headWidth
        }
        x = b.flatten(b.globalAveragePool(x))
        b.output(b.linear(x, in: width, out: c.classes))
        return b.graph
    }

    /// Under MB_VER 1, the width each branch of stage `i` is projected to before the merge:
    /// `o / n` each, the remainder going to the last branch, so the merge has `o` channels.
    static func convlastWidths(_ c: MultiBranchConfig, stage i: Int) -> [Int]? {
        let stage = c.stages[i]
        guard c.version == 1, stage.branches.count > 1, let o = stage.originalWidth else { return nil }
        let n = stage.branches.count
        return (0..<n).map { o / n + ($0 == n - 1 ? o % n : 0) }
    }

    /// TensorFlow/pycls `make_divisible`: the nearest multiple of `d` not below 90% of `v`.
    public static func makeDivisible(_ v: Double, by d: Int) -> Int {
        var n = max(d, Int(v + Double(d) / 2) / d * d)
        if Double(n) < 0.9 * v { n += d }
        return n
    }

    /// Bottleneck width and groups of a residual bottleneck block, rounded as pycls does: the
    /// group width is capped at the bottleneck width, which becomes a multiple of it.
    static func bottleneck(width: Int, multiplier: Double, groupWidth: Int) -> (width: Int, groups: Int) {
        var wb = max(1, Int((Double(width) * multiplier).rounded()))
        let g = groupWidth == 0 ? wb : min(groupWidth, wb)
        wb = max(g, Int((Double(wb) / Double(g)).rounded()) * g)
        return (wb, wb / g)
    }

    static func block(_ b: inout GraphBuilder, _ c: MultiBranchConfig, _ x: String, in wIn: Int, out wOut: Int,
                      stride: Int, branch: MultiBranchConfig.Branch, activation act: MultiBranchConfig.Activation) -> String {
        let k = branch.kernel
        var y: String
        switch c.blockType {
        case .resBasic:
            y = activation(&b, convBN(&b, x, in: wIn, out: wOut, kernel: k, stride: stride), act)
            y = convBN(&b, y, in: wOut, out: wOut, kernel: k)
            if c.squeezeExcite { y = squeezeExcite(&b, y, channels: wOut, reduced: seWidth(c, wIn), activation: act) }
        case .resBottleneck:
            let (wb, groups) = bottleneck(width: wOut, multiplier: branch.bottleneck, groupWidth: branch.groupWidth)
            y = activation(&b, convBN(&b, x, in: wIn, out: wb, kernel: 1), act)
            y = activation(&b, convBN(&b, y, in: wb, out: wb, kernel: k, stride: stride, groups: groups), act)
            if c.squeezeExcite { y = squeezeExcite(&b, y, channels: wb, reduced: seWidth(c, wIn), activation: act) }
            y = convBN(&b, y, in: wb, out: wOut, kernel: 1)
        case .mbconv, .invertedResidual:
            let wExp = max(1, Int((Double(wIn) * branch.bottleneck).rounded()))
            y = x
            if wExp != wIn { y = activation(&b, convBN(&b, y, in: wIn, out: wExp, kernel: 1), act) }
            y = activation(&b, convBN(&b, y, in: wExp, out: wExp, kernel: k, stride: stride, groups: wExp), act)
            if c.squeezeExcite { y = squeezeExcite(&b, y, channels: wExp, reduced: seWidth(c, wIn), activation: act) }
            y = convBN(&b, y, in: wExp, out: wOut, kernel: 1)
            // Linear bottleneck: the sum is not followed by an activation.
            return stride == 1 && wIn == wOut ? b.add(y, x) : y
        }
        let shortcut = stride != 1 || wIn != wOut ? convBN(&b, x, in: wIn, out: wOut, kernel: 1, stride: stride) : x
        return activation(&b, b.add(y, shortcut), act)
    }

    static func seWidth(_ c: MultiBranchConfig, _ wIn: Int) -> Int {
        max(1, Int((Double(wIn) * c.squeezeRatio).rounded()))
    }

    static func convBN(_ b: inout GraphBuilder, _ x: String, in wIn: Int, out wOut: Int, kernel: Int,
                       stride: Int = 1, groups: Int = 1) -> String {
        b.batchNorm(b.conv(x, in: wIn, out: wOut, kernel: kernel, stride: stride, groups: groups), channels: wOut)
    }

    static func squeezeExcite(_ b: inout GraphBuilder, _ x: String, channels: Int, reduced: Int,
                              activation act: MultiBranchConfig.Activation) -> String {
        var s = b.globalAveragePool(x)
        s = activation(&b, b.conv(s, in: channels, out: reduced, kernel: 1, bias: true), act)
        s = b.node("Sigmoid", [b.conv(s, in: reduced, out: channels, kernel: 1, bias: true)])[0]
        return b.node("Mul", [x, s])[0]
    }

    static func activation(_ b: inout GraphBuilder, _ x: String, _ a: MultiBranchConfig.Activation) -> String {
        switch a {
        case .relu: return b.relu(x)
        case .relu6: return b.relu6(x)
        case .silu, .swish: return b.node("Silu", [x])[0]
        case .hardswish: return b.node("HardSwish", [x])[0]
        case .sigmoid: return b.node("Sigmoid", [x])[0]
        case .tanh: return b.node("Tanh", [x])[0]
        }
    }
}
