import Registry
import JSON
import HTTPParsing
import RegistryWire

/// What one service's `/discover` answers are made of, kept up to date change by change.
///
/// Each instance is rendered in three parts around the two values that move without a
/// change (uptime, reported in tenths as the seed showed it, and the last heartbeat):
/// `{"address":…,"uptime_seconds":`, then `,"id":…,"last_heartbeat":`, then the rest; an
/// instance with checks ends with their results (`,"checks":[…]`), which also move without a
/// change and are rendered again when the checker's generation for it moves. The
/// parts are made once per version of the instance: when the service changes, only the
/// instances whose version moved are rendered again, so a change in a service of 50,000
/// instances costs one instance's rendering and a walk of the service's versions, not
/// 50,000 renderings. The numbers (and check results) are filled in once per 100 ms tick,
/// and the plain listing (UP instances without a critical check, no filter) is joined once
/// per tick, so that a service asked for many times a second is rebuilt a few times a second.
final class ServiceView {
    /// One instance's parts. A class, so that carrying 50,000 entries from one version of
    /// the view to the next costs one reference count each, not one per field.
    final class Entry {
        let slot: Int32
        let version: UInt64
        let instance: InstanceSnapshot
        let head: [UInt8]
        let middle: [UInt8]
        let tail: [UInt8]
        /// The last heartbeat this entry's text was made for, and that text.
        var heartbeatAt: Int64 = .min
        var heartbeatText: [UInt8] = []
        /// `,"checks":[…]` with each check's last result, for the checker's generation of
        /// the instance's results (empty for an instance without checks).
        var checksGeneration: UInt64 = .max
        var checksText: [UInt8] = []

        init(slot: Int32, version: UInt64, instance: InstanceSnapshot, head: [UInt8], middle: [UInt8], tail: [UInt8]) {
            self.slot = slot
            self.version = version
            self.instance = instance
            self.head = head
            self.middle = middle
            self.tail = tail
        }
    }

    static let tickNanoseconds: Int64 = 100_000_000
    /// Entries per block of the plain listing: within a tick, a change re-joins one block.
    static let blockSize = 256

    /// A stretch of the plain listing: its UP entries joined, for one tick.
    private final class Block {
        var tick: Int64 = .min
        /// The entries it was made from, by slot and version: a changed entry makes it stale.
        /// (Not by object identity: a freed entry's address can come back for another.)
        var members: [(slot: Int32, version: UInt64)] = []
        var text: [UInt8] = []
        var count = 0
    }

    let name: String
    private(set) var changeIndex: UInt64 = 0
    private(set) var entries: [Entry] = []
    private(set) var tick: Int64 = .min
    private var blocks: [Block] = []
    /// UP instances without a critical check, as the default read lists them, for `tick`: one
    /// piece for a service of one block, else the opening, the blocks (and the commas between
    /// them) and the close.
    private(set) var plainParts: [[UInt8]] = []

    /// Candidates of picks and limited listings, per status filter, for `changeIndex`: the
    /// entry positions in order, and their weights summed (for weighted draws). Made once per
    /// change, so that `?pick=random&limit=1` over 50,000 instances draws one, not 50,000.
    struct Candidates {
        let positions: [Int]
        /// `cumulativeWeights[i]` is the sum of the weights of `positions[0...i]`.
        let cumulativeWeights: [Int]

        /// The weight of the candidate at `index` (in `positions`).
        func weight(at index: Int) -> Int {
            index == 0 ? cumulativeWeights[0] : cumulativeWeights[index] - cumulativeWeights[index - 1]
        }
    }

    private var candidates: [ReadQuery.Standing: Candidates] = [:]
    private var candidatesIndex: UInt64 = 0

    init(name: String) {
        self.name = name
    }

    /// The entries a status and health filter keeps, made once per change.
    func candidates(_ standing: ReadQuery.Standing) -> Candidates {
        if candidatesIndex != changeIndex {
            candidates.removeAll(keepingCapacity: true)
            candidatesIndex = changeIndex
        }
        if let known = candidates[standing] { return known }
        var positions: [Int] = []
        var cumulative: [Int] = []
        positions.reserveCapacity(entries.count)
        cumulative.reserveCapacity(entries.count)
        var total = 0
        for (position, entry) in entries.enumerated() {
            if !standing.admits(entry.instance.attributes) { continue }
            positions.append(position)
            total += entry.instance.weight
            cumulative.append(total)
        }
        let made = Candidates(positions: positions, cumulativeWeights: cumulative)
        candidates[standing] = made
        return made
    }

