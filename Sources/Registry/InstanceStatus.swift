/// Whether an instance should receive traffic, as the instance (or an operator) says.
public enum InstanceStatus: String, CaseIterable, Hashable, Sendable {
    /// Ready for traffic; the only status listed by default.
    case up = "UP"
    case starting = "STARTING"
    case down = "DOWN"
    /// Healthy but taken out of rotation on purpose (maintenance, a canary on hold).
    case outOfService = "OUT_OF_SERVICE"
}
