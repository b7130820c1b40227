/// What `Registry.heartbeat`, `setStatus` and `deregister` did.
public enum InstanceOutcome: Equatable, Sendable {
    /// Done; `changed` says whether a reader sees a difference (a new status, a removal).
    case done(changed: Bool)
    case unknownService
    case unknownInstance
    case invalid(Violation)
}
