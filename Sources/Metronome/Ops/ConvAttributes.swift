/// Geometry of a 2-D convolution. Pads are `[top, left, bottom, right]`.
public struct ConvAttributes: Hashable, Sendable {
    public var kernel: [Int]
    public var strides: [Int]
    public var pads: [Int]
    public var dilations: [Int]
    public var groups: Int

    public init(kernel: [Int], strides: [Int] = [1, 1], pads: [Int] = [0, 0, 0, 0],
                dilations: [Int] = [1, 1], groups: Int = 1) {
        self.kernel = kernel
        self.strides = strides
        self.pads = pads
        self.dilations = dilations
        self.groups = groups
    }
}
