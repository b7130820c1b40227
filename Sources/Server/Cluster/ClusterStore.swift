import Etcd
import Registry

/// One replica's link to etcd: the mirror (a whole read of the prefix, then one watch
/// stream from the revision after it) and the writes (proposals committed in transactions).
///
/// **Writes.** Every replica commits the writes it takes itself; nothing is forwarded. A
/// proposal is committed with a compare on its key's revision (the one the mirror judged it
/// against), so that two replicas changing one instance at once cannot both win: the loser
/// is told `.conflict` and judged again. The proposals of a loop turn go together into one
/// transaction (at most 127 of them, and the `last-change` marker); a few transactions may
/// be in flight at once, and what arrives meanwhile waits for the next. A writer is answered
/// only once its own replica's mirror has applied the transaction's revision, so a client
/// reads its own writes on the replica that took them.
///
/// **Expiries** are written only by the leader, with one more compare: the leader key is
/// still held by its lease. A replica that lost its lease (cut off from etcd, or replaced)
/// cannot expire anything, whatever it believes.
final class ClusterStore {
    /// A proposal on its way to etcd; its writer's waiter may be attached after it is queued.
    final class PendingWrite {
        let proposal: Proposal
        let key: [UInt8]
        let isExpiry: Bool
        var waiter: ((Result) -> Void)?

        init(proposal: Proposal, key: [UInt8], isExpiry: Bool) {
            self.proposal = proposal
            self.key = key
            self.isExpiry = isExpiry
        }
    }

    enum Result {
        case committed(revision: Int64)
        /// Another change to the instance was committed first: judge the write again.
        case conflict
        case failed(String)
    }

    struct Stats {
        var transactions: UInt64 = 0
        var operations: UInt64 = 0
        var conflicts: UInt64 = 0
        var failures: UInt64 = 0
        var reloads: UInt64 = 0
        var watchRestarts: UInt64 = 0
        /// Seconds, summed, of every etcd transaction, for the latency average.
        var transactionSeconds: Double = 0
    }

    let client: EtcdClient
    let keys: ClusterKeys
    private let loop: EventLoop
    private let logger: Logger
    /// Wall-clock minus monotonic nanoseconds, for the registration times kept in etcd.
    private let wallClockOffset: Int64

    /// The whole store was read: its instances, and the registry's change index.
    var onLoad: ((_ states: [(state: InstanceState, modRevision: UInt64)], _ index: UInt64, _ revision: UInt64) -> Void)?
    /// Committed changes, in revision order.
    var onChanges: (([(change: CommittedChange, revision: UInt64)]) -> Void)?
    /// The leader key as it is now (nil: nobody leads).
    var onLeaderKey: ((KeyValue?) -> Void)?
    /// A replica's presence key (nil: gone).
    var onReplicaKey: ((_ name: String, KeyValue?) -> Void)?
    /// The compare that makes an expiry the leader's: nil when this replica does not lead.
    var leaderGuard: (() -> Compare?)?

    /// The etcd revision the mirror has applied everything up to.
    private(set) var appliedRevision: Int64 = 0
    /// The first whole read is done; `/ready` waits for it.
    private(set) var isLoaded = false
    /// When etcd last answered anything (a watch message, a request).
    private(set) var lastContact: Instant?
    private(set) var stats = Stats()

    private var watch: EtcdWatch?
    private var loading = false
    private var queue: [PendingWrite] = []
    private var busyKeys = Set<[UInt8]>()
    private var transactionsInFlight = 0
    private static let maxTransactionsInFlight = 4
    private static let maxProposalsPerTransaction = 127
    /// Writers waiting for the mirror to reach a revision, and when to give up waiting.
    private var revisionWaiters: [(revision: Int64, deadline: Instant, run: () -> Void)] = []
    private var retryTimer: LoopTimer?
    private var tickTimer: LoopTimer?
    private var stopped = false
    /// The next wait before watching again; doubles while the watch keeps failing.
    private var watchBackoff: Duration = .milliseconds(100)
    private var watchLog = LogThrottle(interval: .seconds(10))

    init(client: EtcdClient, prefix: String, loop: EventLoop, logger: Logger, wallClockOffset: Int64) {
        self.client = client
        self.keys = ClusterKeys(prefix: prefix)
        self.loop = loop
        self.logger = logger
        self.wallClockOffset = wallClockOffset
        client.onAnswer = { [unowned self] _ in lastContact = Clock.monotonicNow() }
    }

    func start() {
        retryTimer = loop.timer { [unowned self] in resume() }
        tickTimer = loop.timer(persistent: true) { [unowned self] in tick() }
        tickTimer?.schedule(after: .milliseconds(500))
        load()
    }

    func stop() {
        stopped = true
        watch?.cancel()
        watch = nil
    }

    // MARK: The mirror

