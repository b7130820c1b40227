#if canImport(Glibc)
import Glibc
#endif
import Etcd
import TLS
import RegistryClient
import Registry

/// Cluster mode's parts, wired to one replica's service: the store (mirror and writes),
/// the election and the heartbeat relay; and what `/cluster` and `/metrics` report.
final class Cluster {
    let client: EtcdClient
    let store: ClusterStore
    let leadership: Leadership
    let relay: HeartbeatRelay
    let prefix: String
    private let loop: EventLoop
    private let logger: Logger
    private var healthTimer: LoopTimer?

    /// The last answer of each member to `/v3/maintenance/status`, refreshed every 5 s.
    struct MemberHealth {
        var endpoint: EtcdEndpoint
        var status: MemberStatus?
        var error: String?
        var checkedAt: Instant?
    }
    private(set) var members: [MemberHealth]

    /// `port` is the one the others reach this replica on: the plain port, or with `secure`
    /// (`--port off`) the TLS port.
    init(config: Config, endpoints: [EtcdEndpoint], port: UInt16, secure: Bool = false, loop: EventLoop, logger: Logger) {
        let host = Self.hostName()
        // Listening on one address: that is how others reach it; on all of them, by host name.
        let listening = ["0.0.0.0", "::", "[::]"].contains(config.host) ? host : config.host
        let name = config.replicaName ?? "\(host):\(port)"
        let scheme = secure ? "https" : "http"
        let url = config.advertiseURL ?? (listening.contains(":") ? "\(scheme)://[\(listening)]:\(port)" : "\(scheme)://\(listening):\(port)")
        // Replicas start at different members (by their name), so that the members share the
        // work of encoding the watches' events: with every replica on the first member, that
        // member spent more CPU than the other two together under registrations.
        client = EtcdClient(endpoints: endpoints, base: loop.base, requestTimeout: config.etcdTimeout,
                            startingAt: Self.stableIndex(name, count: endpoints.count))
        prefix = config.etcdPrefix
        let offset = Clock.wallNow() - Clock.monotonicNow().nanoseconds
        store = ClusterStore(client: client, prefix: config.etcdPrefix, loop: loop, logger: logger, wallClockOffset: offset)
        leadership = Leadership(me: Leadership.Replica(name: name, url: url), client: client, keys: store.keys, ttl: config.leaseTTL,
                                loop: loop, logger: logger)
        relay = HeartbeatRelay(loop: loop, logger: logger)
        relay.dns = client.dns
        self.loop = loop
        self.logger = logger
        members = endpoints.map { MemberHealth(endpoint: $0) }
        client.onFailover = { [logger] from, to, why in
            logger.warn("etcd_failover", ["from": from.description, "to": to.description, "error": why.message])
        }
    }

    struct SecurityProblem: Error {
        let message: String
    }

    /// etcd's TLS (`--etcd-cacert`, `--etcd-cert`, `--etcd-key`) and authentication
    /// (`--etcd-user`, `--etcd-password-file`), set before anything is sent.
    func configureEtcdSecurity(_ config: Config) throws(SecurityProblem) {
        if config.etcdCACert != nil || config.etcdCert != nil {
            do {
                client.tls = try TLSClientContext(caFile: config.etcdCACert, certificate: config.etcdCert, key: config.etcdKey)
            } catch {
                throw SecurityProblem(message: "etcd TLS: \(error.message)")
            }
        }
        if let user = config.etcdUser, let file = config.etcdPasswordFile {
            switch TokenFile.read(file) {
            case .success(let password): client.credentials = (user, password)
            case .failure(let problem):
                throw SecurityProblem(message: "--etcd-password-file: \(problem.message) (the file holds the password)")
            }
        }
        if config.etcdCACert != nil, !client.endpoints.contains(where: \.secure) {
            logger.warn("etcd_cacert_unused", ["note": "--etcd-cacert is given but every --etcd member is http://; use https:// URLs for TLS"])
        }
        if client.credentials != nil, !client.endpoints.allSatisfy(\.secure) {
            logger.warn("etcd_password_in_clear", ["note": "etcd authentication over http:// sends the password and tokens unencrypted; "
                + "use https:// members"])
        }
    }

