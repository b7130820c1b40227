/// A per-instance heartbeat timeout as a client asked for it.
public enum TTLRequest: Equatable, Sendable {
    /// Back to the server's heartbeat timeout.
    case serverDefault
    /// This many seconds, exactly as sent. The core checks it against the policy's bounds
    /// before it becomes a `Duration`, so no number a client can send (`-1e10`, `1e300`)
    /// reaches a conversion that traps, and a refusal reports the number that was sent.
    case seconds(Double)
    /// No heartbeat timeout at all (`InstanceAttributes.noExpiry`): Consul's registrations.
    case never

    /// The same request for a `Duration` (restoring, tools, tests).
    public static func duration(_ duration: Duration) -> TTLRequest {
        duration == InstanceAttributes.noExpiry ? .never : .seconds(Double(duration.wholeNanoseconds) / 1e9)
    }
}
