/// Strict decimal numbers for query parameters, flags and environment variables.
///
/// Swift's `Double(_:)` and `Int(_:)` accept more than a person means by a number: `0x10`
/// (hex), `1e3`, `inf`, `nan`, a leading `+`. A registry must not read `wait=0x10` as 16
/// seconds, so every number a client or an operator types goes through these instead.
public enum DecimalText {
    /// `1*DIGIT`, at most 18 digits (so the value always fits): nil for anything else.
    public static func unsigned<Text: StringProtocol>(_ text: Text) -> UInt64? {
        let digits = text.utf8
        guard !digits.isEmpty, digits.count <= 18 else { return nil }
        var value: UInt64 = 0
        for byte in digits {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + UInt64(byte - UInt8(ascii: "0"))
        }
        return value
    }

    /// `1*DIGIT ["." 1*DIGIT]`: a non-negative decimal with an optional fraction, nil for
    /// anything else (signs, exponents, hex, `inf`, `nan`, spaces, an empty string).
    public static func number<Text: StringProtocol>(_ text: Text) -> Double? {
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty, bytes.count <= 40 else { return nil }
        var seenDot = false
        var digitsSinceDot = 0
        for (position, byte) in bytes.enumerated() {
            if byte == UInt8(ascii: ".") {
                guard !seenDot, position > 0 else { return nil }
                seenDot = true
                digitsSinceDot = 0
                continue
            }
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            digitsSinceDot += 1
        }
        guard !seenDot || digitsSinceDot > 0 else { return nil }
        return Double(String(decoding: bytes, as: UTF8.self))
    }
}
