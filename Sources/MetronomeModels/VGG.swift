import Metronome

extension Zoo {
    /// VGG-16 (Simonyan & Zisserman 2015, configuration D) in torchvision's layout: thirteen
    /// 3×3 convolutions with bias and ReLU in five max-pooled stages, then three fully
    /// connected layers (dropout is the identity at inference). torchvision's adaptive
    /// pooling to 7×7 is the identity at 224×224; other input sizes (multiples of 32) size
    /// the first fully connected layer from the final feature map instead.
    public static func vgg16(classes: Int = 1000, inputSize: Int = 224, seed: UInt64 = 0) throws -> Graph {
        guard inputSize >= 32, inputSize % 32 == 0 else {
            throw MetronomeError.invalidArgument("VGG-16 input size must be a positive multiple of 32, got \(inputSize)")
        }
        var b = GraphBuilder(name: "vgg16", seed: seed)
        var x = b.input("input", shape: [-1, 3, inputSize, inputSize])
        var cin = 3
        for (width, convs) in [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)] {
            for _ in 0..<convs {
                x = b.relu(b.conv(x, in: cin, out: width, kernel: 3, bias: true))
                cin = width
            }
            x = b.maxPool(x, kernel: 2, stride: 2, pad: 0)
        }
        let side = inputSize / 32
        x = b.flatten(x)
        x = b.relu(b.linear(x, in: 512 * side * side, out: 4096))
        x = b.relu(b.linear(x, in: 4096, out: 4096))
        b.output(b.linear(x, in: 4096, out: classes))
        return b.graph
    }
}
