import Registry
import HTTPParsing
import JSON

/// The `/services` answer for a registry of any size, kept up to date change by change.
///
/// Rendering 200,000 services from scratch takes 400 ms, and a registration between two
/// listings would make every listing pay it again, stalling the loop. Instead each service's
/// entry is rendered once per change of that service, the entries are kept sorted in blocks
/// of a few hundred, and each block keeps its joined text: a change re-renders one entry and
/// one block, and an answer joins the blocks. Instances whose deadline has passed but that
/// no expiry has removed yet must not be counted: their services' entries are rendered
/// afresh for that answer (the registry finds them in its deadline index, at a cost
/// proportional to what is due).
final class ServicesListing {
    /// A block holds up to twice this many services before it splits.
    static let blockSize = 256

    private final class Block {
        var names: [String] = []
        var entries: [[UInt8]] = []
        /// The entries joined by commas; nil after a change.
        var joined: [UInt8]?
    }

    private var blocks: [Block] = []
    private var seeded = false
    /// Services changed since the last answer.
    private var changed: Set<String> = []
    /// The last answer, while nothing is due: valid until the change index moves.
    private var cached: (changeIndex: UInt64, parts: [[UInt8]])?
    private static let opening = Array("{\"services\":{".utf8)
    private static let comma: [UInt8] = [UInt8(ascii: ",")]

    /// Notes services whose state changed (including ones that are gone).
    func noteChanged(_ names: [String]) {
        guard seeded else { return }
        changed.formUnion(names)
    }

    /// Renders every service's entry: at start, before the loop serves, so that no request
    /// ever pays for a whole registry (about 0.25 s for 200,000 services).
    func prepare(_ registry: Registry) {
        if !seeded { seed(registry) }
    }

    /// Brings up to `limit` changed services' entries up to date: called at the end of every
    /// loop callback, so that changes are applied as they come, a few at a time, and an
    /// answer never has a backlog of them to work through.
    func maintain(_ registry: Registry, limit: Int) {
        guard seeded, !changed.isEmpty else { return }
        var done = 0
        while done < limit, let name = changed.popFirst() {
            apply(name, registry)
            done += 1
        }
    }

    private func apply(_ name: String, _ registry: Registry) {
        if let summary = registry.summary(ofService: name) {
            upsert(name, Self.entry(summary))
            noteProblem(name, summary.hasProblem)
            noteFacets(name, Self.facets(summary))
        } else {
            remove(name)
            noteProblem(name, false)
            noteFacets(name, [])
        }
    }

    /// Services with a problem (`ServiceSummary.hasProblem`), as kept: `order=problems` lists
    /// these first without looking at every service.
    private var problemNames: Set<String> = []
    private var sortedProblemNames: [String]?

    /// An index of the services by what a filter asks for: `t:TAG`, `z:ZONE`, and the statuses
    /// and verdicts that are not the usual ones (`s:DOWN`, `h:critical`, …; every service is
    /// nearly always `UP` and `passing`, which would select nothing). A filtered answer walks
    /// the rarest of its conditions' sets instead of every service.
    private var facetsOf: [String: [String]] = [:]
    private var servicesWith: [String: Set<String>] = [:]

    private static func facets(_ summary: ServiceSummary) -> [String] {
        var keys: [String] = []
        for tag in summary.tags { keys.append("t:" + tag) }
        for zone in summary.zones { keys.append("z:" + zone) }
        for status in InstanceStatus.allCases where status != .up && summary.countsByStatus[status] != nil {
            keys.append("s:" + status.rawValue)
        }
        for health in CheckStatus.allCases where health != .passing && summary.countsByHealth[health] != nil {
            keys.append("h:" + health.rawValue)
        }
        return keys
    }

    private func noteFacets(_ name: String, _ keys: [String]) {
        let old = facetsOf[name] ?? []
        guard old != keys else { return }
        for key in old where !keys.contains(key) {
            servicesWith[key]?.remove(name)
            if servicesWith[key]?.isEmpty == true { servicesWith[key] = nil }
        }
        for key in keys where !old.contains(key) { servicesWith[key, default: []].insert(name) }
        facetsOf[name] = keys.isEmpty ? nil : keys
    }

