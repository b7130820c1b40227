#if canImport(Glibc)
import Glibc
#endif
import JSON
import Registry

/// `GET /discover/{service}`, `/services`, and their streams under `/watch`: the query is
/// checked, a blocking query whose index is current is parked (`WatchHub`), and answers are
/// made from the incremental renderings.
extension NativeAPI {
    func discover(_ request: RouteRequest, stream: Bool) -> Handling {
        let name: String
        if Self.isPlainServiceName(request.parameter) {
            // The common case: nothing to decode and nothing to check beyond the bytes.
            name = String(decoding: request.parameter, as: UTF8.self)
        } else {
            switch PercentDecoding.decode(request.parameter) {
            case .success(let decoded): name = decoded
            case .failure(let problem): return .respond(.error(400, problem.message))
            }
            if let violation = Violation.checkServiceName(name) {
                return .respond(.error(400, violation.message))
            }
        }
        let query: ReadQuery
        switch ReadQuery.parse(request.query, scope: .instances) {
        case .success(let parsed): query = parsed
        case .failure(let problem): return .respond(.error(400, problem.message))
        }
        if stream { return .stream(.service(name, query)) }
        if let index = query.index, index >= (service.serviceChangeIndex(name, now: request.now) ?? 0) {
            return .park(.service(name, query), wait: min(query.wait ?? ReadQuery.defaultWait, maximumWait))
        }
        return .respond(discover(name, query: query, now: request.now, wallClock: request.wallClock))
    }

    func services(_ request: RouteRequest, stream: Bool) -> Handling {
        let query: ReadQuery
        switch ReadQuery.parse(request.query, scope: .services) {
        case .success(let value): query = value
        case .failure(let problem): return .respond(.error(400, problem.message))
        }
        if stream { return .stream(.services) }
        if let index = query.index, index >= service.changeIndex {
            return .park(.services, wait: min(query.wait ?? ReadQuery.defaultWait, maximumWait))
        }
        return .respond(services(now: request.now))
    }

    /// True when the raw path segment is already a valid service name (1–253 ASCII letters,
    /// digits, '.', '_', '-'): no percent-encoding to undo and no rule to report.
    private static func isPlainServiceName(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard !bytes.isEmpty, bytes.count <= Violation.maxServiceNameLength else { return false }
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                 UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"):
                continue
            default:
                return false
            }
        }
        return true
    }

    /// The change index a read of `target` would carry now, without rendering it.
    func currentIndex(_ target: WatchTarget, now: Instant) -> UInt64 {
        switch target {
        case .service(let name, _): return service.serviceChangeIndex(name, now: now) ?? 0
        case .services: return service.changeIndex
        }
    }

    /// The current answer for a watch target: what a parked request gets when it wakes,
    /// and the data of each stream event.
    func read(_ target: WatchTarget, now: Instant, wallClock: Int64) -> Response {
        switch target {
        case .service(let name, let query): return discover(name, query: query, now: now, wallClock: wallClock)
        case .services: return services(now: now)
        }
    }

    private func discover(_ name: String, query: ReadQuery, now: Instant, wallClock: Int64) -> Response {
        guard let changeIndex = service.serviceChangeIndex(name, now: now) else {
            views[name] = nil
            var json = JSONWriter()
            json.raw("{\"service\":")
            json.string(name)
            json.raw(",\"instances\":[],\"message\":\"Service not found\"}")
            return Response(status: 404, body: json.bytes, index: 0)
        }
        let wallOffset = wallClock - now.nanoseconds
        let view: ServiceView
        if let known = views[name] {
            view = known
        } else {
            view = ServiceView(name: name)
            if views.count > 2 * service.serviceCount + 1024 {
                let registry = service.snapshot
                views = views.filter { registry.contains(service: $0.key) }
            }
            views[name] = view
        }
        service.read { registry in
            view.update(from: &registry, changeIndex: changeIndex, now: now, wallOffset: wallOffset)
            view.refresh(from: &registry, tick: now.nanoseconds / Self.tickNanoseconds, now: now, wallOffset: wallOffset)
        }
        if query.isDefaultListing {
            var response = Response(status: 200, body: view.plainParts.first ?? [], index: changeIndex)
            response.segments = Array(view.plainParts.dropFirst())
            return response
        }
        // Filter and pick first, then render only what is listed.
        var chosen = view.entries.indices.filter { matches(view.entries[$0].instance, query) }
        if let pick = query.pick { chosen = order(chosen, by: pick, entries: view.entries, service: name) }
        if let limit = query.limit, chosen.count > limit { chosen.removeLast(chosen.count - limit) }
        return Response(status: 200, body: view.listing(chosen), index: changeIndex)
    }

    private func matches(_ instance: InstanceSnapshot, _ query: ReadQuery) -> Bool {
        if case .only(let status) = query.status, instance.status != status { return false }
        if let zone = query.zone, instance.zone != zone { return false }
        for tag in query.tags where !instance.tags.contains(tag) { return false }
        for wanted in query.metadata where !instance.metadata.contains(where: { $0.key == wanted.key && $0.value == wanted.value }) {
            return false
        }
        return true
    }

    /// Orders the chosen instances for a pick: round-robin starts one further along for
    /// each call on the service; random shuffles; weighted draws without replacement with
    /// probability proportional to weight (Efraimidis–Spirakis keys u^(1/w)).
    private func order(_ chosen: [Int], by pick: ReadQuery.Pick, entries: [ServiceView.Entry], service name: String) -> [Int] {
        guard chosen.count > 1 else { return chosen }
        switch pick {
        case .roundRobin:
            let ticket = service.read { $0.nextRoundRobinTicket(service: name) }
            let start = Int(ticket % UInt64(chosen.count))
            return Array(chosen[start...] + chosen[..<start])
        case .random:
            return chosen.shuffled(using: &random)
        case .weighted:
            let keyed = chosen.map { index -> (index: Int, key: Double) in
                let unit = Double.random(in: Double.leastNonzeroMagnitude..<1, using: &random)
                return (index, pow(unit, 1 / Double(entries[index].instance.weight)))
            }
            return keyed.sorted { $0.key > $1.key }.map { $0.index }
        }
    }

    private func services(now: Instant) -> Response {
        // Changes made earlier in this turn reach the listing before it answers.
        service.distributeChanges()
        let parts = service.read { listing.answer($0, now: now) }
        var response = Response(status: 200, body: parts.first ?? [], index: service.changeIndex)
        response.segments = Array(parts.dropFirst())
        return response
    }
}