    /// Connects the parts to `service` and starts them: the first read, the watch, the lease.
    func start(service: RegistryService) {
        store.onLoad = { [unowned service] states, index, revision in service.loadCommitted(states, index: index, revision: revision) }
        store.onChanges = { [unowned service] changes in service.applyCommitted(changes) }
        store.onLeaderKey = { [unowned self] kv in leadership.leaderKeyChanged(kv) }
        store.onReplicaKey = { [unowned self] name, kv in leadership.replicaKeyChanged(name: name, kv) }
        store.leaderGuard = { [unowned self] in leadership.leaderGuard }
        leadership.onRoleChange = { [unowned self, unowned service] role in
            if role == .leader { relay.forget() }
            service.roleChanged(leading: role == .leader)
        }
        relay.leaderURL = { [unowned self] in
            guard leadership.role == .follower, let leader = leadership.leader, leader != leadership.me else { return nil }
            return leader.url
        }
        leadership.progress = { [unowned self, unowned service] in (store.appliedRevision, service.changeIndex) }
        service.attach(cluster: self)
        store.start()
        leadership.start()
        relay.start()
        healthTimer = loop.timer(persistent: true) { [unowned self] in checkMembers() }
        healthTimer?.schedule(after: .seconds(5))
        checkMembers()
    }

    var isLeader: Bool { leadership.role == .leader }

    /// `X-Registry-Last-Contact` and `X-Registry-Known-Leader`, made at most once per
    /// millisecond and shared by reference: every read carries them, and the simplest read
    /// costs a few microseconds (two headers built per request cost 12 % of discover).
    func readHeaders(now: Instant) -> ReplicaHeaders {
        if let cached = cachedHeaders, now.nanoseconds - cached.madeAt < 1_000_000 { return cached }
        let contact = store.lastContactMilliseconds(now: now).map(String.init) ?? "-1"
        let made = ReplicaHeaders(madeAt: now.nanoseconds, lastContact: contact, knownLeader: leadership.knowsLeader)
        cachedHeaders = made
        return made
    }
    private var cachedHeaders: ReplicaHeaders?

    /// The newest revision any member reported in its last status.
    var newestKnownRevision: Int64 { members.compactMap { $0.status?.header.revision }.max() ?? 0 }

    private func checkMembers() {
        for index in members.indices {
            client.status(of: index) { [weak self] result in
                guard let self else { return }
                members[index].checkedAt = Clock.monotonicNow()
                switch result {
                case .success(let status):
                    members[index].status = status
                    members[index].error = status.errors.isEmpty ? nil : status.errors.joined(separator: "; ")
                case .failure(let error):
                    members[index].status = nil
                    members[index].error = error.message
                }
            }
        }
    }

    /// Stopping: give up the lease (another replica leads at once) and close the watch.
    func resign() {
        leadership.resign()
    }

    func stop() {
        store.stop()
    }

    /// The member a replica starts with, the same at every start: the number its name ends
    /// with (StatefulSet pods and `scripts/cluster.sh` number their replicas), or else a
    /// hash of the name (FNV-1a), modulo `count`.
    static func stableIndex(_ name: String, count: Int) -> Int {
        let digits = name.reversed().prefix { $0.isASCII && $0.isNumber }
        if !digits.isEmpty, let number = Int(String(digits.reversed().suffix(9))) { return number % max(1, count) }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in name.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return Int(hash % UInt64(max(1, count)))
    }

    static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count) == 0 else { return "localhost" }
        let name = String(cString: buffer)
        return name.isEmpty ? "localhost" : name
    }
}

/// The two headers a replica's reads carry, rendered once (`Cluster.readHeaders`).
final class ReplicaHeaders {
    let madeAt: Int64
    /// Milliseconds since etcd's quorum last answered, as a C string.
    let lastContact: ContiguousArray<CChar>
    let knownLeader: Bool

    init(madeAt: Int64, lastContact: String, knownLeader: Bool) {
        self.madeAt = madeAt
        self.lastContact = ContiguousArray(lastContact.utf8CString)
        self.knownLeader = knownLeader
    }
}