    /// The services that may meet `filter`, from the index, when that is a small share of all
    /// of them (sorting them is then cheaper than walking every name); nil otherwise.
    private func indexedCandidates(_ filter: ServiceFilter, of total: Int) -> Set<String>? {
        var smallest: Set<String>?
        func consider(_ set: Set<String>?) {
            let set = set ?? []
            if smallest == nil || set.count < smallest!.count { smallest = set }
        }
        for tag in filter.tags { consider(servicesWith["t:" + tag]) }
        if let zone = filter.zone { consider(servicesWith["z:" + zone]) }
        if let status = filter.status, status != .up { consider(servicesWith["s:" + status.rawValue]) }
        if let health = filter.health, health != .passing { consider(servicesWith["h:" + health.rawValue]) }
        if filter.problemsOnly { consider(problemNames) }
        guard let smallest, smallest.count * 8 < total else { return nil }
        return smallest
    }

    private func noteProblem(_ name: String, _ problem: Bool) {
        let changed = problem ? problemNames.insert(name).inserted : problemNames.remove(name) != nil
        if changed { sortedProblemNames = nil }
    }

    private func sortedProblems() -> [String] {
        if let sortedProblemNames { return sortedProblemNames }
        let sorted = problemNames.sorted()
        sortedProblemNames = sorted
        return sorted
    }

    /// The answer for the registry's current state at `now`, in parts to be sent in order:
    /// the blocks are sent by reference, not joined into one 22 MB copy.
    func answer(_ registry: Registry, now: Instant) -> [[UInt8]] {
        bringUpToDate(registry)
        let due = registry.dueInstanceCounts(now: now)
        if due.isEmpty, let cached, cached.changeIndex == registry.changeIndex { return cached.parts }

        var parts: [[UInt8]] = [Self.opening]
        parts.reserveCapacity(2 * blocks.count + 2)
        var count = 0
        for block in blocks where !block.names.isEmpty {
            let touched = !due.isEmpty && block.names.contains { due[$0] != nil }
            if !touched {
                if count > 0 { parts.append(Self.comma) }
                parts.append(joined(block))
                count += block.names.count
                continue
            }
            // A block with due instances is joined afresh for this answer only.
            var json = JSONWriter(capacity: block.joined?.count ?? 1024)
            var listed = 0
            for position in block.names.indices {
                guard let entry = currentEntry(block, position, due: due, registry) else { continue }
                if listed > 0 { json.raw(",") }
                json.raw(entry)
                listed += 1
            }
            guard listed > 0 else { continue }
            if count > 0 { parts.append(Self.comma) }
            parts.append(json.bytes)
            count += listed
        }
        var tail = JSONWriter(capacity: 32)
        Self.close(&tail, count: count)
        parts.append(tail.bytes)
        // A small listing goes out as one piece.
        if parts.count <= 3 { parts = [parts.reduce(into: []) { $0 += $1 }] }
        cached = due.isEmpty ? (registry.changeIndex, parts) : nil
        return parts
    }

