import JSON
import Registry
import RegistryClient
import TLS

/// Heartbeats never go to etcd. Every replica answers the heartbeats it receives from its
/// own mirror, and a follower tells the leader, about once a second, which instances
/// heartbeated and how long ago (`POST /cluster/heartbeats` on the leader, one request for
/// all of them, over one kept-alive connection); the leader renews their deadlines with
/// those times. So expiry, which only the leader decides, sees every replica's heartbeats
/// about a second late at most, and a follower adds no round trip to a heartbeat.
final class HeartbeatRelay {
    private let loop: EventLoop
    private let logger: Logger
    /// The resolver for the leader's host name (never a blocking lookup on the loop).
    var dns: OpaquePointer?
    private var seen: [String: (service: String, id: String, at: Instant)] = [:]
    private var connection: RegistryConnection?
    private var connectedTo: String?
    private var inFlight = 0
    private var timer: LoopTimer?
    private var failureLog = LogThrottle(interval: .seconds(10))
    /// The leader's URL when another replica leads; nil when this one does or none is known.
    var leaderURL: (() -> String?)?
    private(set) var reportsSent: UInt64 = 0
    private(set) var reportFailures: UInt64 = 0

    init(loop: EventLoop, logger: Logger) {
        self.loop = loop
        self.logger = logger
    }

    func start() {
        timer = loop.timer(persistent: true) { [unowned self] in report() }
        timer?.schedule(after: .seconds(1))
    }

    /// A heartbeat this replica took; reported unless this replica leads.
    func note(service: String, id: String, now: Instant) {
        seen[service + "/" + id] = (service, id, now)
    }

    /// This replica leads: what it takes it renews itself.
    func forget() { seen.removeAll() }

    var pending: Int { seen.count }

    /// `--replica-token-file`: what the leader's ACL file must grant `operator` to.
    var token: String?
    /// For a leader that advertises https://: `--replica-cacert`, and this replica's certificate.
    var tls: TLSClientContext?

    private func report() {
        guard inFlight == 0, !seen.isEmpty, let url = leaderURL?() else { return }
        if connectedTo != url {
            guard let parsed = try? RegistryURL(parsing: url) else {
                if failureLog.admit(now: Clock.monotonicNow()) != nil {
                    logger.warn("leader_url_invalid", ["url": url, "note": "the leader advertises a URL this replica cannot use; fix its --advertise-url"])
                }
                return
            }
            connection = RegistryConnection(url: parsed, base: loop.base, dns: dns, timeout: .seconds(2))
            connection?.token = token
            connection?.tls = tls
            connectedTo = url
        }
        let now = Clock.monotonicNow()
        let batch = seen
        seen.removeAll(keepingCapacity: true)
        // In requests of at most about 48 KB each, well under the leader's --max-body-bytes
        // (64 KiB by default; the smallest it may be set to is the replicas' own business).
        var json = JSONWriter(capacity: Self.requestBytes + 512)
        var part: [String: (service: String, id: String, at: Instant)] = [:]
        func send() {
            json.raw("]}")
            let body = json.bytes
            let sent = part
            json = JSONWriter(capacity: Self.requestBytes + 512)
            part.removeAll()
            inFlight += 1
            connection?.send(.post, "/cluster/heartbeats", body: body) { [unowned self] result in
                inFlight -= 1
                switch result {
                case .success(let reply) where reply.status == 200:
                    reportsSent += 1
                case .success(let reply):
                    reportFailed(sent, "the leader answered \(reply.status)\(reply.message.map { ": \($0)" } ?? "")")
                case .failure(let failure):
                    reportFailed(sent, failure.message)
                }
            }
        }
        for (key, entry) in batch {
            json.raw(part.isEmpty ? "{\"heartbeats\":[" : ",")
            json.raw("{\"service\":")
            json.string(entry.service)
            json.raw(",\"id\":")
            json.string(entry.id)
            json.raw(",\"age_ms\":")
            json.integer(max(0, now.duration(since: entry.at).wholeNanoseconds / 1_000_000))
            json.raw("}")
            part[key] = entry
            if json.bytes.count >= Self.requestBytes { send() }
        }
        if !part.isEmpty { send() }
    }

    /// A report request's size, at most (plus one entry).
    static let requestBytes = 48_000

    /// Kept for the next report, unless newer ones came meanwhile.
    private func reportFailed(_ batch: [String: (service: String, id: String, at: Instant)], _ why: String) {
        reportFailures += 1
        for (key, entry) in batch where seen[key] == nil { seen[key] = entry }
        if let suppressed = failureLog.admit(now: Clock.monotonicNow()) {
            logger.warn("heartbeat_report_failed", ["leader": connectedTo ?? "?", "error": why, "instances": batch.count,
                                                    "reports_not_logged": suppressed])
        }
    }
}
