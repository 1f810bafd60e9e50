import Foundation
import Metronome

/// Augmentation applied to each training image as its batch is assembled.
public struct Augmentation: Sendable, Equatable {
    /// Random crop after zero-padding by this many pixels on every side (0: none).
    public var cropPadding: Int
    /// Random horizontal flip with probability 1/2.
    public var flip: Bool

    public init(cropPadding: Int = 0, flip: Bool = false) {
        self.cropPadding = cropPadding
        self.flip = flip
    }

    public static let none = Augmentation()
}

/// Shuffles a dataset every epoch and assembles its batches on a loader thread, one batch
/// ahead of the training loop, so data never waits for compute. The order and the
/// augmentation of epoch `e` depend only on `seed` and `e`, so a run resumed at an epoch
/// boundary sees the same batches as one that was not interrupted.
public final class BatchLoader: @unchecked Sendable {
    public let data: LabelledImages
    public let batch: Int
    public let augmentation: Augmentation
    public let seed: UInt64
    /// Per image, a teacher's logits (distillation), handed out with each batch.
    public let teacher: [Float]?
    public var teacherClasses: Int { teacher.map { $0.count / max(data.count, 1) } ?? 0 }
    /// Full batches in the epoch started last (a last partial batch is dropped, as
    /// `drop_last=True`; a curriculum epoch has fewer images).
    public private(set) var batchesPerEpoch: Int

    private var filled = DispatchSemaphore(value: 0)
    /// Created at 0 and signalled twice: libdispatch traps when a semaphore is freed below
    /// the value it was created with, which a stopped epoch leaves it at.
    private var emptied = BatchLoader.twoSlots()
    private var done = DispatchSemaphore(value: 0)
    /// Two batches' worth of images and labels: the loader fills one while the trainer reads
    /// the other (raw buffers, so the two threads never touch the same Swift value).
    private let images: [UnsafeMutablePointer<Float>]
    private let labels: [UnsafeMutablePointer<Int32>]
    private let targets: [UnsafeMutablePointer<Float>]
    private var producer: Thread?
    private var stopping = false
    private var next = 0

    public init(_ data: LabelledImages, batch: Int, augmentation: Augmentation = .none, seed: UInt64 = 0, teacher: [Float]? = nil) throws {
        guard batch >= 1, batch <= data.count else {
            throw DatasetError(source: data.name, message: "a batch of \(batch) needs 1...\(data.count) images")
        }
        if let teacher, teacher.isEmpty || teacher.count % data.count != 0 {
            throw DatasetError(source: data.name, message: "\(teacher.count) teacher logits for \(data.count) images")
        }
        self.data = data
        self.batch = batch
        self.augmentation = augmentation
        self.seed = seed
        self.teacher = teacher
        batchesPerEpoch = data.count / batch
        images = (0..<2).map { _ in UnsafeMutablePointer<Float>.allocate(capacity: batch * data.imageSize) }
        labels = (0..<2).map { _ in UnsafeMutablePointer<Int32>.allocate(capacity: batch) }
        let k = teacher.map { $0.count / data.count } ?? 1
        targets = (0..<2).map { _ in UnsafeMutablePointer<Float>.allocate(capacity: batch * k) }
    }

    static func twoSlots() -> DispatchSemaphore {
        let s = DispatchSemaphore(value: 0)
        s.signal()
        s.signal()
        return s
    }

    deinit {
        stop()
        images.forEach { $0.deallocate() }
        labels.forEach { $0.deallocate() }
        targets.forEach { $0.deallocate() }
    }

    /// The image order of `epoch` (Fisher–Yates with a generator seeded by `seed` and `epoch`).
    public func order(epoch: Int) -> [Int] {
        var g = SplitMix64(seed: seed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(epoch))
        var order = Array(0..<data.count)
        for i in stride(from: order.count - 1, to: 0, by: -1) {
            order.swapAt(i, Int(g.next() % UInt64(i + 1)))
        }
        return order
    }

    /// Starts producing the batches of `epoch`, from the images whose label is in `classes`
    /// (a curriculum; nil: all); take them with ``next(_:)``.
    public func start(epoch: Int, classes: Set<Int32>? = nil) {
        stop()
        stopping = false
        next = 0
        (filled, emptied, done) = (DispatchSemaphore(value: 0), BatchLoader.twoSlots(), DispatchSemaphore(value: 0))
        let (f, e, d) = (filled, emptied, done)
        let all = order(epoch: epoch)
        let order = classes.map { c in all.filter { c.contains(data.labels[$0]) } } ?? all
        batchesPerEpoch = order.count / batch
        let batchesPerEpoch = batchesPerEpoch
        let thread = Thread { [self] in
            defer { d.signal() }
            var g = SplitMix64(seed: seed &+ 0xA5A5_0000 &+ UInt64(epoch) &* 7919)
            for b in 0..<batchesPerEpoch {
                e.wait()
                if stopping { return }
                fill(slot: b % 2, indices: order[(b * batch)..<((b + 1) * batch)], generator: &g)
                f.signal()
            }
        }
        thread.name = "metronome-loader"
        producer = thread
        thread.start()
    }

    /// Calls `body` with the next batch's images, labels and (with a teacher) target logits.
    public func next<R>(_ body: (UnsafePointer<Float>, UnsafePointer<Int32>, UnsafePointer<Float>?) throws -> R) rethrows -> R {
        filled.wait()
        defer {
            next += 1
            emptied.signal()
        }
        let slot = next % 2
        return try body(UnsafePointer(images[slot]), UnsafePointer(labels[slot]), teacher == nil ? nil : UnsafePointer(targets[slot]))
    }

    /// Ends the loader thread of the current epoch (batches not taken are dropped).
    public func stop() {
        guard producer != nil else { return }
        stopping = true
        emptied.signal()
        emptied.signal()
        done.wait()
        producer = nil
    }

    private func fill(slot: Int, indices: ArraySlice<Int>, generator g: inout SplitMix64) {
        let (c, h, w) = (data.shape[0], data.shape[1], data.shape[2])
        let size = data.imageSize, pad = augmentation.cropPadding
        let dst = images[slot]
        do {
            data.pixels.withUnsafeBufferPointer { src in
                for (k, i) in indices.enumerated() {
                    labels[slot][k] = data.labels[i]
                    if let teacher {
                        let kk = teacherClasses
                        teacher.withUnsafeBufferPointer { t in (targets[slot] + k * kk).update(from: t.baseAddress! + i * kk, count: kk) }
                    }
                    let image = src.baseAddress! + i * size, out = dst + k * size
                    let dy = pad > 0 ? Int(g.next() % UInt64(2 * pad + 1)) - pad : 0
                    let dx = pad > 0 ? Int(g.next() % UInt64(2 * pad + 1)) - pad : 0
                    let flip = augmentation.flip && g.next() % 2 == 1
                    if dy == 0 && dx == 0 && !flip {
                        out.update(from: image, count: size)
                        continue
                    }
                    for ch in 0..<c {
                        for y in 0..<h {
                            let sy = y + dy
                            for x in 0..<w {
                                let sx0 = x + dx
                                let sx = flip ? w - 1 - sx0 : sx0
                                out[(ch * h + y) * w + x] = sy >= 0 && sy < h && sx >= 0 && sx < w ? image[(ch * h + sy) * w + sx] : 0
                            }
                        }
                    }
                }
            }
        }
    }
}