    /// Reads the whole prefix at one revision, in pages, then watches from the next one.
    private func load() {
        guard !loading, !stopped else { return }
        loading = true
        watch?.cancel()
        watch = nil
        var states: [(state: InstanceState, modRevision: UInt64)] = []
        var marker: Int64 = 0
        var leader: KeyValue?
        var replicas: [String: KeyValue] = [:]
        let everything = keys.everything
        func page(from start: [UInt8], revision: Int64) {
            client.range(start, rangeEnd: everything.end, revision: revision, limit: 5_000) { [unowned self] result in
                switch result {
                case .failure(let error):
                    loading = false
                    logger.warn("etcd_read_failed", ["error": error.message, "retry_in": "1s",
                                                     "note": "the registry reads the whole store before it serves (and after etcd compacted past its watch)"])
                    retryTimer?.schedule(after: .seconds(1))
                case .success(let response):
                    let at = revision > 0 ? revision : response.header.revision
                    for kv in response.kvs {
                        switch keys.classify(kv.key) {
                        case .instance(let service, let id):
                            if let state = decode(kv, service: service, id: id) { states.append((state, UInt64(kv.modRevision))) }
                        case .lastChange: marker = kv.modRevision
                        case .leader: leader = kv
                        case .replica(let name): replicas[name] = kv
                        case .other: break
                        }
                    }
                    if response.more, let last = response.kvs.last {
                        page(from: last.key + [0], revision: at)
                        return
                    }
                    loading = false
                    let first = !isLoaded
                    onLoad?(states, UInt64(max(marker, 1)), UInt64(at))
                    onLeaderKey?(leader)
                    for (name, kv) in replicas { onReplicaKey?(name, kv) }
                    appliedRevision = max(appliedRevision, at)
                    isLoaded = true
                    if !first { stats.reloads += 1 }
                    logger.info(first ? "etcd_loaded" : "etcd_reloaded", ["instances": states.count, "revision": at,
                                                                          "endpoint": client.preferredEndpoint.description])
                    releaseWaiters()
                    startWatch()
                }
            }
        }
        page(from: everything.key, revision: 0)
    }

    private func startWatch() {
        guard !stopped else { return }
        let everything = keys.everything
        watch = EtcdWatch(client: client, key: everything.key, rangeEnd: everything.end, startRevision: appliedRevision + 1,
                          onResponse: { [unowned self] response in received(response) },
                          onEnd: { [unowned self] error in watchEnded(error) })
    }

    private func received(_ response: WatchResponse) {
        // (Not "contact": a member cut off from its quorum may still send progress.)
        watchBackoff = .milliseconds(100)
        var changes: [(change: CommittedChange, revision: UInt64)] = []
        var newest = response.header.revision
        if !response.events.isEmpty { newest = response.events.map(\.kv.modRevision).max() ?? newest }
        for event in response.events {
            switch keys.classify(event.kv.key) {
            case .instance(let service, let id):
                if event.kind == .delete {
                    changes.append((.remove(service: service, id: id), UInt64(event.kv.modRevision)))
                } else if let state = decode(event.kv, service: service, id: id) {
                    changes.append((.put(state), UInt64(event.kv.modRevision)))
                }
            case .leader:
                if !changes.isEmpty {
                    onChanges?(changes)
                    changes.removeAll()
                }
                onLeaderKey?(event.kind == .delete ? nil : event.kv)
            case .replica(let name):
                onReplicaKey?(name, event.kind == .delete ? nil : event.kv)
            case .lastChange, .other:
                break
            }
        }
        if !changes.isEmpty { onChanges?(changes) }
        if response.created && response.events.isEmpty { return }
        appliedRevision = max(appliedRevision, newest)
        releaseWaiters()
    }

    private func watchEnded(_ error: EtcdError) {
        watch = nil
        guard !stopped else { return }
        stats.watchRestarts += 1
        if case .compacted = error.kind {
            logger.warn("etcd_watch_compacted", ["error": error.message, "note": "reading the whole store again, then watching from there"])
            load()
            return
        }
        if let suppressed = watchLog.admit(now: Clock.monotonicNow()) {
            logger.warn("etcd_watch_lost", ["error": error.message, "retry_in": watchBackoff.secondsText, "failures_not_logged": suppressed,
                                            "note": "watching again from revision \(appliedRevision + 1), on the next member; reads are served from memory meanwhile"])
        }
        client.preferNext(because: error)
        retryTimer?.schedule(after: watchBackoff)
        watchBackoff = min(watchBackoff * 2, .seconds(2))
    }

    private func resume() {
        if !isLoaded || loading {
            load()
        } else if watch == nil {
            startWatch()
        }
    }

    private func decode(_ kv: KeyValue, service: String, id: String) -> InstanceState? {
        do {
            return try InstanceCodec.decode(kv.value, service: service, id: id, wallClockOffset: wallClockOffset)
        } catch {
            logger.warn("etcd_value_skipped", ["key": kv.keyText, "error": error.message,
                                               "note": "the key does not hold an instance this registry wrote; delete or fix it with etcdctl"])
            return nil
        }
    }

    // MARK: Writes

