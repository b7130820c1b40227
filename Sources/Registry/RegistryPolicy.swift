/// What the registry is told at start-up.
public struct RegistryPolicy: Sendable {
    /// The heartbeat timeout of an instance that did not ask for its own `ttl`.
    public var heartbeatTimeout: Duration
    /// The bounds of a per-instance `ttl`.
    public var minimumTTL: Duration
    public var maximumTTL: Duration
    /// When set, a service never loses more than this share of its instances to expiry
    /// within one heartbeat timeout; see `Registry` for the whole rule.
    public var expiryProtection: Double?
    /// When set, every durable change is also queued for `Registry.takeJournal()`.
    public var journaling: Bool
    /// Cluster mode: the registry mirrors a replicated store (see `Registry+Mirror`). Changes
    /// come in only through `applyCommitted`, each carrying the store's revision as its change
    /// index; nothing expires on its own (the leader proposes expiries); the write methods
    /// judge (`judgeRegister`, …) instead of changing.
    public var mirrored: Bool
    /// How long after its TTL ran out an instance is due: in a cluster, the time another
    /// replica's report of a heartbeat may take to reach the leader (zero otherwise).
    public var expiryGrace: Duration
    /// Registrations of a new instance (or of an instance of a new service) past these are
    /// refused (`RegisterOutcome.overLimit`); what is restored or mirrored is never refused.
    public var maxInstances: Int
    public var maxServices: Int

    public init(heartbeatTimeout: Duration, minimumTTL: Duration = .seconds(1), maximumTTL: Duration = .seconds(3600),
                expiryProtection: Double? = nil, journaling: Bool = false, mirrored: Bool = false,
                expiryGrace: Duration = .zero, maxInstances: Int = .max, maxServices: Int = .max) {
        self.maxInstances = maxInstances
        self.maxServices = maxServices
        self.heartbeatTimeout = heartbeatTimeout
        self.minimumTTL = minimumTTL
        self.maximumTTL = maximumTTL
        self.expiryProtection = expiryProtection
        self.journaling = journaling
        self.mirrored = mirrored
        self.expiryGrace = expiryGrace
    }
}
