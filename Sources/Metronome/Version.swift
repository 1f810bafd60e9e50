/// Metronome's release version, reported by `metronome --version` and recorded in every
/// profile row so that measurements can be traced to the code that made them.
public enum MetronomeVersion {
    public static let string = "0.5.0"
}