    /// The answer to a filtered or paged query (`ServicesQuery`), listing only services
    /// `admits` lets through (a token that may read some services) when it is given. Built
    /// from the kept entries each time, never cached: it costs the names in the prefix's
    /// range (all of them without a prefix) and a few lookups each, not their rendering
    /// (except services with instances past their deadline, rendered without them).
    ///
    /// Besides `services` and `total_services` (how many are listed), a filtered or paged
    /// answer carries `matching_services` (how many meet the query, past the limit too) and,
    /// in name order when more remain, `next`: the name to pass as `after` for the next page.
    func answer(_ registry: Registry, now: Instant, query: ServicesQuery, admits: ((String) -> Bool)? = nil) -> [[UInt8]] {
        bringUpToDate(registry)
        let due = registry.dueInstanceCounts(now: now)
        let limit = query.limit ?? Int.max
        var listed: [[UInt8]] = []
        var matching = 0
        var lastListed: String?
        var more = false
        let prefix = query.prefix

        func inRange(_ name: String) -> Bool {
            if let after = query.after, name <= after { return false }
            if let prefix, !name.hasPrefix(prefix) { return false }
            return admits?(name) ?? true
        }
        /// Whether the query lists `name` now (a service with instances past their deadline
        /// that no expiry has removed yet judged without them, any other by its kept counts),
        /// with its entry when `rendered` and whether it has a problem.
        func judged(_ name: String, _ block: Block, _ position: Int, rendered: Bool) -> (entry: [UInt8], problem: Bool)? {
            if let dueCounts = due[name] {
                guard let summary = registry.summary(ofService: name, leavingOut: dueCounts), query.filter.admits(summary) else { return nil }
                return (rendered ? Self.entry(summary) : [], summary.hasProblem)
            }
            if !query.filter.isEmpty && !registry.service(name, meets: query.filter) { return nil }
            return (rendered ? block.entries[position] : [], problemNames.contains(name))
        }

        // Problems first: the few kept as such, in name order.
        var taken: Set<String> = []
        if query.order == .problems {
            for name in sortedProblems() where inRange(name) {
                let block = blocks[blockIndex(for: name)]
                let position = Self.insertionPoint(of: name, in: block.names)
                guard position < block.names.count, block.names[position] == name,
                      let found = judged(name, block, position, rendered: listed.count < limit), found.problem else { continue }
                taken.insert(name)
                matching += 1
                if listed.count < limit { listed.append(found.entry) } else { more = true }
            }
        }
        /// One more service in name order: listed, or only counted once the page is full.
        func consider(_ name: String, _ block: Block, _ position: Int) {
            let full = listed.count >= limit
            guard let found = judged(name, block, position, rendered: !full) else { return }
            matching += 1
            if full {
                more = true
                return
            }
            listed.append(found.entry)
            lastListed = name
        }

        if let candidates = indexedCandidates(query.filter, of: registry.serviceCount) {
            // Few services can match: those the index holds for the rarest condition, sorted.
            for name in candidates.filter({ !taken.contains($0) && inRange($0) }).sorted() {
                let block = blocks[blockIndex(for: name)]
                let position = Self.insertionPoint(of: name, in: block.names)
                if position < block.names.count && block.names[position] == name { consider(name, block, position) }
            }
        } else {
            // Every other service in name order, from the prefix's (or `after`'s) place.
            let start = [prefix, query.after].compactMap { $0 }.max() ?? ""
            let countable = query.filter.isEmpty && admits == nil && prefix == nil
            var blockNumber = blocks.isEmpty ? 0 : blockIndex(for: start)
            scan: while blockNumber < blocks.count {
                let block = blocks[blockNumber]
                blockNumber += 1
                var position = Self.insertionPoint(of: start, in: block.names)
                while position < block.names.count {
                    let name = block.names[position]
                    let here = position
                    position += 1
                    if let after = query.after, name <= after { continue }
                    if let prefix, !name.hasPrefix(prefix) {
                        if name > prefix { break scan }
                        continue
                    }
                    if taken.contains(name) || !inRange(name) { continue }
                    if listed.count >= limit && countable {
                        // Nothing to judge past the page: the rest are counted, less those whose
                        // every instance is past its deadline and those listed first.
                        let rest = block.names.count - here + blocks[blockNumber...].reduce(0) { $0 + $1.names.count }
                        let gone = due.keys.filter { $0 >= name && !taken.contains($0) }
                            .filter { registry.summary(ofService: $0, leavingOut: due[$0]) == nil }.count
                        let first = taken.filter { $0 >= name }.count
                        matching += rest - gone - first
                        more = more || rest - gone - first > 0
                        break scan
                    }
                    consider(name, block, here)
                }
            }
        }
        var json = JSONWriter(capacity: 64 + listed.reduce(0) { $0 + $1.count + 1 })
        json.raw(Self.opening)
        for (number, entry) in listed.enumerated() {
            if number > 0 { json.raw(",") }
            json.raw(entry)
        }
        json.raw("},\"total_services\":")
        json.integer(listed.count)
        if !query.isWholeListing {
            json.raw(",\"matching_services\":")
            json.integer(matching)
        }
        if more, query.order == .name, let lastListed {
            json.raw(",\"next\":")
            json.string(lastListed)
        }
        json.raw("}")
        return [json.bytes]
    }

    /// Seeds the blocks once, then applies the changes noted since the last answer.
    private func bringUpToDate(_ registry: Registry) {
        if !seeded { seed(registry) }
        for name in changed { apply(name, registry) }
        changed.removeAll(keepingCapacity: true)
    }

    /// A service's entry as an answer at this moment lists it: the kept one, or rendered
    /// afresh without its due instances; nil when nothing of it is left.
    private func currentEntry(_ block: Block, _ position: Int, due: [String: ServiceCounts], _ registry: Registry) -> [UInt8]? {
        let name = block.names[position]
        guard let dueCounts = due[name] else { return block.entries[position] }
        return registry.summary(ofService: name, leavingOut: dueCounts).map(Self.entry)
    }

