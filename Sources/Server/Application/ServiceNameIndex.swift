import Registry

/// The registry's service names by their lower-cased form, for the front ends that match
/// names without regard to case (DNS labels, Eureka's upper-cased app names): each key gives
/// the names that lower-case to it. One, kept from the service's change notices, for both.
final class ServiceNameIndex {
    private var names: [String: [String]] = [:]

    init(service: RegistryService) {
        service.read { registry in for name in registry.serviceNames { note(name, present: true) } }
        service.onChange { [unowned self, unowned service] changed in
            let registry = service.snapshot
            for name in changed { note(name, present: registry.contains(service: name)) }
        }
    }

    /// The names that lower-case to `key` (which must be lower-case already), sorted; nil for none.
    func names(lowercased key: String) -> [String]? { names[key] }

    /// Every lower-cased key, sorted.
    var keys: [String] { names.keys.sorted() }

    private func note(_ name: String, present: Bool) {
        let key = name.lowercased()
        var list = names[key] ?? []
        list.removeAll { $0 == name }
        if present { list.append(name) }
        names[key] = list.isEmpty ? nil : list.sorted()
    }
}
