/// A small deterministic generator (SplitMix64), so that random inputs in tests are the same
/// on every run and a failure can be reproduced.
public struct SplitMix64: RandomNumberGenerator {
    public var state: UInt64

    public init(state: UInt64) {
        self.state = state
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// `count` bytes of garbage.
    public mutating func bytes(_ count: Int) -> [UInt8] {
        var result = [UInt8](repeating: 0, count: count)
        var index = 0
        while index < count {
            var word = next()
            for _ in 0..<8 where index < count {
                result[index] = UInt8(truncatingIfNeeded: word)
                word >>= 8
                index += 1
            }
        }
        return result
    }

    /// `length` visible characters: printable ASCII mostly, with some of two, three and four
    /// UTF-8 bytes, and spaces.
    public mutating func text(length: Int) -> String {
        var result = String.UnicodeScalarView()
        for _ in 0..<length { result.append(Self.alphabet[Int.random(in: 0..<Self.alphabet.count, using: &self)]) }
        return String(result)
    }

    private static let alphabet: [Unicode.Scalar] = (0x21...0x7E).map { Unicode.Scalar($0)! } + ["é", "ß", "東", "京", "🙂", "€", " "]
}
