import ArgumentParser
import Metronome

/// A positive byte count on the command line, in any spelling ``ByteCountText`` accepts.
struct ByteCountArgument: ExpressibleByArgument, Equatable {
    var bytes: Int

    init(bytes: Int) { self.bytes = bytes }

    init?(argument: String) {
        guard let b = ByteCountText.parse(argument), b > 0 else { return nil }
        bytes = b
    }

    static var defaultCompletionKind: CompletionKind { .default }
}
