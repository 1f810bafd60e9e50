import CJPEG
import CPNG
import Foundation
import Metronome

/// An 8-bit RGB image, row-major and interleaved (`height × width × 3`).
public struct RGBImage: Sendable, Equatable {
    public var width: Int
    public var height: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) throws {
        guard width > 0, height > 0, pixels.count == width * height * 3 else {
            throw MetronomeError.invalidArgument("an RGB image of \(width)x\(height) needs \(max(0, width * height * 3)) bytes, got \(pixels.count)")
        }
        self.width = width
        self.height = height
        self.pixels = pixels
    }
}

/// Decodes PNG (libpng) and JPEG (libjpeg-turbo) files.
public enum ImageDecoder {
    /// Images above this many pixels are refused rather than decoded (a corrupt header
    /// can otherwise ask for gigabytes).
    public static let maxPixels = 1 << 26

    public static func load(_ url: URL) throws -> RGBImage {
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw MetronomeError.invalidArgument("no such file: \(url.path)")
        }
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw MetronomeError.invalidArgument("cannot read \(url.path): \(error.localizedDescription)")
        }
        return try decode(data, source: url.path)
    }

    public static func decode(_ data: Data, source: String = "image") throws -> RGBImage {
        let head = [UInt8](data.prefix(8))
        if head == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] { return try decodePNG(data, source: source) }
        if head.count >= 3 && head[0] == 0xFF && head[1] == 0xD8 && head[2] == 0xFF { return try decodeJPEG(data, source: source) }
        throw MetronomeError.invalidArgument("\(source) is neither a PNG nor a JPEG file")
    }

    static func decodePNG(_ data: Data, source: String) throws -> RGBImage {
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        func message(_ image: png_image) -> String {
            withUnsafeBytes(of: image.message) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
        }
        let ok = data.withUnsafeBytes { raw -> Int32 in
            png_image_begin_read_from_memory(&image, raw.baseAddress, raw.count)
        }
        guard ok != 0 else { throw MetronomeError.invalidArgument("\(source): invalid PNG: \(message(image))") }
        defer { png_image_free(&image) }
        let width = Int(image.width), height = Int(image.height)
        guard width > 0, height > 0, width * height <= maxPixels else {
            throw MetronomeError.invalidArgument("\(source): PNG of \(width)x\(height) pixels is too large")
        }
        // Read as RGBA and drop alpha, as PIL's convert("RGB") does.
        image.format = UInt32(PNG_FORMAT_FLAG_COLOR | PNG_FORMAT_FLAG_ALPHA)  // PNG_FORMAT_RGBA
        var rgba = [UInt8](repeating: 0, count: width * height * 4)
        let done = data.withUnsafeBytes { _ in
            rgba.withUnsafeMutableBytes { out in
                png_image_finish_read(&image, nil, out.baseAddress, 0, nil)
            }
        }
        guard done != 0 else { throw MetronomeError.invalidArgument("\(source): invalid PNG: \(message(image))") }
        var rgb = [UInt8](repeating: 0, count: width * height * 3)
        for i in 0..<(width * height) {
            rgb[3 * i] = rgba[4 * i]; rgb[3 * i + 1] = rgba[4 * i + 1]; rgb[3 * i + 2] = rgba[4 * i + 2]
        }
        return try RGBImage(width: width, height: height, pixels: rgb)
    }

    static func decodeJPEG(_ data: Data, source: String) throws -> RGBImage {
        var pixels: UnsafeMutablePointer<UInt8>?
        var width: Int32 = 0, height: Int32 = 0
        var message = [CChar](repeating: 0, count: 256)
        let status = data.withUnsafeBytes { raw in
            metronome_jpeg_decode(raw.bindMemory(to: UInt8.self).baseAddress, UInt(raw.count), &pixels, &width, &height,
                                  UInt(maxPixels), &message, Int32(message.count))
        }
        guard status == 0, let pixels else {
            let text = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw MetronomeError.invalidArgument("\(source): invalid JPEG: \(text)")
        }
        defer { free(pixels) }
        let count = Int(width) * Int(height) * 3
        return try RGBImage(width: Int(width), height: Int(height), pixels: Array(UnsafeBufferPointer(start: pixels, count: count)))
    }
}

