import Access
import HTTPParsing
import JSON
import Registry
import RegistryWire

/// Prometheus HTTP service discovery (`http_sd_configs`): `GET /v1/prometheus/targets` lists
/// the UP instances whose address has a host and a port (`InstanceEndpoint`), one target
/// group each, with the instance's fields as `__meta_registry_*` labels for relabelling.
/// Filtered by `service` and `tag` (both repeatable: any of the services, all of the tags)
/// and by what the caller may read. Prometheus refuses a whole answer that holds one label
/// name outside `[a-zA-Z0-9_]`, so tag and metadata names are reduced to that.
final class PrometheusTargets {
    private let service: RegistryService

    init(service: RegistryService) {
        self.service = service
    }

    func routes() -> [Route] {
        [Route(template: "/v1/prometheus/targets", methods: [.get, .head], frontEnd: .prometheus, permission: .read) { [self] in
            targets($0)
        }]
    }

    struct Query {
        var services: [String] = []
        var tags: [String] = []
    }

    private func targets(_ request: RouteRequest) -> Handling {
        let query: Query
        switch Self.parse(request.query) {
        case .success(let parsed): query = parsed
        case .failure(let problem): return .respond(.error(400, problem.message))
        }
        let grant = request.caller.grant
        var json = JSONWriter(capacity: 4096)
        json.raw("[")
        var first = true
        let index = service.changeIndex
        service.read { registry in
            let names = query.services.isEmpty ? registry.serviceNames.sorted() : query.services
            for name in names where grant.mayRead(name) {
                for instance in registry.instances(ofService: name, now: request.now) where instance.status == .up && !instance.attributes.hasCriticalCheck {
                    guard query.tags.allSatisfy(instance.tags.contains), let endpoint = InstanceEndpoint.parse(instance.address) else { continue }
                    if !first { json.raw(",") }
                    first = false
                    Self.write(instance, endpoint: endpoint, service: name, to: &json)
                }
            }
        }
        json.raw("]")
        return .respond(Response(status: 200, body: json.bytes, index: index))
    }

    private static func write(_ instance: InstanceSnapshot, endpoint: InstanceEndpoint, service: String, to json: inout JSONWriter) {
        json.raw("{\"targets\":[")
        json.string(endpoint.target)
        json.raw("],\"labels\":{")
        func label(_ name: String, _ value: String, comma: Bool = true) {
            if comma { json.raw(",") }
            json.string(name)
            json.raw(":")
            json.string(value)
        }
        label("__meta_registry_service", service, comma: false)
        label("__meta_registry_instance_id", instance.id)
        label("__meta_registry_address", instance.address)
        if let scheme = endpoint.scheme { label("__meta_registry_scheme", scheme) }
        if let zone = instance.zone { label("__meta_registry_zone", zone) }
        label("__meta_registry_weight", String(instance.weight))
        // As Consul's SD does: the tags between commas, for a relabel regex such as `.*,canary,.*`.
        label("__meta_registry_tags", instance.tags.isEmpty ? "" : "," + instance.tags.joined(separator: ",") + ",")
        for tag in instance.tags { label("__meta_registry_tag_" + labelName(tag), "true") }
        for entry in instance.metadata { label("__meta_registry_metadata_" + labelName(entry.key), entry.value) }
        json.raw("}}")
    }

    /// `name` with every byte outside `[a-zA-Z0-9_]` made `_`, as Prometheus requires.
    static func labelName(_ name: String) -> String {
        String(decoding: name.utf8.map { byte -> UInt8 in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): return byte
            default: return UInt8(ascii: "_")
            }
        }, as: UTF8.self)
    }

    struct Problem: Error {
        let message: String
    }

    static func parse(_ raw: UnsafeBufferPointer<UInt8>?) -> Result<Query, Problem> {
        var query = Query()
        do throws(WireProblem) {
            try QueryPairs.each(raw) { name, value throws(WireProblem) in
                switch name {
                case "service":
                    if let violation = Violation.checkServiceName(value) { throw WireProblem(message: "query parameter 'service': " + violation.message) }
                    if !query.services.contains(value) { query.services.append(value) }
                case "tag":
                    if let violation = Violation.checkTags([value]) { throw WireProblem(message: "query parameter 'tag': " + violation.message) }
                    query.tags.append(value)
                case "_":
                    break
                default:
                    throw WireProblem(message: "unknown query parameter '\(Violation.shown(name))'; this endpoint takes service, tag")
                }
            }
        } catch {
            return .failure(Problem(message: error.message))
        }
        return .success(query)
    }
}
