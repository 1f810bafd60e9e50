import CGzip
import Foundation

/// Fashion-MNIST (Xiao et al. 2017) from Debian's `dataset-fashion-mnist` package: 60,000
/// training and 10,000 test images of 28×28 grey levels in 10 classes, as gzip-compressed
/// IDX files. Pixels become `(v/255 − 0.2860) / 0.3530` (the training set's mean and
/// standard deviation), one channel.
public enum FashionMNIST {
    public static let defaultDirectory = "/usr/share/datasets/fashion-mnist"
    public static let mean: Float = 0.2860
    public static let std: Float = 0.3530
    public static let classNames = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

    public enum Split: String, Sendable {
        case train, test
        var prefix: String { self == .train ? "train" : "t10k" }
    }

    public static func load(_ split: Split, directory: String = defaultDirectory) throws -> LabelledImages {
        let imagesPath = (directory as NSString).appendingPathComponent("\(split.prefix)-images-idx3-ubyte.gz")
        let labelsPath = (directory as NSString).appendingPathComponent("\(split.prefix)-labels-idx1-ubyte.gz")
        for p in [imagesPath, labelsPath] where !FileManager.default.fileExists(atPath: p) {
            throw DatasetError(source: p, message: "not found; install Debian's dataset-fashion-mnist package (`make deps` does)")
        }
        let (imageDims, imageBytes) = try IDX.read(imagesPath, rank: 3)
        let (labelDims, labelBytes) = try IDX.read(labelsPath, rank: 1)
        guard imageDims[0] == labelDims[0] else {
            throw DatasetError(source: labelsPath, message: "has \(labelDims[0]) labels for the \(imageDims[0]) images of \(imagesPath)")
        }
        let pixels = imageBytes.map { (Float($0) / 255 - mean) / std }
        let labels = labelBytes.map { Int32($0) }
        return try LabelledImages(name: "fashion-mnist:\(split.rawValue)", shape: [1, imageDims[1], imageDims[2]],
                                  pixels: pixels, labels: labels, classes: 10)
    }
}

/// The IDX format of (Fashion-)MNIST: magic `0 0 8 rank` (unsigned bytes), the dimensions as
/// big-endian 32-bit integers, then the data; gzip-compressed files are inflated first.
enum IDX {
    static func read(_ path: String, rank: Int) throws -> ([Int], [UInt8]) {
        let raw: Data
        do { raw = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw DatasetError(source: path, message: "cannot read (\(error.localizedDescription))")
        }
        let bytes = path.hasSuffix(".gz") ? try gunzip([UInt8](raw), source: path) : [UInt8](raw)
        let header = 4 + 4 * rank
        guard bytes.count >= header, bytes[0] == 0, bytes[1] == 0 else {
            throw DatasetError(source: path, message: "not an IDX file (bad magic number)")
        }
        guard bytes[2] == 8 else { throw DatasetError(source: path, message: "IDX element type \(bytes[2]) is not unsigned bytes (8)") }
        guard Int(bytes[3]) == rank else { throw DatasetError(source: path, message: "IDX rank \(bytes[3]), expected \(rank)") }
        var dims: [Int] = []
        for d in 0..<rank {
            let o = 4 + 4 * d
            dims.append(Int(bytes[o]) << 24 | Int(bytes[o + 1]) << 16 | Int(bytes[o + 2]) << 8 | Int(bytes[o + 3]))
        }
        let count = dims.reduce(1, *)
        guard bytes.count - header == count else {
            throw DatasetError(source: path, message: "has \(bytes.count - header) data bytes; its header \(dims) says \(count) (truncated or corrupt)")
        }
        return (dims, Array(bytes[header...]))
    }

    /// Inflates a gzip (or zlib) stream.
    static func gunzip(_ input: [UInt8], source: String) throws -> [UInt8] {
        var stream = z_stream()
        guard metronome_inflate_init_gzip(&stream) == Z_OK else { throw DatasetError(source: source, message: "zlib initialisation failed") }
        defer { inflateEnd(&stream) }
        var output = [UInt8]()
        output.reserveCapacity(input.count * 4)
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        var status: Int32 = Z_OK
        try input.withUnsafeBufferPointer { inBuf in
            stream.next_in = UnsafeMutablePointer(mutating: inBuf.baseAddress)
            stream.avail_in = uInt(inBuf.count)
            repeat {
                try chunk.withUnsafeMutableBufferPointer { out in
                    stream.next_out = out.baseAddress
                    stream.avail_out = uInt(out.count)
                    status = inflate(&stream, Z_NO_FLUSH)
                    guard status == Z_OK || status == Z_STREAM_END else {
                        throw DatasetError(source: source, message: "corrupt gzip data (zlib error \(status))")
                    }
                    output.append(contentsOf: out[0..<(out.count - Int(stream.avail_out))])
                }
                if status == Z_OK && stream.avail_in == 0 && stream.avail_out != 0 {
                    throw DatasetError(source: source, message: "truncated gzip data")
                }
            } while status != Z_STREAM_END
        }
        return output
    }
}
