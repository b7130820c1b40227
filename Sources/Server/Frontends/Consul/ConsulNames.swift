import Registry

/// Consul names a service instance and a check globally (`deregister/{id}`,
/// `check/pass/{check_id}`); the registry names an instance within its service. This is the
/// index between the two: which services hold an instance id, and which instances hold a
/// check id. An id held twice (two native services with an instance `api-1`) is ambiguous,
/// and the Consul API answers it as it answers an unknown one.
///
/// Built on first use (a registry that serves no Consul client pays nothing) and then kept
/// from the service's change notices, re-reading only instances whose version moved, as the
/// health checker does.
final class ConsulNames {
    struct Owner: Hashable {
        let service: String
        let id: String
    }

    private let service: RegistryService
    private var built = false
    private var servicesByInstance: [String: Set<String>] = [:]
    private var ownersByCheck: [String: Set<Owner>] = [:]
    /// Per service: each instance slot's version, id and check ids as last read.
    private var known: [String: [Int32: (version: UInt64, id: String, checks: [String])]] = [:]

    init(service: RegistryService) {
        self.service = service
        service.onChange { [unowned self] changed in
            guard built else { return }
            for name in changed { sync(name) }
        }
    }

    /// The one service holding instance `id`, or nil (none, or several).
    func service(ofInstance id: String) -> String? {
        buildIfNeeded()
        guard let services = servicesByInstance[id], services.count == 1 else { return nil }
        return services.first
    }

    /// Every service holding instance `id`.
    func services(ofInstance id: String) -> Set<String> {
        buildIfNeeded()
        return servicesByInstance[id] ?? []
    }

    /// The one instance holding check `id`, or nil (none, or several).
    func owner(ofCheck id: String) -> Owner? {
        buildIfNeeded()
        guard let owners = ownersByCheck[id], owners.count == 1 else { return nil }
        return owners.first
    }

    private func buildIfNeeded() {
        guard !built else { return }
        built = true
        for name in service.snapshot.serviceNames { sync(name) }
    }

    private func sync(_ name: String) {
        let now = Clock.monotonicNow()
        var previous = known[name] ?? [:]
        var next: [Int32: (version: UInt64, id: String, checks: [String])] = [:]
        service.read { registry in
            for (slot, version) in registry.instanceVersions(ofService: name, now: now) {
                let old = previous.removeValue(forKey: slot)
                if let old, old.version == version {
                    next[slot] = old
                    continue
                }
                if let old { forget(old.id, checks: old.checks, in: name) }
                let instance = registry.instance(inSlot: slot)
                let checks = instance.checks.map(\.id)
                servicesByInstance[instance.id, default: []].insert(name)
                for check in checks { ownersByCheck[check, default: []].insert(Owner(service: name, id: instance.id)) }
                next[slot] = (version, instance.id, checks)
            }
        }
        for old in previous.values { forget(old.id, checks: old.checks, in: name) }
        // An id forgotten above because its slot changed may still be here in another slot.
        for entry in next.values {
            servicesByInstance[entry.id, default: []].insert(name)
            for check in entry.checks { ownersByCheck[check, default: []].insert(Owner(service: name, id: entry.id)) }
        }
        known[name] = next.isEmpty ? nil : next
    }

    private func forget(_ id: String, checks: [String], in name: String) {
        servicesByInstance[id]?.remove(name)
        if servicesByInstance[id]?.isEmpty == true { servicesByInstance[id] = nil }
        let owner = Owner(service: name, id: id)
        for check in checks {
            ownersByCheck[check]?.remove(owner)
            if ownersByCheck[check]?.isEmpty == true { ownersByCheck[check] = nil }
        }
    }
}
