/// What `Registry.heartbeat`, `setStatus`, `setCheckStatus` and `deregister` did.
public enum InstanceOutcome: Equatable, Sendable {
    /// Done; `changed` says whether a reader sees a difference (a new status, a removal).
    case done(changed: Bool)
    case unknownService
    case unknownInstance
    /// The instance has no check of that id.
    case unknownCheck
    case invalid(Violation)
}
