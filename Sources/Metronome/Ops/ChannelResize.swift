/// How a step's constant inputs and attributes change when the channels of its data input
/// (input 0) and of its output change: the operator's answer to the graph rewriter behind
/// slimming, pruning and folding, and to pruning's parameter count.
public struct ChannelResize: Equatable, Sendable {
    /// Which axes of a constant input follow channels.
    public enum Axes: Equatable, Sendable {
        /// A weight: axis `output` follows the output's channels and axis `input`, if any,
        /// the data input's. `fanInPerChannel` elements per input channel feed one output
        /// (the kernel area), for drawing fresh weights of the right scale.
        case weight(output: Int, input: Int?, fanInPerChannel: Int)
        /// One value per output channel along `axis` (biases, batch-norm statistics,
        /// broadcast operands).
        case perChannel(axis: Int)
    }

    /// The constant inputs that follow channels; every other constant is kept as it is.
    public var inputs: [ValueID: Axes] = [:]
    /// An integer attribute that becomes the data input's new channel count (a depthwise
    /// convolution's `group`).
    public var channelCountAttribute: String? = nil
    /// The step flattens channels into features through a target-shape input, which must
    /// become `[0, -1]` when the channel count changes.
    public var flattensChannels = false
    /// Set when the step cannot follow any change of its channels: the error to report.
    public var fixed: String? = nil

    public init(inputs: [ValueID: Axes] = [:], channelCountAttribute: String? = nil,
                flattensChannels: Bool = false, fixed: String? = nil) {
        self.inputs = inputs
        self.channelCountAttribute = channelCountAttribute
        self.flattensChannels = flattensChannels
        self.fixed = fixed
    }
}
