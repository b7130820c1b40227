import Access
import HTTPParsing
import JSON
import Registry
import RegistryWire

/// The catalog's and health's reads (`/v1/catalog/…`, `/v1/health/…`) and `/v1/status/…`.
/// A service's reads block on its own change index, the listings on the registry's.
extension ConsulAPI {
    enum ServiceRead {
        /// `/v1/catalog/service/{name}`: every instance, flat (`ServiceAddress`, …).
        case catalog
        /// `/v1/health/service/{name}`: node, service and checks per instance.
        case health
        /// `/v1/health/checks/{name}`: the instances' checks.
        case checks
    }

    func serviceRead(_ request: RouteRequest, _ kind: ServiceRead) -> Handling {
        let parsed: ConsulQuery, name: String
        switch inputs(request, parameter: "service name") {
        case .success(let value): (parsed, name) = value
        case .failure(let refusal): return .respond(refusal.response)
        }
        guard request.caller.grant.mayRead(name) else {
            return .respond(restyled(AccessControl.denial(request.caller, needs: "read on service \(Violation.quoted(name))")))
        }
        // An unknown service (or one the registry could not hold) lists nothing, as in Consul:
        // its index is the registry's until it appears, which it only can at a higher one.
        let index: (Instant) -> UInt64 = { [unowned self] now in service.serviceChangeIndex(name, now: now) ?? service.changeIndex }
        let nodeMatches = parsed.nodeMeta.allSatisfy { $0.key == "consul-network-segment" && $0.value.isEmpty }
        let key = RenderingKey(service: name, kind: kind, passing: parsed.passing, tags: Array(Set(parsed.tags)).sorted(), nodeMatches: nodeMatches)
        return answer(parsed, service: name, now: request.now, index: index) { [unowned self] now, _ in
            let current = index(now)
            let generation = checker?.generation(ofService: name) ?? 0
            if let cached = renderings[key], cached.index == current, cached.generation == generation {
                return self.json(cached.body, index: current, now: now)
            }
            let body = render(kind, name: name, parsed: parsed, nodeMatches: nodeMatches, index: current, now: now)
            keep(body, as: key, index: current, generation: generation)
            return self.json(body, index: current, now: now)
        }
    }

    /// What a service read's answer depends on besides the service's index and its checks' results.
    struct RenderingKey: Hashable {
        let service: String
        let kind: ServiceRead
        let passing: Bool
        let tags: [String]
        let nodeMatches: Bool
    }

    /// Renderings kept at once, and their bytes; past either they are all dropped (they are
    /// made again as asked).
    static let maxRenderings = 4096
    static let maxRenderingBytes = 64 << 20

    func keep(_ body: [UInt8], as key: RenderingKey, index: UInt64, generation: UInt64) {
        if renderings.count >= Self.maxRenderings || renderingBytes + body.count > Self.maxRenderingBytes {
            renderings.removeAll(keepingCapacity: true)
            renderingBytes = 0
        }
        renderingBytes += body.count - (renderings[key]?.body.count ?? 0)
        renderings[key] = (index, generation, body)
    }

    private func render(_ kind: ServiceRead, name: String, parsed: ConsulQuery, nodeMatches: Bool, index current: UInt64,
                        now: Instant) -> [UInt8] {
        var instances = nodeMatches ? service.read { $0.instances(ofService: name, now: now) } : []
        if !parsed.tags.isEmpty { instances = instances.filter { instance in parsed.tags.allSatisfy(instance.tags.contains) } }
        var json = JSONWriter(capacity: 512 * max(1, instances.count))
        json.raw("[")
        var first = true
        for instance in instances {
            let checks = consulChecks(of: instance, service: name)
            if kind == .health, parsed.passing, checks.contains(where: { $0.status != .passing }) { continue }
            switch kind {
            case .catalog:
                if !first { json.raw(",") }
                first = false
                writeCatalogEntry(instance, service: name, index: current, to: &json)
            case .health:
                if !first { json.raw(",") }
                first = false
                json.raw("{\"Node\":")
                writeNode(index: current, to: &json)
                json.raw(",\"Service\":")
                writeAgentService(instance, service: name, index: current, to: &json)
                json.raw(",\"Checks\":[")
                writeCheck(Self.serfHealth, instance: nil, service: "", index: 1, to: &json)
                for check in checks {
                    json.raw(",")
                    writeCheck(check, instance: instance, service: name, index: current, to: &json)
                }
                json.raw("]}")
            case .checks:
                for check in checks {
                    if !first { json.raw(",") }
                    first = false
                    writeCheck(check, instance: instance, service: name, index: current, to: &json)
                }
            }
        }
        json.raw("]")
        return json.bytes
    }

    /// The node's own check, which Consul lists with every service entry of the node.
    static let serfHealth = ConsulCheck(id: "serfHealth", name: "Serf Health Status", status: .passing, notes: "",
                                        output: "Agent alive and reachable", type: "", definition: nil)

