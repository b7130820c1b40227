import Etcd
import JSON
import Registry

/// The leader election, on etcd: each replica holds a lease (`--lease-ttl`, renewed three
/// times per TTL) that also holds its presence key; the leader is the replica whose
/// transaction created the leader key (compare: create revision 0) with its lease.
///
/// **No split brain.** A leader steps down as soon as it cannot be sure its lease still
/// lives: when a renewal says the lease is gone, or when no renewal has been confirmed for
/// the TTL less half a second (the lease cannot have expired before TTL after the last
/// renewal was *sent*). And its expiries carry a compare on the leader key's lease, so etcd
/// refuses them from a replica that was replaced, whatever that replica believes.
final class Leadership {
    enum Role: String { case follower, leader }

    struct Replica: Equatable {
        var name: String
        var url: String
    }

    let me: Replica
    private let client: EtcdClient
    private let keys: ClusterKeys
    private let ttl: Int
    private let loop: EventLoop
    private let logger: Logger

    private(set) var role: Role = .follower
    /// Who leads, as this replica last heard (itself included).
    private(set) var leader: Replica?
    private(set) var leaderChanges: UInt64 = 0
    private(set) var lease: Int64 = 0
    /// When the last renewal that etcd confirmed was sent.
    private var confirmedAt: Instant?
    private var granting = false
    private var campaigning = false
    private var renewing = false
    private var resigned = false
    private var timer: LoopTimer?
    /// The replicas' presence (this one included), as each last wrote it.
    private(set) var replicas: [String: Presence] = [:]

    /// A replica's presence key: who it is, and how far its mirror was when it wrote it.
    struct Presence: Equatable {
        var url: String
        var appliedRevision: Int64
        var changeIndex: UInt64
    }

    /// This replica's mirror, for its presence key (rewritten every 5 s when it moved).
    var progress: (() -> (appliedRevision: Int64, changeIndex: UInt64))?
    private var announced: (appliedRevision: Int64, changeIndex: UInt64)?
    private var lastAnnounce: Instant?

    var onRoleChange: ((Role) -> Void)?

    init(me: Replica, client: EtcdClient, keys: ClusterKeys, ttl: Int, loop: EventLoop, logger: Logger) {
        self.me = me
        self.client = client
        self.keys = keys
        self.ttl = ttl
        self.loop = loop
        self.logger = logger
    }

    func start() {
        timer = loop.timer(persistent: true) { [unowned self] in tick() }
        timer?.schedule(after: .milliseconds(Int64(ttl) * 1000 / 3))
        grant()
    }

    /// A leader is known, and this replica heard from etcd's quorum within the lease TTL
    /// (a replica cut off from etcd cannot tell whether its last-known leader still leads).
    var knowsLeader: Bool {
        guard leader != nil, let confirmedAt else { return false }
        return Clock.monotonicNow().duration(since: confirmedAt) < .seconds(ttl)
    }

    /// The compare an expiry carries: nil unless this replica leads.
    var leaderGuard: Compare? {
        role == .leader && lease != 0 ? .lease(keys.leader, equals: lease) : nil
    }

    // MARK: The lease

    private func grant() {
        guard !granting, !resigned else { return }
        granting = true
        let sent = Clock.monotonicNow()
        client.grantLease(ttl: Int64(ttl)) { [unowned self] result in
            granting = false
            switch result {
            case .failure(let error):
                logger.warn("etcd_lease_failed", ["error": error.message, "note": "this replica cannot lead or be listed until etcd grants one; retrying"])
            case .success(let grant):
                lease = grant.id
                confirmedAt = sent
                announce()
                campaign()
            }
        }
    }

    /// The presence key: name, URL and the mirror's progress, held by the lease.
    private func announce() {
        let now = progress?() ?? (0, 0)
        announced = now
        lastAnnounce = Clock.monotonicNow()
        client.put(keys.replica(me.name), Self.encode(me, progress: now), lease: lease) { [weak self] result in
            if case .failure(let error) = result {
                self?.logger.warn("etcd_presence_failed", ["error": error.message])
            }
        }
    }

