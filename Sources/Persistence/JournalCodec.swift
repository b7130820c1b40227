import Registry

/// The binary form of a `JournalEntry`.
///
/// Times are stored as Unix nanoseconds (wall time), because the monotonic clock restarts
/// with the machine: `wallOffset` is wall time minus monotonic time, read by the caller.
///
/// Layout: `u8 kind`, then, for the kinds written since format 2, `u8 format`; then `u64
/// change index`, then for an upsert the service, id, address, tags, metadata, weight, zone,
/// status, TTL (0: the server's, -1: none) and registration time, and from format 3 the
/// checks (`u32` count, then each check's id, name, probe, interval, timeout, deregister-after
/// and status), for a removal the service and id, for an index mark nothing more. A record of
/// format 2 reads as an instance without checks. Format 1 (kinds 1–3) had no format byte; it
/// is still read, so that a data directory written before format 2 loads. A record of a format above `currentFormat` is
/// refused with a message that says it was written by a newer registry, never taken for
/// damage. A snapshot file starts with a header record (its own kind) that gives the change
/// index, and ends with a trailer record that gives the number of instance records between.
public enum JournalCodec {
    struct Failure: Error, Equatable {
        let reason: String
        /// Written by a newer registry, in a format this one does not know.
        var isNewerFormat = false
    }

    /// The record format this registry writes, and the newest it reads.
    static let currentFormat: UInt8 = 3

    // Format 1, without a format byte.
    private static let upsertKindV1: UInt8 = 1
    private static let removeKindV1: UInt8 = 2
    private static let indexKindV1: UInt8 = 3
    // Format 2 on, followed by the format byte.
    private static let upsertKind: UInt8 = 0x11
    private static let removeKind: UInt8 = 0x12
    private static let indexKind: UInt8 = 0x13
    private static let snapshotHeaderKind: UInt8 = 0x53

    private static let snapshotTrailerKind: UInt8 = 0x54

    /// The longest payload `encode` can write for an instance the field rules allow: every
    /// string at its limit and every character four bytes long in UTF-8. Recovery uses it to
    /// tell a torn last record from damage, since nothing longer was ever written; keep it
    /// in step with `encode`.
    public static let maxPayloadBytes: Int = {
        let string = 4
        let upsert = 1 + 1 + 8
            + string + Violation.maxServiceNameLength
            + string + Violation.maxIDLength * 4
            + string + Violation.maxAddressLength * 4
            + 4 + Violation.maxTags * (string + Violation.maxTagLength * 4)
            + 4 + Violation.maxMetadataEntries * (string + Violation.maxMetadataKeyLength + string + Violation.maxMetadataValueLength * 4)
            + 4
            + string + Violation.maxZoneLength
            + string + InstanceStatus.allCases.map(\.rawValue.utf8.count).max()!
            + 8 + 8
            + 4 + Violation.maxChecks * maxCheckBytes
        return upsert
    }()

    /// One check at its limits: id and name, the longest probe (an HTTP one), four durations
    /// and a status.
    private static let maxCheckBytes: Int = {
        let string = 4
        return 2 * (string + Violation.maxCheckIDLength * 4) + 1
            + string + Violation.maxCheckURLLength + string + 16
            + 4 + Violation.maxCheckHeaders * (string + Violation.maxCheckHeaderNameLength + string + Violation.maxCheckHeaderValueLength * 4)
            + 1 + 8 * 3 + string + CheckStatus.allCases.map(\.rawValue.utf8.count).max()!
    }()

    private static let httpProbe: UInt8 = 1
    private static let tcpProbe: UInt8 = 2
    private static let ttlProbe: UInt8 = 3

    private static func encode(_ check: HealthCheck, into writer: inout ByteWriter) {
        writer.string(check.id)
        writer.string(check.name)
        switch check.probe {
        case .http(let http):
            writer.u8(httpProbe)
            writer.string(http.url)
            writer.string(http.method)
            writer.u32(UInt32(http.headers.count))
            for header in http.headers {
                writer.string(header.key)
                writer.string(header.value)
            }
            writer.u8(http.tlsSkipVerify ? 1 : 0)
        case .tcp(let host, let port):
            writer.u8(tcpProbe)
            writer.string(host)
            writer.u32(UInt32(port))
        case .ttl(let ttl):
            writer.u8(ttlProbe)
            writer.i64(ttl.wholeNanoseconds)
        }
        writer.i64(check.interval.wholeNanoseconds)
        writer.i64(check.timeout.wholeNanoseconds)
        writer.i64(check.deregisterAfter?.wholeNanoseconds ?? 0)
        writer.string(check.status.rawValue)
    }