    func catalogServices(_ request: RouteRequest) -> Handling {
        let parsed: ConsulQuery
        switch query(request) {
        case .success(let value): parsed = value
        case .failure(let refusal): return .respond(refusal.response)
        }
        let grant = request.caller.grant
        let nodeMatches = parsed.nodeMeta.allSatisfy { $0.key == "consul-network-segment" && $0.value.isEmpty }
        let key = RenderingKey(service: "*catalog", kind: .catalog, passing: false, tags: [grant.summary], nodeMatches: nodeMatches)
        return answer(parsed, service: nil, now: request.now, index: { [unowned self] _ in service.changeIndex }) { [unowned self] now, _ in
            let index = service.changeIndex
            if let cached = renderings[key], cached.index == index { return self.json(cached.body, index: index, now: now) }
            var json = JSONWriter(capacity: 4096)
            json.raw("{")
            if nodeMatches {
                var first = true
                service.read { registry in
                    for name in registry.serviceNames.sorted() where grant.mayRead(name) {
                        let instances = registry.instances(ofService: name, now: now)
                        guard !instances.isEmpty else { continue }
                        var tags: [String] = []
                        var seen = Set<String>()
                        for instance in instances { for tag in instance.tags where seen.insert(tag).inserted { tags.append(tag) } }
                        if !first { json.raw(",") }
                        first = false
                        json.string(name)
                        json.raw(":")
                        json.strings(tags.sorted())
                    }
                }
            }
            json.raw("}")
            keep(json.bytes, as: key, index: index, generation: 0)
            return self.json(json.bytes, index: index, now: now)
        }
    }

    func catalogDatacenters(_ request: RouteRequest) -> Handling {
        var json = JSONWriter()
        json.raw("[")
        json.string(settings.datacenter)
        json.raw("]")
        return .respond(self.json(json.bytes, index: service.changeIndex, now: request.now))
    }

    func catalogNodes(_ request: RouteRequest) -> Handling {
        if case .failure(let refusal) = query(request) { return .respond(refusal.response) }
        var json = JSONWriter(capacity: 512)
        json.raw("[")
        writeNode(index: 1, to: &json)
        json.raw("]")
        return .respond(self.json(json.bytes, index: service.changeIndex, now: request.now))
    }

    /// The Raft leader's address in Consul; here the replica that leads (in a cluster, from
    /// its advertised URL), or this registry.
    func statusLeader(_ request: RouteRequest) -> Handling {
        var json = JSONWriter()
        if let cluster {
            if let leader = cluster.leadership.leader { json.string(Self.hostPort(ofURL: leader.url)) } else { json.raw("\"\"") }
        } else {
            json.string(settings.advertised)
        }
        return .respond(self.json(json.bytes, index: service.changeIndex, now: request.now))
    }

    func statusPeers(_ request: RouteRequest) -> Handling {
        var peers: [String] = []
        if let cluster {
            for name in cluster.leadership.replicas.keys.sorted() {
                if let presence = cluster.leadership.replicas[name] { peers.append(Self.hostPort(ofURL: presence.url)) }
            }
        } else {
            peers = [settings.advertised]
        }
        var json = JSONWriter()
        json.strings(peers)
        return .respond(self.json(json.bytes, index: service.changeIndex, now: request.now))
    }

    static func hostPort(ofURL url: String) -> String {
        InstanceEndpoint.parse(url)?.target ?? url
    }

    // MARK: Rendering

    func writeNode(index: UInt64, to json: inout JSONWriter) {
        writeNodeFields(to: &json)
        json.raw(",\"Meta\":{\"consul-network-segment\":\"\"},\"CreateIndex\":")
        json.integer(index)
        json.raw(",\"ModifyIndex\":")
        json.integer(index)
        json.raw("}")
    }

    /// `{"ID":…,"Node":…,"Address":…,"Datacenter":…,"TaggedAddresses":…`: the node, as a
    /// `Node` object and a catalog entry begin.
    private func writeNodeFields(to json: inout JSONWriter) {
        json.raw("{\"ID\":")
        json.string(nodeID)
        json.raw(",\"Node\":")
        json.string(settings.nodeName)
        json.raw(",\"Address\":")
        json.string(settings.nodeAddress)
        json.raw(",\"Datacenter\":")
        json.string(settings.datacenter)
        json.raw(",\"TaggedAddresses\":{\"lan\":")
        json.string(settings.nodeAddress)
        json.raw(",\"wan\":")
        json.string(settings.nodeAddress)
        json.raw("}")
    }

    func writeCatalogEntry(_ instance: InstanceSnapshot, service name: String, index: UInt64, to json: inout JSONWriter) {
        let endpoint = Self.endpoint(of: instance.address)
        writeNodeFields(to: &json)
        json.raw(",\"NodeMeta\":{\"consul-network-segment\":\"\"},\"ServiceKind\":\"\",\"ServiceID\":")
        json.string(instance.id)
        json.raw(",\"ServiceName\":")
        json.string(name)
        json.raw(",\"ServiceTags\":")
        json.strings(instance.tags)
        json.raw(",\"ServiceAddress\":")
        json.string(endpoint.address)
        json.raw(",\"ServiceWeights\":{\"Passing\":")
        json.integer(instance.weight)
        json.raw(",\"Warning\":1},\"ServiceMeta\":{")
        json.members(instance.metadata)
        json.raw("},\"ServicePort\":")
        json.integer(endpoint.port)
        json.raw(",\"ServiceEnableTagOverride\":false,\"CreateIndex\":")
        json.integer(index)
        json.raw(",\"ModifyIndex\":")
        json.integer(index)
        json.raw("}")
    }
}
