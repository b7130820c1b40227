/// A check the registry runs against an instance (HTTP, TCP), or one the instance reports
/// itself (TTL, Consul's kind), with its current verdict.
///
/// The definition and `status` are the instance's visible, durable state: a new status is a
/// change like any other (it moves the index, is journaled, in a cluster is committed). What a
/// run produced besides (its output, its time, its latency) is soft state the server's checker
/// keeps and reads on demand, so that frequent checks move nothing.
public struct HealthCheck: Hashable, Sendable {
    public enum Probe: Hashable, Sendable {
        /// Passing on 2xx, warning on 429, critical otherwise (Consul's rule).
        case http(HTTPProbe)
        /// Passing when a TCP connection to `host:port` opens.
        case tcp(host: String, port: Int)
        /// Set by the instance (Consul's `check/pass|warn|fail|update`); critical once no
        /// report came for this long.
        case ttl(Duration)
    }

    public struct HTTPProbe: Hashable, Sendable {
        public var url: String
        public var method: String
        /// Sent in this order, after the checker's own `Host` and `User-Agent`.
        public var headers: [MetadataEntry]
        /// An `https` URL's certificate is not verified (Consul's `TLSSkipVerify`).
        public var tlsSkipVerify: Bool

        public init(url: String, method: String = "GET", headers: [MetadataEntry] = [], tlsSkipVerify: Bool = false) {
            self.url = url
            self.method = method
            self.headers = headers
            self.tlsSkipVerify = tlsSkipVerify
        }

        /// The URL's parts, once the core's rule accepted it.
        public var target: CheckURL? { CheckURL(url) }
    }

    /// Unique among the instance's checks.
    public var id: String
    public var name: String
    public var probe: Probe
    /// Between two runs of an HTTP or TCP check (zero for a TTL check).
    public var interval: Duration
    /// How long one run may take before it counts as critical.
    public var timeout: Duration
    /// Critical for longer than this removes the instance; nil: never.
    public var deregisterAfter: Duration?
    public var status: CheckStatus

    public static let defaultTimeout = Duration.seconds(10)

    public init(id: String, name: String? = nil, probe: Probe, interval: Duration = .zero, timeout: Duration = defaultTimeout,
                deregisterAfter: Duration? = nil, status: CheckStatus = .critical) {
        self.id = id
        self.name = name ?? id
        self.probe = probe
        self.interval = interval
        self.timeout = timeout
        self.deregisterAfter = deregisterAfter
        self.status = status
    }

    /// Whether two checks are the same check apart from their verdict: a registration that
    /// repeats a check keeps its status (the seed's clients re-register as a heartbeat, and
    /// resetting a passing check to its initial status each time would flap the instance).
    public func hasSameDefinition(as other: HealthCheck) -> Bool {
        id == other.id && name == other.name && probe == other.probe && interval == other.interval
            && timeout == other.timeout && deregisterAfter == other.deregisterAfter
    }

    /// The checker runs it (it is not reported by the instance).
    public var isActive: Bool {
        if case .ttl = probe { return false }
        return true
    }

    /// `host:port`, an IPv6 host in brackets: how a TCP check's target is written.
    public static func hostPort(host: String, port: Int) -> String {
        (host.contains(":") ? "[" + host + "]" : host) + ":" + String(port)
    }

    /// What a TTL check's time is, or nil for an active one.
    public var ttl: Duration? {
        if case .ttl(let ttl) = probe { return ttl }
        return nil
    }
}