    private static func decodeCheck(_ reader: inout ByteReader) throws(Failure) -> HealthCheck {
        guard let id = reader.string(), let name = reader.string(), let kind = reader.u8() else { throw Failure(reason: "malformed check") }
        let probe: HealthCheck.Probe
        switch kind {
        case httpProbe:
            guard let url = reader.string(), let method = reader.string(), let count = reader.u32(), count <= 4096 else {
                throw Failure(reason: "malformed HTTP check")
            }
            var headers: [MetadataEntry] = []
            for _ in 0..<count {
                guard let key = reader.string(), let value = reader.string() else { throw Failure(reason: "malformed check header") }
                headers.append(MetadataEntry(key, value))
            }
            guard let skip = reader.u8(), skip <= 1 else { throw Failure(reason: "malformed HTTP check") }
            probe = .http(HealthCheck.HTTPProbe(url: url, method: method, headers: headers, tlsSkipVerify: skip == 1))
        case tcpProbe:
            guard let host = reader.string(), let port = reader.u32(), port <= 65535 else { throw Failure(reason: "malformed TCP check") }
            probe = .tcp(host: host, port: Int(port))
        case ttlProbe:
            guard let ttl = reader.i64(), ttl > 0 else { throw Failure(reason: "malformed TTL check") }
            probe = .ttl(.nanoseconds(ttl))
        default:
            throw Failure(reason: "unknown check kind \(kind)")
        }
        guard let interval = reader.i64(), interval >= 0, let timeout = reader.i64(), timeout >= 0, let after = reader.i64(), after >= 0,
              let statusText = reader.string(), let status = CheckStatus(rawValue: statusText)
        else { throw Failure(reason: "malformed check") }
        return HealthCheck(id: id, name: name, probe: probe, interval: .nanoseconds(interval), timeout: .nanoseconds(timeout),
                           deregisterAfter: after > 0 ? .nanoseconds(after) : nil, status: status)
    }

    /// Whether `payload` is a record this server can read (a journal entry, or a snapshot's
    /// header or trailer): what the search for valid records after damage accepts.
    static func isRecord(_ payload: ArraySlice<UInt8>) -> Bool {
        if decodeSnapshotHeader(payload) != nil || decodeSnapshotTrailer(payload) != nil { return true }
        return (try? decode(payload, wallOffset: 0)) != nil
    }

    static func encodeSnapshotHeader(changeIndex: UInt64, into writer: inout ByteWriter) {
        writer.u8(snapshotHeaderKind)
        writer.u64(changeIndex)
    }

    static func encodeSnapshotTrailer(instanceCount: UInt64, into writer: inout ByteWriter) {
        writer.u8(snapshotTrailerKind)
        writer.u64(instanceCount)
    }

    /// The change index a snapshot's header records, or nil when `payload` is not a header.
    static func decodeSnapshotHeader(_ payload: ArraySlice<UInt8>) -> UInt64? {
        var reader = ByteReader(payload)
        guard reader.u8() == snapshotHeaderKind, let index = reader.u64(), index <= maxChangeIndex, reader.isAtEnd else { return nil }
        return index
    }

    /// The record count a snapshot's trailer records, or nil when `payload` is not a trailer.
    static func decodeSnapshotTrailer(_ payload: ArraySlice<UInt8>) -> UInt64? {
        var reader = ByteReader(payload)
        guard reader.u8() == snapshotTrailerKind, let count = reader.u64(), reader.isAtEnd else { return nil }
        return count
    }

    public static func encode(_ entry: JournalEntry, wallOffset: Int64) -> [UInt8] {
        var writer = ByteWriter()
        encode(entry, wallOffset: wallOffset, into: &writer)
        return writer.bytes
    }

    /// Appends the entry's payload to `writer` (no copy of its own: the log's batches are
    /// encoded straight into one buffer).
    static func encode(_ entry: JournalEntry, wallOffset: Int64, into writer: inout ByteWriter) {
        switch entry {
        case .upsert(let state, let index):
            writer.u8(upsertKind)
            writer.u8(currentFormat)
            writer.u64(index)
            let attributes = state.attributes
            writer.string(state.service)
            writer.string(state.id)
            writer.string(attributes.address)
            writer.u32(UInt32(attributes.tags.count))
            for tag in attributes.tags { writer.string(tag) }
            writer.u32(UInt32(attributes.metadata.count))
            for entry in attributes.metadata {
                writer.string(entry.key)
                writer.string(entry.value)
            }
            writer.u32(UInt32(attributes.weight))
            writer.string(attributes.zone ?? "")
            writer.string(attributes.status.rawValue)
            writer.i64(attributes.ttl.map { $0 == InstanceAttributes.noExpiry ? -1 : $0.wholeNanoseconds } ?? 0)
            writer.i64(state.registeredAt.nanoseconds &+ wallOffset)
            writer.u32(UInt32(attributes.checks.count))
            for check in attributes.checks { encode(check, into: &writer) }
        case .remove(let service, let id, let index):
            writer.u8(removeKind)
            writer.u8(currentFormat)
            writer.u64(index)
            writer.string(service)
            writer.string(id)
        case .indexAdvanced(let index):
            writer.u8(indexKind)
            writer.u8(currentFormat)
            writer.u64(index)
        }
    }