    private func tick() {
        guard !resigned else { return }
        let now = Clock.monotonicNow()
        if role == .leader, let confirmedAt, now.duration(since: confirmedAt) > .seconds(ttl) - .milliseconds(500) {
            stepDown(because: "no lease renewal confirmed by etcd for \(ttl) s less 0.5 s: the lease may be gone")
        }
        guard lease != 0 else {
            grant()
            return
        }
        if !renewing {
            renewing = true
            let lease = self.lease
            client.keepAlive(lease: lease) { [unowned self] result in
                renewing = false
                guard lease == self.lease else { return }
                switch result {
                case .success(let left) where left > 0:
                    confirmedAt = now
                case .success:
                    logger.warn("etcd_lease_lost", ["lease": lease, "note": "etcd let the lease expire; a new one is asked for"])
                    self.lease = 0
                    if role == .leader { stepDown(because: "the lease expired") }
                    grant()
                case .failure:
                    break
                }
            }
        }
        if leader == nil { campaign() }
        // Every 5 s, when the mirror moved: how far this replica is, for /cluster on the others.
        if let lastAnnounce, now.duration(since: lastAnnounce) >= .seconds(5), let progress,
           let announced, progress().changeIndex != announced.changeIndex {
            announce()
        }
    }

    // MARK: The election

    private func campaign() {
        guard !campaigning, !resigned, lease != 0, role == .follower else { return }
        campaigning = true
        let lease = self.lease
        client.txn(compare: [.createRevision(keys.leader, equals: 0)], success: [.put(key: keys.leader, value: Self.encode(me), lease: lease)],
                   failure: [.range(key: keys.leader, rangeEnd: nil)]) { [unowned self] result in
            campaigning = false
            switch result {
            case .failure:
                break
            case .success(let response) where response.succeeded:
                guard lease == self.lease else { return }
                becomeLeader()
            case .success(let response):
                if let kv = response.ranges.first?.first { leaderKeyChanged(kv) }
            }
        }
    }

    /// From the mirror's watch (and its loads): the leader key as it is now.
    func leaderKeyChanged(_ kv: KeyValue?) {
        guard let kv else {
            if role == .leader { stepDown(because: "the leader key was deleted") }
            if leader != nil { logger.info("leader_gone", ["note": "electing another"]) }
            leader = nil
            campaign()
            return
        }
        if kv.lease == lease && lease != 0 {
            if role != .leader { becomeLeader() }
            return
        }
        if role == .leader { stepDown(because: "another replica holds the leader key") }
        let heard = Self.decode(kv.value)
        if heard != leader {
            leader = heard
            leaderChanges += 1
            logger.info("leader", ["name": heard?.name ?? "?", "url": heard?.url ?? "?"])
        }
    }

    /// From the mirror: a replica's presence key.
    func replicaKeyChanged(name: String, _ kv: KeyValue?) {
        if let kv, let replica = Self.decode(kv.value) {
            let json = try? JSONParser.parse(kv.value)
            func number(_ member: String) -> Int64 {
                guard case .number(let value)? = json?[member: member] else { return 0 }
                return Int64(exactly: value) ?? 0
            }
            replicas[name] = Presence(url: replica.url, appliedRevision: number("applied_revision"),
                                      changeIndex: UInt64(max(0, number("change_index"))))
        } else {
            replicas[name] = nil
        }
    }

    private func becomeLeader() {
        guard role != .leader else { return }
        role = .leader
        if leader != me { leaderChanges += 1 }
        leader = me
        logger.info("leading", ["name": me.name, "lease": lease, "note": "every instance gets a full TTL from now"])
        onRoleChange?(.leader)
    }

    private func stepDown(because reason: String) {
        guard role == .leader else { return }
        role = .follower
        leader = nil
        logger.warn("stepped_down", ["reason": reason])
        onRoleChange?(.follower)
    }

    /// Stopping: the lease is revoked, which deletes the leader key (if held) and the
    /// presence key at once, so that another replica leads without waiting for the TTL.
    func resign() {
        guard !resigned else { return }
        let wasLeader = role == .leader
        stepDown(because: "stopping")
        resigned = true
        if lease != 0 {
            client.revoke(lease: lease) { [weak self] result in
                if case .failure(let error) = result { self?.logger.warn("etcd_revoke_failed", ["error": error.message]) }
            }
            if wasLeader { logger.info("resigned", ["note": "the leader key is released for another replica"]) }
        }
    }

    // MARK: The keys' values

    static func encode(_ replica: Replica, progress: (appliedRevision: Int64, changeIndex: UInt64)? = nil) -> [UInt8] {
        var json = JSONWriter()
        json.raw("{\"name\":")
        json.string(replica.name)
        json.raw(",\"url\":")
        json.string(replica.url)
        if let progress {
            json.raw(",\"applied_revision\":")
            json.integer(progress.appliedRevision)
            json.raw(",\"change_index\":")
            json.integer(progress.changeIndex)
        }
        json.raw("}")
        return json.bytes
    }

    static func decode(_ bytes: [UInt8]) -> Replica? {
        guard let json = try? JSONParser.parse(bytes), case .string(let name)? = json[member: "name"],
              case .string(let url)? = json[member: "url"] else { return nil }
        return Replica(name: name, url: url)
    }
}
