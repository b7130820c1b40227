#if canImport(Glibc)
import Glibc
#endif
import Access
import JSON
import Registry
import HTTPParsing

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
        guard request.caller.grant.mayRead(name) else {
            return .respond(AccessControl.denial(request.caller, needs: "read on service \(Violation.quoted(name))"))
        }
        let query: ReadQuery
        switch ReadQuery.parse(request.query) {
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
        let query: ServicesQuery
        switch ServicesQuery.parse(request.query) {
        case .success(let value): query = value
        case .failure(let problem): return .respond(.error(400, problem.message))
        }
        // A caller that may not read every service sees only those it may.
        let readable: Grant? = request.caller.grant.readsEverything ? nil : request.caller.grant
        let listing = ServicesListingQuery(readable: readable, query: query)
        if stream { return .stream(.services(listing)) }
        if let index = query.index, index >= service.changeIndex {
            return .park(.services(listing), wait: min(query.wait ?? ReadQuery.defaultWait, maximumWait))
        }
        return .respond(services(now: request.now, listing: listing))
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
        case .external(let read): return read.index(now)
        }
    }

    /// The current answer for a watch target: what a parked request gets when it wakes,
    /// and the data of each stream event.
    func read(_ target: WatchTarget, now: Instant, wallClock: Int64) -> Response {
        switch target {
        case .service(let name, let query): return discover(name, query: query, now: now, wallClock: wallClock)
        case .services(let listing): return services(now: now, listing: listing)
        case .external(let read): return read.answer(now, wallClock)
        }
    }

    private func discover(_ name: String, query: ReadQuery, now: Instant, wallClock: Int64) -> Response {
        guard let changeIndex = service.serviceChangeIndex(name, now: now) else {
            views[name] = nil
            var json = JSONWriter()
            json.raw("{\"service\":")
            json.string(name)
            json.raw(",\"instances\":[],\"message\":")
            json.string("Service \(name) not found")
            json.raw("}")
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
            view.refresh(from: &registry, tick: now.nanoseconds / Self.tickNanoseconds, now: now, wallOffset: wallOffset,
                         checker: checker)
        }
        if query.isDefaultListing {
            var response = Response(status: 200, body: view.plainParts.first ?? [], index: changeIndex)
            response.segments = Array(view.plainParts.dropFirst())
            return response
        }
        // Filter and pick first, then render only what is listed: the cost follows what is
        // listed, not the size of the service, unless tags, zone or metadata must be matched.
        let chosen: [Int]
        if query.tags.isEmpty && query.zone == nil && query.metadata.isEmpty {
            chosen = choose(from: view.candidates(query.standing), query: query, service: name)
        } else {
            var positions: [Int] = []
            for (position, entry) in view.entries.enumerated() where matches(entry.instance, query) { positions.append(position) }
            chosen = choose(from: positions, entries: view.entries, query: query, service: name)
        }
        return Response(status: 200, body: view.listing(chosen), index: changeIndex)
    }

    private func matches(_ instance: borrowing InstanceSnapshot, _ query: ReadQuery) -> Bool {
        if !query.standing.admits(instance.attributes) { return false }
        if let zone = query.zone, instance.zone != zone { return false }
        for tag in query.tags where !instance.tags.contains(tag) { return false }
        for wanted in query.metadata where !instance.metadata.contains(where: { $0.key == wanted.key && $0.value == wanted.value }) {
            return false
        }
        return true
    }

    /// The positions to list, in order, from cached candidates: a pick and a limit cost
    /// O(limit) (round-robin, random) or O(limit · log n) (weighted) when the limit is small.
    private func choose(from candidates: ServiceView.Candidates, query: ReadQuery, service name: String) -> [Int] {
        let positions = candidates.positions
        let count = positions.count
        let limit = min(query.limit ?? count, count)
        guard count > 1, let pick = query.pick else { return Array(positions.prefix(limit)) }
        switch pick {
        case .roundRobin:
            let start = Int(service.read { $0.nextRoundRobinTicket(service: name) } % UInt64(count))
            return (0..<limit).map { positions[(start + $0) % count] }
        case .random:
            // A partial Fisher–Yates shuffle: `limit` swaps.
            var shuffled = positions
            for slot in 0..<limit {
                shuffled.swapAt(slot, Int.random(in: slot..<count, using: &random))
            }
            return Array(shuffled.prefix(limit))
        case .weighted:
            if let drawn = drawWeighted(candidates, limit: limit) { return drawn }
            return orderByWeight(positions, weight: { candidates.weight(at: $0) }, limit: limit)
        }
    }

    /// Weighted draws without replacement, by the cumulative weights: each draw a binary
    /// search, a position drawn twice drawn again. Nil when the limit is too large a share of
    /// the candidates for that to stay cheap (the caller then orders them all).
    private func drawWeighted(_ candidates: ServiceView.Candidates, limit: Int) -> [Int]? {
        let count = candidates.positions.count
        guard limit * 4 <= count, let total = candidates.cumulativeWeights.last, total > 0 else { return nil }
        var drawn: [Int] = []
        var taken = Set<Int>()
        var attempts = 0
        while drawn.count < limit {
            attempts += 1
            if attempts > 8 * limit + 32 { return nil }
            let target = Int.random(in: 0..<total, using: &random)
            // The first candidate whose cumulative weight exceeds the target.
            var low = 0
            var high = count - 1
            while low < high {
                let middle = (low + high) / 2
                if candidates.cumulativeWeights[middle] > target { high = middle } else { low = middle + 1 }
            }
            if taken.insert(low).inserted { drawn.append(candidates.positions[low]) }
        }
        return drawn
    }

    /// Every candidate ordered by a weighted draw without replacement (Efraimidis–Spirakis
    /// keys u^(1/w)), cut to `limit`.
    private func orderByWeight(_ positions: [Int], weight: (Int) -> Int, limit: Int) -> [Int] {
        var keyed: [(position: Int, key: Double)] = []
        keyed.reserveCapacity(positions.count)
        for (index, position) in positions.enumerated() {
            let unit = Double.random(in: Double.leastNonzeroMagnitude..<1, using: &random)
            keyed.append((position, pow(unit, 1 / Double(weight(index)))))
        }
        keyed.sort { $0.key > $1.key }
        return keyed.prefix(limit).map(\.position)
    }

    /// The same for positions matched by tags, zone or metadata (no cached candidates).
    private func choose(from positions: [Int], entries: [ServiceView.Entry], query: ReadQuery, service name: String) -> [Int] {
        var cumulative: [Int] = []
        if query.pick == .weighted {
            cumulative.reserveCapacity(positions.count)
            var total = 0
            for position in positions {
                total += entries[position].instance.weight
                cumulative.append(total)
            }
        }
        return choose(from: ServiceView.Candidates(positions: positions, cumulativeWeights: cumulative), query: query, service: name)
    }

    private func services(now: Instant, listing wanted: ServicesListingQuery) -> Response {
        // Changes made earlier in this turn reach the listing before it answers.
        service.distributeChanges()
        let parts = service.read { registry in
            if wanted.readable == nil && wanted.query.isWholeListing { return listing.answer(registry, now: now) }
            return listing.answer(registry, now: now, query: wanted.query, admits: wanted.readable.map { grant in { grant.mayRead($0) } })
        }
        var response = Response(status: 200, body: parts.first ?? [], index: service.changeIndex)
        response.segments = Array(parts.dropFirst())
        return response
    }
}
