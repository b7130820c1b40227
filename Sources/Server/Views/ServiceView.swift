import Registry
import JSON

/// What one service's `/discover` answers are made of, kept up to date change by change.
///
/// Each instance is rendered in three parts around the two values that move without a
/// change (uptime, reported in tenths as the seed showed it, and the last heartbeat):
/// `{"address":…,"uptime_seconds":`, then `,"id":…,"last_heartbeat":`, then the rest. The
/// parts are made once per version of the instance: when the service changes, only the
/// instances whose version moved are rendered again, so a change in a service of 50,000
/// instances costs one instance's rendering and a walk of the service's versions, not
/// 50,000 renderings. The numbers are filled in once per 100 ms tick, and the plain listing
/// (UP instances, no filter) is joined once per tick, so that a service asked for many times
/// a second is rebuilt a few times a second.
final class ServiceView {
    struct Entry {
        let slot: Int32
        let version: UInt64
        let instance: InstanceSnapshot
        let head: [UInt8]
        let middle: [UInt8]
        let tail: [UInt8]
        /// The last heartbeat this entry's text was made for, and that text.
        var heartbeatAt: Int64 = .min
        var heartbeatText: [UInt8] = []
    }

    static let tickNanoseconds: Int64 = 100_000_000

    let name: String
    private(set) var changeIndex: UInt64 = 0
    private(set) var entries: [Entry] = []
    private(set) var tick: Int64 = .min
    /// UP instances, as the default read lists them, for `tick`.
    private(set) var plainBody: [UInt8] = []

    init(name: String) {
        self.name = name
    }

    /// Brings the view to the service's state at `changeIndex`. Instances keep their order
    /// (registration order: removals leave gaps, new ones come last), so one forward walk
    /// over the old entries finds every instance that is still there; only new instances, and
    /// those whose version moved, are rendered.
    func update(from registry: Registry, changeIndex: UInt64, wallOffset: Int64) {
        guard changeIndex != self.changeIndex else { return }
        let versions = registry.instanceVersions(ofService: name)
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
        self.changeIndex = changeIndex
        tick = .min
    }

    /// Fills in heartbeats for a new tick and joins the plain listing.
    func refresh(from registry: Registry, tick: Int64, wallOffset: Int64) {
        guard tick != self.tick else { return }
        self.tick = tick
        let heartbeats = registry.lastHeartbeats(ofService: name)
        var json = JSONWriter(capacity: plainBody.count + 64)
        json.raw("{\"service\":")
        json.string(name)
        json.raw(",\"instances\":[")
        var count = 0
        for index in entries.indices {
            let heartbeat = index < heartbeats.count ? heartbeats[index].nanoseconds : entries[index].instance.lastHeartbeat.nanoseconds
            if entries[index].heartbeatAt != heartbeat {
                var text = JSONWriter(capacity: 26)
                text.timestamp(unixNanoseconds: heartbeat + wallOffset)
                entries[index].heartbeatAt = heartbeat
                entries[index].heartbeatText = text.bytes
            }
            guard entries[index].instance.status == .up else { continue }
            if count > 0 { json.raw(",") }
            count += 1
            append(index, to: &json)
        }
        json.raw("],\"count\":")
        json.integer(count)
        json.raw("}")
        plainBody = json.bytes
    }

    /// The listing of the entries at `chosen`, in that order, for `tick`.
    func listing(_ chosen: [Int]) -> [UInt8] {
        var json = JSONWriter(capacity: 64 + chosen.reduce(0) { $0 + entries[$1].head.count + entries[$1].middle.count + 96 })
        json.raw("{\"service\":")
        json.string(name)
        json.raw(",\"instances\":[")
        for (position, index) in chosen.enumerated() {
            if position > 0 { json.raw(",") }
            append(index, to: &json)
        }
        json.raw("],\"count\":")
        json.integer(chosen.count)
        json.raw("}")
        return json.bytes
    }

    private func append(_ index: Int, to json: inout JSONWriter) {
        let entry = entries[index]
        json.raw(entry.head)
        json.tenths((tick * Self.tickNanoseconds - entry.instance.registeredAt.nanoseconds) / Self.tickNanoseconds)
        json.raw(entry.middle)
        json.raw(entry.heartbeatText)
        json.raw(entry.tail)
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
        json.raw(",\"tags\":[")
        for (position, tag) in instance.tags.enumerated() {
            if position > 0 { json.raw(",") }
            json.string(tag)
        }
        json.raw("],\"metadata\":{")
        for (position, entry) in instance.metadata.enumerated() {
            if position > 0 { json.raw(",") }
            json.string(entry.key)
            json.raw(":")
            json.string(entry.value)
        }
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
        tail.seconds(instance.ttl)
        tail.raw(instance.isProtected ? ",\"protected\":true}" : ",\"protected\":false}")
        return Entry(slot: slot, version: version, instance: instance, head: head.bytes, middle: json.bytes, tail: tail.bytes)
    }
}
