import CDNNL

/// oneDNN eltwise primitives for stand-alone activations, in place when the input dies.
extension PlanBuilder {
    mutating func eltwise(_ step: Step, _ f: Eltwise) throws -> Bool {
        // A function oneDNN does not compute (Erf) runs the reference kernel.
        guard !f.oneDNNAlgorithms.isEmpty else { return false }
        let x = try location[step.inputs[0]] ?? plainLocation(step.inputs[0])
        let out = step.outputs[0]
        var current = x
        for (i, (alg, alpha, beta)) in f.oneDNNAlgorithms.enumerated() {
            var md = current.desc
            var d = dnnl_eltwise_desc_t()
            try DNNL.check(dnnl_eltwise_forward_desc_init(&d, dnnl_forward_inference, alg, &md, alpha, beta),
                           "eltwise \(step.name)")
            guard let pd = DNNL.primitiveDesc(&d, attr: try DNNL.Attributes(), engine: engine) else {
                if i == 0 { return false }
                throw MetronomeError.backend("eltwise \(step.name): second stage unavailable")
            }
            let target: Location
            if i > 0 {
                target = current  // later stages run in place on the step's own output
            } else if isDeadAfterCurrentStep(x.ref) {
                alias(out, onto: x, desc: x.desc)
                target = x
            } else {
                target = newArena(x.desc, holding: out)
                location[out] = target
            }
            try emit(pd, [Argument(kind: Arg.src, desc: md, ref: current.ref),
                          Argument(kind: Arg.dst, desc: md, ref: target.ref)], name: step.name)
            current = target
        }
        return true
    }
}
