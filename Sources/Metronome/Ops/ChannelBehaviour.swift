/// How an operator moves channels (axis 1) from its inputs to its outputs: the operator's
/// answer to slimming, pruning and folding, which resize channels through the whole graph.
public enum ChannelBehaviour: Equatable, Sendable {
    /// Every output has the channels of input 0 (activations, pooling, batch norm, ...).
    case passThrough
    /// The listed inputs and the output have the same channels (broadcast operands whose
    /// channel axis lines up, concatenation along another axis).
    case same([ValueID])
    /// The output's channels are chosen freely: a constant weight maps input channels to
    /// them (convolution, Gemm, MatMul).
    case free
    /// A depthwise convolution with `multiplier` output channels per input channel.
    case depthwise(multiplier: Int)
    /// The output's channels are its inputs' channels one after the other.
    case concat
    /// The input's channels become the outer feature index of a 2-D output.
    case flatten
    /// The operator depends on the exact channel count; the reason names the node.
    case pinned(String)

    /// The channel axis of an operand of shape `operand` once broadcast against a value of
    /// rank `rank`, or nil when the operand is too short to have one.
    public static func alignedChannelAxis(_ operand: [Int], rank: Int) -> Int? {
        let axis = 1 - (rank - operand.count)
        return axis >= 0 && axis < operand.count ? axis : nil
    }
}
