import Foundation
import Metronome
import MetronomeIO

/// A labelled image set in memory: `count` images of `shape` (`[C, H, W]`), as normalized
/// floats, and one class index per image.
public struct LabelledImages: Sendable {
    public var name: String
    public var shape: [Int]
    public var pixels: [Float]
    public var labels: [Int32]
    public var classes: Int
    public var count: Int { labels.count }
    public var imageSize: Int { shape.reduce(1, *) }

    public init(name: String, shape: [Int], pixels: [Float], labels: [Int32], classes: Int) throws {
        guard shape.count == 3, shape.allSatisfy({ $0 > 0 }) else {
            throw DatasetError(source: name, message: "images must be [C, H, W], got \(shape)")
        }
        guard pixels.count == labels.count * shape.reduce(1, *) else {
            throw DatasetError(source: name, message: "\(pixels.count) pixel values for \(labels.count) images of \(shape)")
        }
        if let bad = labels.first(where: { $0 < 0 || Int($0) >= classes }) {
            throw DatasetError(source: name, message: "label \(bad) is outside 0..<\(classes)")
        }
        self.name = name
        self.shape = shape
        self.pixels = pixels
        self.labels = labels
        self.classes = classes
    }

    /// Images `range` as a new set (a validation split).
    public func subset(_ range: Range<Int>) throws -> LabelledImages {
        try LabelledImages(name: "\(name)[\(range.lowerBound)..<\(range.upperBound)]", shape: shape,
                           pixels: Array(pixels[(range.lowerBound * imageSize)..<(range.upperBound * imageSize)]),
                           labels: Array(labels[range]), classes: classes)
    }
}

/// A dataset that cannot be read: `source` names the file, folder or dataset.
public struct DatasetError: Error, CustomStringConvertible, Equatable {
    public var source: String
    public var message: String
    public var description: String { "\(source): \(message)" }
}

extension LabelledImages {
    /// Reads a data specification: `fashion-mnist` (the training split) or
    /// `fashion-mnist:test`, `npy:IMAGES.npy,LABELS.npy` (float images `[N, C, H, W]`, integer
    /// or float labels `[N]`), or `folder:DIR` (one sub-folder of PNG/JPEG images per class,
    /// in name order, resized to `size` and scaled to [0, 1]).
    public static func load(_ spec: String, fashionMNISTDirectory: String = FashionMNIST.defaultDirectory,
                            size: Int? = nil) throws -> LabelledImages {
        if spec == "fashion-mnist" || spec == "fashion-mnist:train" {
            return try FashionMNIST.load(.train, directory: fashionMNISTDirectory)
        }
        if spec == "fashion-mnist:test" { return try FashionMNIST.load(.test, directory: fashionMNISTDirectory) }
        if spec.hasPrefix("npy:") {
            let parts = spec.dropFirst(4).split(separator: ",").map(String.init)
            guard parts.count == 2 else {
                throw DatasetError(source: spec, message: "write npy:IMAGES.npy,LABELS.npy")
            }
            return try fromNPY(images: parts[0], labels: parts[1])
        }
        if spec.hasPrefix("folder:") { return try fromFolder(String(spec.dropFirst(7)), size: size ?? 32) }
        throw DatasetError(source: spec, message: "unknown data; use fashion-mnist, fashion-mnist:test, npy:IMAGES.npy,LABELS.npy or folder:DIR")
    }

    static func fromNPY(images: String, labels: String) throws -> LabelledImages {
        let x: Tensor, y: Tensor
        do { x = try NPY.read(URL(fileURLWithPath: images)) } catch { throw DatasetError(source: images, message: "\(error)") }
        do { y = try NPY.read(URL(fileURLWithPath: labels)) } catch { throw DatasetError(source: labels, message: "\(error)") }
        guard x.shape.count == 4 else { throw DatasetError(source: images, message: "images must be [N, C, H, W], got \(x.shape)") }
        guard y.shape == [x.shape[0]] else {
            throw DatasetError(source: labels, message: "labels must be [\(x.shape[0])] (one per image), got \(y.shape)")
        }
        var classes = 0
        var ints: [Int32] = []
        for (i, v) in y.scalars.enumerated() {
            guard v >= 0, v == v.rounded(), v < 1e6 else { throw DatasetError(source: labels, message: "label \(i) is \(v), not a class index") }
            ints.append(Int32(v))
            classes = max(classes, Int(v) + 1)
        }
        return try LabelledImages(name: images, shape: Array(x.shape.dropFirst()), pixels: x.scalars, labels: ints, classes: classes)
    }

    static func fromFolder(_ dir: String, size: Int) throws -> LabelledImages {
        let fm = FileManager.default
        guard let classNames = try? fm.contentsOfDirectory(atPath: dir).filter({ name in
            var isDir: ObjCBool = false
            return fm.fileExists(atPath: (dir as NSString).appendingPathComponent(name), isDirectory: &isDir) && isDir.boolValue
        }).sorted(), !classNames.isEmpty else {
            throw DatasetError(source: dir, message: "is not a folder with one sub-folder of images per class")
        }
        var pixels: [Float] = [], labels: [Int32] = []
        for (k, name) in classNames.enumerated() {
            let sub = (dir as NSString).appendingPathComponent(name)
            let files = (try fm.contentsOfDirectory(atPath: sub)).filter {
                let e = ($0 as NSString).pathExtension.lowercased()
                return e == "png" || e == "jpg" || e == "jpeg"
            }.sorted()
            for f in files {
                let path = (sub as NSString).appendingPathComponent(f)
                let image = try ImageDecoder.load(URL(fileURLWithPath: path))
                let resized = ImagePreprocessor.resizeBilinearAntialiased(image, width: size, height: size)
                // HWC in [0, 255] → CHW in [0, 1].
                var chw = [Float](repeating: 0, count: 3 * size * size)
                for i in 0..<(size * size) { for c in 0..<3 { chw[c * size * size + i] = resized[i * 3 + c] / 255 } }
                pixels += chw
                labels.append(Int32(k))
            }
        }
        guard !labels.isEmpty else { throw DatasetError(source: dir, message: "has no PNG or JPEG images") }
        return try LabelledImages(name: dir, shape: [3, size, size], pixels: pixels, labels: labels, classes: classNames.count)
    }
}