    /// Whether a proposal for this instance is queued or in flight: a write to it must wait.
    func isBusy(service: String, id: String) -> Bool {
        !busyKeys.isEmpty && busyKeys.contains(keys.instance(service: service, id: id))
    }

    /// Queues a proposal; it is sent by `flush`, at the end of the turn.
    @discardableResult
    func submit(_ proposal: Proposal, isExpiry: Bool = false) -> PendingWrite {
        let write = PendingWrite(proposal: proposal, key: keys.instance(service: proposal.service, id: proposal.id), isExpiry: isExpiry)
        busyKeys.insert(write.key)
        queue.append(write)
        return write
    }

    /// Calls `body` once a write to this instance is no longer queued or in flight.
    func whenFree(service: String, id: String, _ body: @escaping () -> Void) {
        let key = keys.instance(service: service, id: id)
        freeWaiters[key, default: []].append(body)
    }
    private var freeWaiters: [[UInt8]: [() -> Void]] = [:]

    /// Sends what is queued, as transactions, as far as the in-flight limit allows.
    func flush() {
        while transactionsInFlight < Self.maxTransactionsInFlight, let first = queue.first {
            var batch: [PendingWrite] = []
            var index = 0
            while index < queue.count, batch.count < Self.maxProposalsPerTransaction, queue[index].isExpiry == first.isExpiry {
                batch.append(queue[index])
                index += 1
            }
            queue.removeFirst(index)
            send(batch)
        }
    }

    private func send(_ batch: [PendingWrite]) {
        var compare = batch.map { Compare.modRevision($0.key, equals: Int64($0.proposal.basedOn)) }
        if batch[0].isExpiry {
            guard let guardCompare = leaderGuard?() else {
                for write in batch { finish(write, .failed("this replica no longer leads")) }
                return
            }
            compare.append(guardCompare)
        }
        var operations: [Operation] = []
        operations.reserveCapacity(batch.count + 1)
        for write in batch {
            if let state = write.proposal.state {
                operations.append(.put(write.key, InstanceCodec.encode(state, wallClockOffset: wallClockOffset)))
            } else {
                operations.append(.delete(write.key))
            }
        }
        operations.append(.put(keys.lastChange, []))
        transactionsInFlight += 1
        let started = Clock.monotonicNow()
        client.txn(compare: compare, success: operations) { [unowned self] result in
            transactionsInFlight -= 1
            stats.transactions += 1
            stats.operations += UInt64(batch.count)
            stats.transactionSeconds += Double(Clock.monotonicNow().duration(since: started).wholeNanoseconds) / 1e9
            switch result {
            case .success(let response) where response.succeeded:
                afterApplying(response.header.revision) { [unowned self] in
                    for write in batch { finish(write, .committed(revision: response.header.revision)) }
                }
            case .success(let response):
                stats.conflicts += 1
                // Judged again once the mirror has what beat it.
                afterApplying(response.header.revision) { [unowned self] in
                    for write in batch { finish(write, .conflict) }
                }
            case .failure(let error):
                stats.failures += 1
                let message = error.kind == .timedOut
                    ? "etcd did not confirm the change in time (\(error.message)); it was not applied here, and appears on every replica if etcd commits it after all"
                    : "etcd could not take the change (\(error.message)); nothing was changed"
                for write in batch { finish(write, .failed(message)) }
            }
            flush()
        }
    }

    private func finish(_ write: PendingWrite, _ result: Result) {
        if !queue.contains(where: { $0.key == write.key }) { busyKeys.remove(write.key) }
        write.waiter?(result)
        if !busyKeys.contains(write.key), let waiting = freeWaiters.removeValue(forKey: write.key) {
            for body in waiting { body() }
        }
    }

    /// Runs `body` once the mirror has applied `revision` (or after 5 s: the change is in
    /// etcd, and the watch that should bring it is late).
    private func afterApplying(_ revision: Int64, _ body: @escaping () -> Void) {
        if appliedRevision >= revision {
            body()
            return
        }
        revisionWaiters.append((revision, Clock.monotonicNow() + .seconds(5), body))
    }

    private func releaseWaiters() {
        guard !revisionWaiters.isEmpty else { return }
        let due = revisionWaiters.filter { $0.revision <= appliedRevision }
        guard !due.isEmpty else { return }
        revisionWaiters.removeAll { $0.revision <= appliedRevision }
        for waiter in due { waiter.run() }
    }

    private func tick() {
        let now = Clock.monotonicNow()
        let late = revisionWaiters.filter { $0.deadline <= now }
        guard !late.isEmpty else { return }
        revisionWaiters.removeAll { $0.deadline <= now }
        logger.warn("etcd_watch_late", ["writes": late.count, "applied_revision": appliedRevision,
                                        "note": "committed changes were answered before the watch brought them back"])
        for waiter in late { waiter.run() }
    }

    /// Milliseconds since etcd last answered, nil if it never has.
    func lastContactMilliseconds(now: Instant) -> Int64? {
        lastContact.map { now.duration(since: $0).wholeNanoseconds / 1_000_000 }
    }

    var queuedWrites: Int { queue.count }
}
