import Access
import Registry
import RegistryWire

/// What `GET /eureka/apps/delta` lists: the instances added, modified or deleted in the last
/// three minutes (Eureka's retention), each as it was then, with its `actionType`. Follows the
/// service's change notices from the first delta asked for (a registry no Eureka client reads
/// pays nothing), re-reading only instances whose version moved; until then the delta is empty
/// and the client, whose hash of its copy then differs from `apps__hashcode`, fetches everything.
final class EurekaChanges {
    struct Change {
        let at: Int64
        let service: String
        let snapshot: InstanceSnapshot
        let action: String
    }

    static let retentionNanoseconds: Int64 = 180_000_000_000

    private let service: RegistryService
    private var following = false
    private var known: [String: [Int32: (version: UInt64, snapshot: InstanceSnapshot)]] = [:]
    private var log: [Change] = []
    /// Moves with every change recorded: the delta's `versions__delta`.
    private(set) var version: UInt64 = 1

    init(service: RegistryService) {
        self.service = service
        service.onChange { [unowned self] changed in
            guard following else { return }
            let now = Clock.monotonicNow()
            for name in changed { sync(name, now: now, record: true) }
        }
    }

    func recent(now: Instant, grant: Grant, overrides: [ConsulNames.Owner: String], wallOffset: Int64)
        -> (apps: [(name: String, instances: [EurekaInstance])], version: UInt64) {
        if !following {
            following = true
            for name in service.snapshot.serviceNames { sync(name, now: now, record: false) }
        }
        let cutoff = now.nanoseconds - Self.retentionNanoseconds
        if let first = log.firstIndex(where: { $0.at >= cutoff }) { log.removeFirst(first) } else { log.removeAll() }
        // An instance changed twice is listed once, as it was last (Eureka keeps instances by id).
        var last: [ConsulNames.Owner: Int] = [:]
        for (position, change) in log.enumerated() { last[ConsulNames.Owner(service: change.service, id: change.snapshot.id)] = position }
        var byApp: [String: [EurekaInstance]] = [:]
        for (position, change) in log.enumerated() where grant.mayRead(change.service) {
            let owner = ConsulNames.Owner(service: change.service, id: change.snapshot.id)
            guard last[owner] == position else { continue }
            byApp[change.service.uppercased(), default: []].append(EurekaView.instance(change.snapshot, service: change.service,
                override: overrides[owner], wallOffset: wallOffset, action: change.action))
        }
        return (byApp.keys.sorted().map { ($0, byApp[$0]!) }, version)
    }

    private func sync(_ name: String, now: Instant, record: Bool) {
        var previous = known[name] ?? [:]
        var next: [Int32: (version: UInt64, snapshot: InstanceSnapshot)] = [:]
        var seen = Set<String>()
        service.read { registry in
            for (slot, version) in registry.instanceVersions(ofService: name, now: now) {
                let old = previous.removeValue(forKey: slot)
                if let old, old.version == version {
                    next[slot] = old
                    seen.insert(old.snapshot.id)
                    continue
                }
                let snapshot = registry.instance(inSlot: slot)
                seen.insert(snapshot.id)
                if let old, old.snapshot.id != snapshot.id { previous[-1 - slot] = old }
                next[slot] = (version, snapshot)
                if record { note(name, snapshot, old?.snapshot.id == snapshot.id ? "MODIFIED" : "ADDED", now: now) }
            }
        }
        for old in previous.values where !seen.contains(old.snapshot.id) && record { note(name, old.snapshot, "DELETED", now: now) }
        known[name] = next.isEmpty ? nil : next
    }

    /// Changes kept at most, whatever their age (a churn of registrations must not grow it
    /// without bound; a client that misses some sees its hash differ and fetches everything).
    static let maxChanges = 200_000

    private func note(_ service: String, _ snapshot: InstanceSnapshot, _ action: String, now: Instant) {
        if log.count >= Self.maxChanges { log.removeFirst(log.count / 2) }
        log.append(Change(at: now.nanoseconds, service: service, snapshot: snapshot, action: action))
        version &+= 1
    }
}
