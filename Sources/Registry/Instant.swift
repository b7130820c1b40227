/// A point on the registry's monotonic time line, in nanoseconds from an arbitrary origin.
///
/// The core never reads a clock: the server reads one once per callback and passes the
/// value down, so that every decision in one callback sees the same time and tests can
/// advance time by hand.
public struct Instant: Comparable, Hashable, Sendable {
    public var nanoseconds: Int64

    public init(nanoseconds: Int64) {
        self.nanoseconds = nanoseconds
    }

    public static func < (lhs: Instant, rhs: Instant) -> Bool {
        lhs.nanoseconds < rhs.nanoseconds
    }

    public static func + (lhs: Instant, rhs: Duration) -> Instant {
        Instant(nanoseconds: lhs.nanoseconds &+ rhs.wholeNanoseconds)
    }

    /// The time from `earlier` to `self`; negative when `earlier` is later.
    public func duration(since earlier: Instant) -> Duration {
        .nanoseconds(nanoseconds &- earlier.nanoseconds)
    }
}

extension Duration {
    /// This duration in whole nanoseconds, truncated toward zero; saturates at Int64's range.
    public var wholeNanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        return scaled &+ attoseconds / 1_000_000_000
    }
}

extension Duration {
    /// "30s", "0.5s": the shortest decimal that states the duration in seconds.
    public var secondsText: String {
        let nanos = wholeNanoseconds
        var text = String(nanos / 1_000_000_000)
        let fraction = abs(nanos % 1_000_000_000)
        if fraction != 0 {
            var digits = String(fraction)
            digits = String(repeating: "0", count: 9 - digits.count) + digits
            while digits.hasSuffix("0") { digits.removeLast() }
            text += "." + digits
        }
        return text + "s"
    }
}
