#if canImport(Glibc)
import Glibc
#endif

/// Training losses on a batch of logits `[B, K]`: each returns the mean loss over the batch
/// and writes its gradient with respect to the logits.
public enum Loss {
    /// Softmax cross-entropy with integer labels (PyTorch's `CrossEntropyLoss`, mean
    /// reduction); also counts the images whose arg-max is their label.
    public static func softmaxCrossEntropy(_ logits: UnsafePointer<Float>, batch: Int, classes: Int, labels: UnsafePointer<Int32>,
                                           gradient: UnsafeMutablePointer<Float>) -> (loss: Double, correct: Int) {
        var total = 0.0, correct = 0
        let scale = 1 / Float(batch)
        for b in 0..<batch {
            let row = logits + b * classes, g = gradient + b * classes
            var mx = -Float.infinity, arg = 0
            for k in 0..<classes where row[k] > mx { mx = row[k]; arg = k }
            var sum: Float = 0
            for k in 0..<classes { let e = expf(row[k] - mx); g[k] = e; sum += e }
            let label = Int(labels[b])
            total += Double(logf(sum) + mx - row[label])
            for k in 0..<classes { g[k] = (g[k] / sum - (k == label ? 1 : 0)) * scale }
            if arg == label { correct += 1 }
        }
        return (total / Double(batch), correct)
    }

    /// Mean squared error against `target` (distillation on logits): mean over all elements.
    public static func meanSquaredError(_ output: UnsafePointer<Float>, target: UnsafePointer<Float>, count: Int,
                                        gradient: UnsafeMutablePointer<Float>) -> Double {
        var total = 0.0
        let scale = 2 / Float(count)
        for i in 0..<count {
            let d = output[i] - target[i]
            total += Double(d * d)
            gradient[i] = d * scale
        }
        return total / Double(count)
    }

    /// Distillation with labels (Hinton et al.'s mix): the MSE to the teacher's logits
    /// plus `labelWeight` × the labels' softmax cross-entropy; the gradient is the same mix.
    /// Returns the mixed loss and the images whose arg-max is their label.
    public static func distillation(_ logits: UnsafePointer<Float>, batch: Int, classes: Int, target: UnsafePointer<Float>,
                                    labels: UnsafePointer<Int32>, labelWeight: Float,
                                    gradient: UnsafeMutablePointer<Float>) -> (loss: Double, correct: Int) {
        let n = batch * classes
        guard labelWeight != 0 else {
            // The cross-entropy only counts the correct images; the MSE overwrites its gradient.
            let correct = softmaxCrossEntropy(logits, batch: batch, classes: classes, labels: labels, gradient: gradient).correct
            return (meanSquaredError(logits, target: target, count: n, gradient: gradient), correct)
        }
        let labelGradient = UnsafeMutablePointer<Float>.allocate(capacity: n)
        defer { labelGradient.deallocate() }
        let (crossEntropy, correct) = softmaxCrossEntropy(logits, batch: batch, classes: classes, labels: labels, gradient: labelGradient)
        let mse = meanSquaredError(logits, target: target, count: n, gradient: gradient)
        for i in 0..<n { gradient[i] += labelWeight * labelGradient[i] }
        return (mse + Double(labelWeight) * crossEntropy, correct)
    }

    /// Cross-entropy to soft targets (each row a probability distribution, e.g. a teacher's
    /// softmax): −Σ p·log softmax(z), mean over the batch; gradient (softmax(z) − p)/B.
    public static func softCrossEntropy(_ logits: UnsafePointer<Float>, batch: Int, classes: Int, target: UnsafePointer<Float>,
                                        gradient: UnsafeMutablePointer<Float>) -> Double {
        var total = 0.0
        let scale = 1 / Float(batch)
        for b in 0..<batch {
            let row = logits + b * classes, g = gradient + b * classes, p = target + b * classes
            var mx = -Float.infinity
            for k in 0..<classes { mx = max(mx, row[k]) }
            var sum: Float = 0
            for k in 0..<classes { let e = expf(row[k] - mx); g[k] = e; sum += e }
            let logSum = logf(sum) + mx
            for k in 0..<classes {
                total -= Double(p[k] * (row[k] - logSum))
                g[k] = (g[k] / sum - p[k]) * scale
            }
        }
        return total / Double(batch)
    }
}
