import CDNNL

/// oneDNN local response normalization across channels (LRN).
extension PlanBuilder {
    /// In the layout the input has.
    mutating func lrn(_ step: Step, size: Int, alpha: Float, beta: Float, bias: Float) throws -> Bool {
        guard let x = location[step.inputs[0]], x.desc.data_type == dnnl_f32 else { return false }
        var data = x.desc
        var d = dnnl_lrn_desc_t()
        guard dnnl_lrn_forward_desc_init(&d, dnnl_forward_inference, dnnl_lrn_across_channels, &data, Int64(size),
                                         alpha, beta, bias) == dnnl_success,
              let pd = DNNL.primitiveDesc(&d, attr: try DNNL.Attributes(), engine: engine) else { return false }
        return try emitIntoNewOutput(pd, source: data, at: x, step: step)
    }
}
