#if canImport(Glibc)
import Glibc
#endif
import Registry

/// The two clocks the server reads, once per callback.
///
/// The monotonic one drives every deadline (it never jumps with NTP); the wall one only
/// labels things for people (`/health`'s timestamp, log lines).
enum Clock {
    static func monotonicNow() -> Instant {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Instant(nanoseconds: Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec))
    }

    /// Nanoseconds since the Unix epoch.
    static func wallNow() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
    }

    /// ISO 8601 in UTC with milliseconds: "2026-11-24T20:40:27.123Z".
    static func iso8601(unixNanoseconds: Int64) -> String {
        var seconds = time_t(unixNanoseconds / 1_000_000_000)
        let millis = Int(unixNanoseconds % 1_000_000_000 / 1_000_000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(millis), 3))Z"
    }
}
