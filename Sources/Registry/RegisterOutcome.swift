/// What `Registry.register` did.
public enum RegisterOutcome: Equatable, Sendable {
    /// A new instance; its uptime starts now.
    case registered
    /// The instance was already registered: this counted as a heartbeat, and `changed`
    /// says whether any field a reader sees was updated too.
    case updated(changed: Bool)
    /// No id was given, so the address named the instance, and the instance of that name was
    /// registered under an explicit id at another address: nothing was changed.
    case conflict(existingAddress: String)
    case invalid(Violation)
    /// A new instance (or a new service) would pass `RegistryPolicy.maxInstances` (or
    /// `maxServices`): nothing was changed.
    case overLimit(RegistryLimit)
}

/// A registry-wide bound on what it holds (`RegistryPolicy`).
public enum RegistryLimit: Equatable, Sendable {
    case instances(Int)
    case services(Int)
}
