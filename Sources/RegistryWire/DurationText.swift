import Registry

/// Durations as Go writes them, which is what Consul's API and its clients send: a sequence
/// of decimal numbers, each with a unit (`ns`, `us` or `µs`, `ms`, `s`, `m`, `h`), such as
/// `10s`, `1m30s`, `1.5h`, `250ms`; also `0`. No sign. Anything longer than 100 years is
/// refused here (nil), so that no conversion can overflow; the rules that judge a duration's
/// range are the core's.
public enum DurationText {
    public static func parse(_ text: String) -> Duration? {
        if text == "0" { return .zero }
        let units: [(name: String, nanoseconds: Double)] = [
            ("ns", 1), ("us", 1e3), ("µs", 1e3), ("μs", 1e3), ("ms", 1e6), ("s", 1e9), ("m", 60e9), ("h", 3600e9),
        ]
        var rest = Substring(text)
        var total = 0.0
        guard !rest.isEmpty else { return nil }
        while !rest.isEmpty {
            let number = rest.prefix { $0.isASCII && ($0.isNumber || $0 == ".") }
            guard !number.isEmpty, number != ".", number.filter({ $0 == "." }).count <= 1, let value = Double(number) else { return nil }
            rest = rest.dropFirst(number.count)
            let unit = rest.prefix { !($0.isASCII && ($0.isNumber || $0 == ".")) }
            // Longest match first: "ms" before "m", "ns" before… (no unit is a prefix of "s").
            guard let match = units.first(where: { $0.name == unit }) else { return nil }
            rest = rest.dropFirst(unit.count)
            total += value * match.nanoseconds
            guard total <= 100 * 365 * 86_400 * 1e9 else { return nil }
        }
        return .nanoseconds(Int64(total.rounded()))
    }

    /// The shortest Go form of a duration: `10s`, `1m30s`, `250ms`, `1h0m0s` as Go prints it.
    public static func format(_ duration: Duration) -> String {
        let nanos = duration.wholeNanoseconds
        if nanos == 0 { return "0s" }
        if nanos < 1_000_000_000 {
            if nanos % 1_000_000 == 0 { return "\(nanos / 1_000_000)ms" }
            if nanos % 1_000 == 0 { return "\(nanos / 1_000)µs" }
            return "\(nanos)ns"
        }
        let seconds = Duration.nanoseconds(nanos % 60_000_000_000).secondsText
        let minutes = nanos / 60_000_000_000
        if minutes == 0 { return seconds }
        if minutes < 60 { return "\(minutes)m" + seconds }
        return "\(minutes / 60)h\(minutes % 60)m" + seconds
    }
}
