/// Where a label ranks among one image's class scores: how many classes score strictly
/// higher (0: top-1; below 5: top-5). Shared by offline accuracy and the real-time jobs that
/// count their hits, so both count ties the same way (in the label's favour).
public enum Ranking {
    @inline(__always)
    public static func rank(of label: Int, in scores: UnsafePointer<Float>, classes: Int) -> Int {
        var better = 0
        for j in 0..<classes where scores[j] > scores[label] { better += 1 }
        return better
    }
}