/// The standard ImageNet evaluation transform: resize so the shorter side is `resize`
/// (bilinear with antialiasing), center-crop `crop`, scale to [0, 1] and normalize with
/// the ImageNet mean and standard deviation. Produces a `[1, 3, crop, crop]` NCHW tensor.
public struct ImagePreprocessor: Sendable {
    public var resize = 256
    public var crop = 224
    public var mean: [Float] = [0.485, 0.456, 0.406]
    public var std: [Float] = [0.229, 0.224, 0.225]

    public init(resize: Int = 256, crop: Int = 224) {
        self.resize = resize
        self.crop = crop
    }

    public func callAsFunction(_ image: RGBImage) throws -> Tensor {
        // torchvision's Resize(int): the shorter side becomes `resize`, the longer one is truncated.
        let (w, h) = (image.width, image.height)
        let (ow, oh) = w <= h ? (resize, Int(Double(resize) * Double(h) / Double(w)))
                              : (Int(Double(resize) * Double(w) / Double(h)), resize)
        guard ow >= crop, oh >= crop else {
            throw MetronomeError.invalidArgument("image of \(w)x\(h) is too small to crop \(crop)x\(crop) after resizing")
        }
        let resized = Self.resizeBilinearAntialiased(image, width: ow, height: oh)
        let top = Int((Double(oh - crop) / 2).rounded()), left = Int((Double(ow - crop) / 2).rounded())
        var out = [Float](repeating: 0, count: 3 * crop * crop)
        for c in 0..<3 {
            for y in 0..<crop {
                for x in 0..<crop {
                    let v = resized[((top + y) * ow + left + x) * 3 + c] / 255
                    out[(c * crop + y) * crop + x] = (v - mean[c]) / std[c]
                }
            }
        }
        return try Tensor(shape: [1, 3, crop, crop], scalars: out)
    }

    /// Separable resampling with a triangle filter whose support widens with the
    /// downscaling factor (PIL's and torchvision's antialiased bilinear), kept in float.
    public static func resizeBilinearAntialiased(_ image: RGBImage, width ow: Int, height oh: Int) -> [Float] {
        let (w, h) = (image.width, image.height)
        let src = image.pixels.map { Float($0) }
        let horizontal = weights(input: w, output: ow)
        var mid = [Float](repeating: 0, count: h * ow * 3)
        for y in 0..<h {
            for x in 0..<ow {
                let (start, ws) = horizontal[x]
                var acc: (Float, Float, Float) = (0, 0, 0)
                for (k, wk) in ws.enumerated() {
                    let p = (y * w + start + k) * 3
                    acc.0 += wk * src[p]; acc.1 += wk * src[p + 1]; acc.2 += wk * src[p + 2]
                }
                let q = (y * ow + x) * 3
                mid[q] = acc.0; mid[q + 1] = acc.1; mid[q + 2] = acc.2
            }
        }
        let vertical = weights(input: h, output: oh)
        var out = [Float](repeating: 0, count: oh * ow * 3)
        for y in 0..<oh {
            let (start, ws) = vertical[y]
            for x in 0..<(ow * 3) {
                var acc: Float = 0
                for (k, wk) in ws.enumerated() { acc += wk * mid[(start + k) * ow * 3 + x] }
                out[y * ow * 3 + x] = acc
            }
        }
        return out
    }

    /// For each output index: the first input index and the normalized filter weights.
    public static func weights(input: Int, output: Int) -> [(Int, [Float])] {
        let scale = Double(input) / Double(output)
        let filterScale = max(scale, 1)
        let support = filterScale  // the triangle filter has support 1
        return (0..<output).map { i in
            let center = (Double(i) + 0.5) * scale
            let lo = max(Int(center - support + 0.5), 0)
            let hi = min(Int(center + support + 0.5), input)
            var ws = (lo..<hi).map { j in max(0, 1 - abs((Double(j) - center + 0.5) / filterScale)) }
            let total = ws.reduce(0, +)
            if total > 0 { ws = ws.map { $0 / total } }
            return (lo, ws.map { Float($0) })
        }
    }
}
