/// A health check's verdict, in Consul's words. Only `critical` takes an instance out of
/// default discovery; `warning` keeps it listed (as Consul's DNS does) and says so.
public enum CheckStatus: String, CaseIterable, Hashable, Sendable {
    case passing
    case warning
    case critical
}
