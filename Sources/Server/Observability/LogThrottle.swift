import Registry

/// Keeps an event a client can cause at will from flooding the log: the first is logged,
/// then at most one per interval, carrying how many were left out in between.
struct LogThrottle {
    let interval: Duration
    private var last: Instant?
    private var suppressed = 0

    init(interval: Duration = .seconds(10)) {
        self.interval = interval
    }

    /// Nil when this occurrence is to be left out; otherwise how many were left out before it.
    mutating func admit(now: Instant) -> Int? {
        if let last, now.duration(since: last) < interval {
            suppressed += 1
            return nil
        }
        last = now
        defer { suppressed = 0 }
        return suppressed
    }
}
