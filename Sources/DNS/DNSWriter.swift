/// Writes a response: names compressed (RFC 1035 4.1.4; an SRV target never, as RFC 2782
/// asks), whole records only, within a size limit. An answer or authority record that does
/// not fit is left out with every record after it and the TC bit set, and the counts say what
/// is there, so the message stays well formed; additional records that do not fit are left
/// out without TC (RFC 2181 9). The OPT record, when the query had one, always fits.
public enum DNSWriter {
    /// The fixed part of an OPT record: root name, type, class, TTL, empty data.
    static let optLength = 11

    public static func encode(_ response: DNSResponse, limit: Int) -> (bytes: [UInt8], truncated: Bool) {
        var writer = Buffer()
        writer.bytes.reserveCapacity(min(limit, 1232))
        writer.u16(response.id)
        writer.u16(0)  // flags, set at the end
        writer.u16(response.question == nil ? 0 : 1)
        writer.u16(0)
        writer.u16(0)
        writer.u16(0)
        if let question = response.question {
            writer.name(question.name, compress: true)
            writer.u16(question.type)
            writer.u16(question.qclass)
        }
        let room = limit - (response.ednsPayloadSize == nil ? 0 : optLength)
        var truncated = false
        var counts = [0, 0, 0]
        for (section, records) in [response.answers, response.authority, response.additional].enumerated() {
            if truncated { break }
            for record in records {
                let mark = writer.mark()
                writer.record(record)
                if writer.bytes.count > room {
                    writer.rollBack(to: mark)
                    // Additional records are a courtesy: leaving them out is no truncation.
                    if section < 2 { truncated = true }
                    break
                }
                counts[section] += 1
            }
        }
        var additional = counts[2]
        if let size = response.ednsPayloadSize {
            writer.u8(0)
            writer.u16(DNSType.opt.rawValue)
            writer.u16(size)
            // Extended code (its upper 8 bits), version 0, no flags.
            writer.u8(response.badVersion ? 1 : 0)
            writer.u8(0)
            writer.u16(0)
            writer.u16(0)
            additional += 1
        }
        var flags: UInt16 = 0x8000 | UInt16(response.opcode & 0xF) << 11 | UInt16(response.code.rawValue & 0xF)
        if response.authoritative { flags |= 0x0400 }
        if truncated { flags |= 0x0200 }
        if response.recursionDesired { flags |= 0x0100 }
        if response.checkingDisabled { flags |= 0x0010 }
        writer.set(2, flags)
        writer.set(6, UInt16(counts[0]))
        writer.set(8, UInt16(counts[1]))
        writer.set(10, UInt16(additional))
        return (writer.bytes, truncated)
    }

    struct Buffer {
        var bytes: [UInt8] = []
        /// Lower-cased name suffixes already written, and where.
        var offsets: [[[UInt8]]: Int] = [:]
        /// Suffixes added since the last mark, to forget on a roll-back.
        var added: [[[UInt8]]] = []

        mutating func u8(_ value: UInt8) { bytes.append(value) }

        mutating func u16(_ value: UInt16) {
            bytes.append(UInt8(value >> 8))
            bytes.append(UInt8(value & 0xFF))
        }

        mutating func u32(_ value: UInt32) {
            u16(UInt16(value >> 16))
            u16(UInt16(value & 0xFFFF))
        }

        mutating func set(_ offset: Int, _ value: UInt16) {
            bytes[offset] = UInt8(value >> 8)
            bytes[offset + 1] = UInt8(value & 0xFF)
        }

        mutating func mark() -> Int {
            added.removeAll(keepingCapacity: true)
            return bytes.count
        }

        mutating func rollBack(to mark: Int) {
            bytes.removeSubrange(mark...)
            for suffix in added { offsets[suffix] = nil }
            added.removeAll(keepingCapacity: true)
        }

        mutating func name(_ name: DNSName, compress: Bool) {
            let lower = name.lowercased.labels
            for index in name.labels.indices {
                let suffix = Array(lower[index...])
                if compress, let offset = offsets[suffix] {
                    u16(0xC000 | UInt16(offset))
                    return
                }
                // A pointer holds 14 bits of offset.
                if compress, bytes.count < 0x3FFF {
                    offsets[suffix] = bytes.count
                    added.append(suffix)
                }
                let label = name.labels[index].prefix(63)
                u8(UInt8(label.count))
                bytes.append(contentsOf: label)
            }
            u8(0)
        }

        mutating func record(_ record: DNSRecord) {
            name(record.name, compress: true)
            u16(record.data.type.rawValue)
            u16(1)
            u32(record.ttl)
            let lengthAt = bytes.count
            u16(0)
            switch record.data {
            case .a(let address):
                bytes += [address.0, address.1, address.2, address.3]
            case .aaaa(let address):
                bytes += address.prefix(16)
                if address.count < 16 { bytes += [UInt8](repeating: 0, count: 16 - address.count) }
            case .srv(let priority, let weight, let port, let target):
                u16(priority)
                u16(weight)
                u16(port)
                name(target, compress: false)
            case .soa(let primary, let mailbox, let serial, let refresh, let retry, let expire, let minimum):
                name(primary, compress: true)
                name(mailbox, compress: true)
                for value in [serial, refresh, retry, expire, minimum] { u32(value) }
            case .ns(let target):
                name(target, compress: true)
            case .txt(let strings):
                for text in strings {
                    let utf8 = Array(text.utf8.prefix(255))
                    u8(UInt8(utf8.count))
                    bytes += utf8
                }
            }
            set(lengthAt, UInt16(bytes.count - lengthAt - 2))
        }
    }
}