    private static func close(_ json: inout JSONWriter, count: Int) {
        json.raw("},\"total_services\":")
        json.integer(count)
        json.raw("}")
    }

    private func seed(_ registry: Registry) {
        seeded = true
        var block = Block()
        for name in registry.serviceNames.sorted() {
            guard let summary = registry.summary(ofService: name) else { continue }
            if block.names.count == Self.blockSize {
                blocks.append(block)
                block = Block()
            }
            block.names.append(name)
            block.entries.append(Self.entry(summary))
            if summary.hasProblem { problemNames.insert(name) }
            noteFacets(name, Self.facets(summary))
        }
        blocks.append(block)
    }

    private func joined(_ block: Block) -> [UInt8] {
        if let joined = block.joined { return joined }
        var json = JSONWriter(capacity: block.entries.reduce(0) { $0 + $1.count + 1 })
        for (position, entry) in block.entries.enumerated() {
            if position > 0 { json.raw(",") }
            json.raw(entry)
        }
        block.joined = json.bytes
        return json.bytes
    }

    /// The block that holds `name`, or would: the first whose last name is not below it.
    private func blockIndex(for name: String) -> Int {
        var low = 0
        var high = blocks.count - 1
        while low < high {
            let middle = (low + high) / 2
            if let last = blocks[middle].names.last, last < name { low = middle + 1 } else { high = middle }
        }
        return low
    }

    private func upsert(_ name: String, _ entry: [UInt8]) {
        if blocks.isEmpty { blocks.append(Block()) }
        let index = blockIndex(for: name)
        let block = blocks[index]
        let position = Self.insertionPoint(of: name, in: block.names)
        block.joined = nil
        if position < block.names.count && block.names[position] == name {
            block.entries[position] = entry
            return
        }
        block.names.insert(name, at: position)
        block.entries.insert(entry, at: position)
        if block.names.count > 2 * Self.blockSize {
            let upper = Block()
            upper.names = Array(block.names[Self.blockSize...])
            upper.entries = Array(block.entries[Self.blockSize...])
            block.names.removeSubrange(Self.blockSize...)
            block.entries.removeSubrange(Self.blockSize...)
            blocks.insert(upper, at: index + 1)
        }
    }

    private func remove(_ name: String) {
        guard !blocks.isEmpty else { return }
        let index = blockIndex(for: name)
        let block = blocks[index]
        let position = Self.insertionPoint(of: name, in: block.names)
        guard position < block.names.count, block.names[position] == name else { return }
        block.names.remove(at: position)
        block.entries.remove(at: position)
        block.joined = nil
        if block.names.isEmpty && blocks.count > 1 { blocks.remove(at: index) }
    }

    private static func insertionPoint(of name: String, in names: [String]) -> Int {
        var low = 0
        var high = names.count
        while low < high {
            let middle = (low + high) / 2
            if names[middle] < name { low = middle + 1 } else { high = middle }
        }
        return low
    }

    /// `"name":{"total_instances":…,"instances_by_status":…,"instances_by_health":…,"tags":…,"zones":…,"index":…}`.
    static func entry(_ summary: ServiceSummary) -> [UInt8] {
        var json = JSONWriter(capacity: 128 + summary.name.utf8.count)
        json.string(summary.name)
        json.raw(":{\"total_instances\":")
        json.integer(summary.instanceCount)
        json.raw(",\"active_instances\":")
        json.integer(summary.countsByStatus[.up] ?? 0)
        json.raw(",\"instances_by_status\":{")
        var first = true
        for status in InstanceStatus.allCases {
            guard let count = summary.countsByStatus[status] else { continue }
            if !first { json.raw(",") }
            first = false
            json.raw("\"")
            json.raw(status.rawValue)
            json.raw("\":")
            json.integer(count)
        }
        json.raw("},\"instances_by_health\":{")
        first = true
        for health in CheckStatus.allCases {
            guard let count = summary.countsByHealth[health] else { continue }
            if !first { json.raw(",") }
            first = false
            json.raw("\"")
            json.raw(health.rawValue)
            json.raw("\":")
            json.integer(count)
        }
        json.raw("},\"tags\":")
        json.strings(summary.tags)
        json.raw(",\"zones\":")
        json.strings(summary.zones)
        json.raw(",\"index\":")
        json.integer(summary.changeIndex)
        json.raw("}")
        return json.bytes
    }
}
