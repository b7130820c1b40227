/// How far one bounded `Registry.expireDue(now:limit:)` call got.
public struct ExpiryProgress: Equatable, Sendable {
    /// Instances removed by this call.
    public let expired: Int
    /// True when the limit stopped the call while due work remained: call again soon.
    public let moreDue: Bool
}
