/// The sliding window of a convolution or pooling step, as per-kernel profiles report it.
public struct KernelWindow: Equatable, Sendable {
    public var kernel: [Int]
    public var strides: [Int]
    public var dilations: [Int]
    public var groups: Int

    public init(kernel: [Int], strides: [Int], dilations: [Int], groups: Int = 1) {
        self.kernel = kernel
        self.strides = strides
        self.dilations = dilations
        self.groups = groups
    }
}
