/// Geometry of a 2-D pooling window. Pads are `[top, left, bottom, right]`.
public struct PoolAttributes: Equatable, Sendable {
    public var kernel: [Int]
    public var strides: [Int]
    public var pads: [Int]
    public var dilations: [Int]
    public var ceilMode: Bool

    public init(kernel: [Int], strides: [Int], pads: [Int], dilations: [Int] = [1, 1], ceilMode: Bool = false) {
        self.kernel = kernel
        self.strides = strides
        self.pads = pads
        self.dilations = dilations
        self.ceilMode = ceilMode
    }
}
