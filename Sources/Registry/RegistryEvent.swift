/// Something the registry did on its own, for the caller to log.
public enum RegistryEvent: Equatable, Sendable {
    /// An instance removed because its heartbeat deadline passed.
    case expired(service: String, id: String, address: String, lastHeartbeat: Instant)
    /// Expiry protection started keeping a service's overdue instances.
    case protectionStarted(service: String, overdue: Int, instances: Int)
    /// Heartbeats returned; the service's overdue instances expire normally again.
    case protectionLifted(service: String)
}