    /// Brings the view to the service's state at `changeIndex`. Instances keep their order
    /// (registration order: removals leave gaps, new ones come last), so one forward walk
    /// over the old entries finds every instance that is still there; only new instances, and
    /// those whose version moved, are rendered.
    func update(from registry: inout Registry, changeIndex: UInt64, now: Instant, wallOffset: Int64) {
        guard changeIndex != self.changeIndex else { return }
        let versions = registry.instanceVersions(ofService: name, now: now)
        defer {
            self.changeIndex = changeIndex
            tick = .min
        }
        // The common change: the same instances, one or a few of them changed. Replaced in
        // place, with no new array.
        if versions.count == entries.count && zip(versions, entries).allSatisfy({ $0.slot == $1.slot }) {
            for (position, (slot, version)) in versions.enumerated() where entries[position].version != version {
                entries[position] = Self.render(registry.instance(inSlot: slot), slot: slot, version: version, wallOffset: wallOffset)
            }
            return
        }
        var updated: [Entry] = []
        updated.reserveCapacity(versions.count)
        var old = 0
        for (slot, version) in versions {
            var probe = old
            while probe < entries.count && entries[probe].slot != slot { probe += 1 }
            if probe < entries.count {
                old = probe + 1
                if entries[probe].version == version {
                    updated.append(entries[probe])
                    continue
                }
            }
            updated.append(Self.render(registry.instance(inSlot: slot), slot: slot, version: version, wallOffset: wallOffset))
        }
        entries = updated
    }

    /// Fills in heartbeats and check results for a new tick, or after a change, and brings the
    /// plain listing up to date: blocks whose entries and tick are unchanged are kept.
    func refresh(from registry: inout Registry, tick: Int64, now: Instant, wallOffset: Int64, checker: HealthChecker? = nil) {
        guard tick != self.tick else { return }
        self.tick = tick
        let heartbeats = registry.lastHeartbeats(ofService: name, now: now)
        let blockCount = (entries.count + Self.blockSize - 1) / Self.blockSize
        if blocks.count > blockCount { blocks.removeLast(blocks.count - blockCount) }
        while blocks.count < blockCount { blocks.append(Block()) }
        var parts: [[UInt8]] = []
        parts.reserveCapacity(2 * blockCount + 2)
        var json = JSONWriter(capacity: 64)
        json.raw("{\"service\":")
        json.string(name)
        json.raw(",\"instances\":[")
        parts.append(json.bytes)
        var count = 0
        for (number, block) in blocks.enumerated() {
            let range = (number * Self.blockSize)..<min(entries.count, (number + 1) * Self.blockSize)
            var stale = block.tick != tick || block.members.count != range.count
            for index in range {
                let entry = entries[index]
                let heartbeat = index < heartbeats.count ? heartbeats[index].nanoseconds : entry.instance.lastHeartbeat.nanoseconds
                if entry.heartbeatAt != heartbeat {
                    var text = JSONWriter(capacity: 26)
                    text.timestamp(unixNanoseconds: heartbeat + wallOffset)
                    entry.heartbeatAt = heartbeat
                    entry.heartbeatText = text.bytes
                    stale = true
                }
                if !entry.instance.checks.isEmpty {
                    let results = checker?.results(service: name, id: entry.instance.id) ?? (generation: 0, byCheck: [:])
                    if entry.checksGeneration != results.generation {
                        entry.checksGeneration = results.generation
                        entry.checksText = Self.renderChecks(entry.instance.checks, results.byCheck)
                        stale = true
                    }
                }
                if !stale {
                    let member = block.members[index - range.lowerBound]
                    if member.slot != entry.slot || member.version != entry.version { stale = true }
                }
            }
            if stale { render(block, range) }
            guard block.count > 0 else { continue }
            if count > 0 { parts.append(Self.comma) }
            parts.append(block.text)
            count += block.count
        }
        json = JSONWriter(capacity: 24)
        json.raw("],\"count\":")
        json.integer(count)
        json.raw("}")
        parts.append(json.bytes)
        plainParts = parts.count <= 3 ? [parts.reduce(into: []) { $0 += $1 }] : parts
    }

    private static let comma: [UInt8] = [UInt8(ascii: ",")]

    private func render(_ block: Block, _ range: Range<Int>) {
        var json = JSONWriter(capacity: max(block.text.count, 64))
        var count = 0
        block.members.removeAll(keepingCapacity: true)
        for index in range {
            let entry = entries[index]
            block.members.append((entry.slot, entry.version))
            guard entry.instance.status == .up, !entry.instance.attributes.hasCriticalCheck else { continue }
            if count > 0 { json.raw(",") }
            count += 1
            append(entry, to: &json)
        }
        block.text = json.bytes
        block.count = count
        block.tick = tick
    }