    /// The largest change index a record may carry: the API's bound for `index` (18 digits).
    /// A registry would take 30,000 years at a billion changes a second to get there, so a
    /// larger one is damage (or a crafted file), refused like any other, never a trap when
    /// the index next moves.
    public static let maxChangeIndex: UInt64 = 999_999_999_999_999_999

    static func decode(_ payload: ArraySlice<UInt8>, wallOffset: Int64) throws(Failure) -> JournalEntry {
        var reader = ByteReader(payload)
        guard var kind = reader.u8() else { throw Failure(reason: "truncated record header") }
        var format: UInt8 = 1
        switch kind {
        case upsertKindV1, removeKindV1, indexKindV1:
            // Format 1: the same fields, without a format byte.
            kind += 0x10
        case upsertKind, removeKind, indexKind:
            guard let written = reader.u8() else { throw Failure(reason: "truncated record header") }
            format = written
            if format > currentFormat {
                throw Failure(reason: "a record of format \(format), written by a newer registry (this one reads formats 1 to "
                    + "\(currentFormat))", isNewerFormat: true)
            }
        default:
            throw Failure(reason: "unknown record kind \(kind)")
        }
        guard let index = reader.u64() else { throw Failure(reason: "truncated record header") }
        guard index <= maxChangeIndex else {
            throw Failure(reason: "change index \(index) is past the largest a registry writes (\(maxChangeIndex))")
        }
        switch kind {
        case indexKind:
            guard reader.isAtEnd else { throw Failure(reason: "malformed index record") }
            return .indexAdvanced(to: index)
        case removeKind:
            guard let service = reader.string(), let id = reader.string(), reader.isAtEnd else {
                throw Failure(reason: "malformed removal record")
            }
            return .remove(service: service, id: id, changeIndex: index)
        case upsertKind:
            guard let service = reader.string(), let id = reader.string(), let address = reader.string(),
                  let tagCount = reader.u32(), tagCount <= 4096 else { throw Failure(reason: "malformed instance record") }
            var tags: [String] = []
            for _ in 0..<tagCount {
                guard let tag = reader.string() else { throw Failure(reason: "malformed tag") }
                tags.append(tag)
            }
            guard let metadataCount = reader.u32(), metadataCount <= 4096 else { throw Failure(reason: "malformed metadata") }
            var metadata: [MetadataEntry] = []
            for _ in 0..<metadataCount {
                guard let key = reader.string(), let value = reader.string() else { throw Failure(reason: "malformed metadata") }
                metadata.append(MetadataEntry(key, value))
            }
            guard let weight = reader.u32(), let zone = reader.string(), let statusText = reader.string(),
                  let status = InstanceStatus(rawValue: statusText), let ttl = reader.i64(), ttl >= -1, let registeredAt = reader.i64()
            else { throw Failure(reason: "malformed instance record") }
            var checks: [HealthCheck] = []
            if format >= 3 {
                guard let count = reader.u32(), count <= 4096 else { throw Failure(reason: "malformed checks") }
                for _ in 0..<count { checks.append(try decodeCheck(&reader)) }
            }
            guard reader.isAtEnd else { throw Failure(reason: "malformed instance record") }
            let state = InstanceState(
                service: service, id: id,
                attributes: InstanceAttributes(address: address, tags: tags, metadata: metadata, weight: Int(weight),
                                               zone: zone.isEmpty ? nil : zone, status: status,
                                               ttl: ttl > 0 ? .nanoseconds(ttl) : ttl == -1 ? InstanceAttributes.noExpiry : nil,
                                               checks: checks),
                registeredAt: Instant(nanoseconds: registeredAt &- wallOffset))
            return .upsert(state, changeIndex: index)
        default:
            throw Failure(reason: "unknown record kind \(kind)")
        }
    }

    /// Encodes `entry` in format 1, as registries before format 2 wrote it: for tests that
    /// check such files still load.
    static func encodeFormat1(_ entry: JournalEntry, wallOffset: Int64) -> [UInt8] {
        var bytes = encodeFormat2(entry, wallOffset: wallOffset)
        bytes[0] -= 0x10
        bytes.remove(at: 1)
        return bytes
    }

    /// Encodes `entry` (an instance without checks) in format 2, as registries before format
    /// 3 wrote it.
    static func encodeFormat2(_ entry: JournalEntry, wallOffset: Int64) -> [UInt8] {
        var bytes = encode(entry, wallOffset: wallOffset)
        bytes[1] = 2
        if case .upsert(let state, _) = entry {
            precondition(state.attributes.checks.isEmpty, "format 2 has no checks")
            bytes.removeLast(4)
        }
        return bytes
    }
}