    /// The listing of the entries at `chosen`, in that order, for `tick`.
    func listing(_ chosen: [Int]) -> [UInt8] {
        var json = JSONWriter(capacity: 64 + chosen.reduce(0) { $0 + entries[$1].head.count + entries[$1].middle.count + 96 })
        json.raw("{\"service\":")
        json.string(name)
        json.raw(",\"instances\":[")
        for (position, index) in chosen.enumerated() {
            if position > 0 { json.raw(",") }
            append(entries[index], to: &json)
        }
        json.raw("],\"count\":")
        json.integer(chosen.count)
        json.raw("}")
        return json.bytes
    }

    private func append(_ entry: Entry, to json: inout JSONWriter) {
        json.raw(entry.head)
        json.tenths((tick * Self.tickNanoseconds - entry.instance.registeredAt.nanoseconds) / Self.tickNanoseconds)
        json.raw(entry.middle)
        json.raw(entry.heartbeatText)
        json.raw(entry.tail)
        json.raw(entry.checksText)
        json.raw("}")
    }

    /// `,"checks":[…]`: each check's definition and verdict, and its last run as the checker
    /// saw it (`output`, `last_run`, `duration_ms`; null before the first run, and on a
    /// replica that does not lead, which runs no checks).
    static func renderChecks(_ checks: [HealthCheck], _ results: [String: CheckResult]) -> [UInt8] {
        var json = JSONWriter(capacity: 160 * checks.count)
        json.raw(",\"checks\":[")
        for (position, check) in checks.enumerated() {
            if position > 0 { json.raw(",") }
            json.raw("{\"id\":")
            json.string(check.id)
            json.raw(",\"name\":")
            json.string(check.name)
            switch check.probe {
            case .http(let http):
                json.raw(",\"type\":\"http\",\"target\":")
                json.string(http.url)
                json.raw(",\"method\":")
                json.string(http.method)
            case .tcp(let host, let port):
                json.raw(",\"type\":\"tcp\",\"target\":")
                json.string(HealthCheck.hostPort(host: host, port: port))
            case .ttl(let ttl):
                json.raw(",\"type\":\"ttl\",\"ttl\":")
                json.string(DurationText.format(ttl))
            }
            if check.isActive {
                json.raw(",\"interval\":")
                json.string(DurationText.format(check.interval))
                json.raw(",\"timeout\":")
                json.string(DurationText.format(check.timeout))
            }
            json.raw(",\"deregister_after\":")
            if let after = check.deregisterAfter { json.string(DurationText.format(after)) } else { json.raw("null") }
            json.raw(",\"status\":\"")
            json.raw(check.status.rawValue)
            json.raw("\",\"output\":")
            if let result = results[check.id] {
                json.string(result.output)
                json.raw(",\"last_run\":")
                json.timestamp(unixNanoseconds: result.finishedAt)
                json.raw(",\"duration_ms\":")
                json.raw(String(Double(result.duration.wholeNanoseconds / 1000) / 1000))
            } else {
                json.raw("null,\"last_run\":null,\"duration_ms\":null")
            }
            json.raw("}")
        }
        json.raw("]")
        return json.bytes
    }

    /// Renders what only a change can alter.
    private static func render(_ instance: InstanceSnapshot, slot: Int32, version: UInt64, wallOffset: Int64) -> Entry {
        var head = JSONWriter(capacity: 64)
        head.raw("{\"address\":")
        head.string(instance.address)
        head.raw(",\"uptime_seconds\":")

        var json = JSONWriter(capacity: 256)
        json.raw(",\"id\":")
        json.string(instance.id)
        json.raw(",\"tags\":")
        json.strings(instance.tags)
        json.raw(",\"metadata\":{")
        json.members(instance.metadata)
        json.raw("},\"weight\":")
        json.integer(instance.weight)
        json.raw(",\"zone\":")
        if let zone = instance.zone { json.string(zone) } else { json.raw("null") }
        json.raw(",\"status\":\"")
        json.raw(instance.status.rawValue)
        json.raw("\",\"registered_at\":")
        json.timestamp(unixNanoseconds: instance.registeredAt.nanoseconds + wallOffset)
        json.raw(",\"last_heartbeat\":")

        var tail = JSONWriter(capacity: 48)
        tail.raw(",\"ttl_seconds\":")
        if instance.ttl == InstanceAttributes.noExpiry { tail.raw("null") } else { tail.seconds(instance.ttl) }
        tail.raw(instance.isProtected ? ",\"protected\":true,\"health\":\"" : ",\"protected\":false,\"health\":\"")
        tail.raw(instance.attributes.health.rawValue)
        tail.raw("\"")
        return Entry(slot: slot, version: version, instance: instance, head: head.bytes, middle: json.bytes, tail: tail.bytes)
    }
}
