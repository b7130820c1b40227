/// Reads DNS messages: a query as the server answers it (`parseQuery`), and any message in
/// full (`parseMessage`, for tests and for checking what the writer made). Every read is
/// bounds-checked; a compression pointer must point backwards and a name may follow at most
/// 32 of them, so no input loops or reads outside the packet.
public enum DNSReader {
    public static let maxPointerJumps = 32

    struct Failure: Error {}

    /// The header's fixed twelve bytes.
    struct Header {
        var id: UInt16
        var flags: UInt16
        var counts: (UInt16, UInt16, UInt16, UInt16)

        var isResponse: Bool { flags & 0x8000 != 0 }
        var opcode: UInt8 { UInt8((flags >> 11) & 0xF) }
        var recursionDesired: Bool { flags & 0x0100 != 0 }
        var checkingDisabled: Bool { flags & 0x0010 != 0 }
    }

    struct Cursor {
        let bytes: UnsafeBufferPointer<UInt8>
        var offset = 0

        mutating func u8() throws(Failure) -> UInt8 {
            guard offset < bytes.count else { throw Failure() }
            defer { offset += 1 }
            return bytes[offset]
        }

        mutating func u16() throws(Failure) -> UInt16 {
            guard offset + 2 <= bytes.count else { throw Failure() }
            defer { offset += 2 }
            return UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
        }

        mutating func u32() throws(Failure) -> UInt32 {
            UInt32(try u16()) << 16 | UInt32(try u16())
        }

        mutating func take(_ count: Int) throws(Failure) -> [UInt8] {
            guard count >= 0, offset + count <= bytes.count else { throw Failure() }
            defer { offset += count }
            return Array(bytes[offset..<offset + count])
        }

        /// A name at the cursor, following compression pointers (RFC 1035 4.1.4).
        mutating func name() throws(Failure) -> DNSName {
            var labels: [[UInt8]] = []
            var position = offset
            var jumped = false
            var jumps = 0
            var length = 1
            while true {
                guard position < bytes.count else { throw Failure() }
                let byte = bytes[position]
                switch byte & 0xC0 {
                case 0x00:
                    if byte == 0 {
                        if !jumped { offset = position + 1 }
                        return DNSName(labels: labels)
                    }
                    let count = Int(byte)
                    guard position + 1 + count <= bytes.count else { throw Failure() }
                    length += count + 1
                    guard length <= 255 else { throw Failure() }
                    labels.append(Array(bytes[position + 1...position + count]))
                    position += 1 + count
                case 0xC0:
                    guard position + 1 < bytes.count else { throw Failure() }
                    let target = Int(byte & 0x3F) << 8 | Int(bytes[position + 1])
                    // Backwards only, and a bounded number of times: no loop.
                    guard target < position, jumps < DNSReader.maxPointerJumps else { throw Failure() }
                    jumps += 1
                    if !jumped { offset = position + 2 }
                    jumped = true
                    position = target
                default:
                    // 0x40 and 0x80: extended label types, obsolete (RFC 6891 9).
                    throw Failure()
                }
            }
        }
    }

    static func header(_ cursor: inout Cursor) throws(Failure) -> Header {
        Header(id: try cursor.u16(), flags: try cursor.u16(), counts: (try cursor.u16(), try cursor.u16(), try cursor.u16(), try cursor.u16()))
    }

    /// A query the server should answer, or why not (drop it, or answer only its header).
    public static func parseQuery(_ bytes: UnsafeBufferPointer<UInt8>) -> Result<DNSQuery, DNSQueryFailure> {
        var cursor = Cursor(bytes: bytes)
        guard let header = try? header(&cursor), !header.isResponse else { return .failure(.drop) }
        func refuse(_ code: DNSResponseCode) -> Result<DNSQuery, DNSQueryFailure> {
            .failure(.answer(id: header.id, opcode: header.opcode, recursionDesired: header.recursionDesired, code: code))
        }
        guard header.opcode == 0 else { return refuse(.notImplemented) }
        guard header.counts.0 == 1 else { return refuse(.formatError) }
        do throws(Failure) {
            let question = DNSQuestion(name: try cursor.name(), type: try cursor.u16(), qclass: try cursor.u16())
            var query = DNSQuery(id: header.id, opcode: header.opcode, recursionDesired: header.recursionDesired,
                                 checkingDisabled: header.checkingDisabled, question: question)
            // Answer and authority records have no place in a query; skip them whole.
            for _ in 0..<(Int(header.counts.1) + Int(header.counts.2)) { _ = try record(&cursor) }
            for _ in 0..<Int(header.counts.3) {
                let start = cursor.offset
                let name = try cursor.name()
                let type = try cursor.u16()
                if type == DNSType.opt.rawValue {
                    // One OPT, on the root name (RFC 6891 6.1.1).
                    guard query.ednsPayloadSize == nil, name.labels.isEmpty else { return refuse(.formatError) }
                    let size = try cursor.u16()
                    let ttl = try cursor.u32()
                    query.ednsPayloadSize = max(512, size)
                    query.ednsVersion = UInt8((ttl >> 16) & 0xFF)
                    let length = Int(try cursor.u16())
                    _ = try cursor.take(length)
                } else {
                    cursor.offset = start
                    _ = try record(&cursor)
                }
            }
            return .success(query)
        } catch {
            return refuse(.formatError)
        }
    }

    /// One resource record, any type (the data of types this codec does not model is skipped).
    static func record(_ cursor: inout Cursor) throws(Failure) -> (name: DNSName, type: UInt16, qclass: UInt16, ttl: UInt32, data: DNSRecordData?) {
        let name = try cursor.name()
        let type = try cursor.u16()
        let qclass = try cursor.u16()
        let ttl = try cursor.u32()
        let length = Int(try cursor.u16())
        let end = cursor.offset + length
        guard end <= cursor.bytes.count else { throw Failure() }
        var data: DNSRecordData?
        switch DNSType(rawValue: type) {
        case .a?:
            guard length == 4 else { throw Failure() }
            let b = try cursor.take(4)
            data = .a((b[0], b[1], b[2], b[3]))
        case .aaaa?:
            guard length == 16 else { throw Failure() }
            data = .aaaa(try cursor.take(16))
        case .srv?:
            data = .srv(priority: try cursor.u16(), weight: try cursor.u16(), port: try cursor.u16(), target: try cursor.name())
        case .ns?:
            data = .ns(try cursor.name())
        case .soa?:
            data = .soa(primary: try cursor.name(), mailbox: try cursor.name(), serial: try cursor.u32(), refresh: try cursor.u32(),
                        retry: try cursor.u32(), expire: try cursor.u32(), minimum: try cursor.u32())
        case .txt?:
            var strings: [String] = []
            while cursor.offset < end {
                let count = Int(try cursor.u8())
                strings.append(String(decoding: try cursor.take(count), as: UTF8.self))
            }
            data = .txt(strings)
        default:
            break
        }
        // The data must end where its length says.
        guard data == nil || cursor.offset == end else { throw Failure() }
        cursor.offset = end
        return (name, type, qclass, ttl, data)
    }

    /// A whole message as the writer makes it: flags, question, and every section.
    public struct Message: Equatable, Sendable {
        public var id: UInt16
        public var flags: UInt16
        public var questions: [DNSQuestion]
        public var answers: [DNSRecord]
        public var authority: [DNSRecord]
        public var additional: [DNSRecord]
        /// From an OPT record in the additional section.
        public var ednsPayloadSize: UInt16?
        public var extendedCode: UInt8 = 0

        public var isTruncated: Bool { flags & 0x0200 != 0 }
        public var isAuthoritative: Bool { flags & 0x0400 != 0 }
        public var code: UInt8 { UInt8(flags & 0xF) }
    }

    /// Nil for bytes that are not a well-formed message (trailing bytes included).
    public static func parseMessage(_ bytes: UnsafeBufferPointer<UInt8>) -> Message? {
        var cursor = Cursor(bytes: bytes)
        do throws(Failure) {
            let header = try header(&cursor)
            var message = Message(id: header.id, flags: header.flags, questions: [], answers: [], authority: [], additional: [])
            for _ in 0..<Int(header.counts.0) {
                message.questions.append(DNSQuestion(name: try cursor.name(), type: try cursor.u16(), qclass: try cursor.u16()))
            }
            func section(_ count: UInt16) throws(Failure) -> [DNSRecord] {
                var records: [DNSRecord] = []
                for _ in 0..<Int(count) {
                    let read = try record(&cursor)
                    if read.type == DNSType.opt.rawValue {
                        message.ednsPayloadSize = read.qclass
                        message.extendedCode = UInt8(read.ttl >> 24)
                        continue
                    }
                    guard let data = read.data else { throw Failure() }
                    records.append(DNSRecord(name: read.name, ttl: read.ttl, data: data))
                }
                return records
            }
            message.answers = try section(header.counts.1)
            message.authority = try section(header.counts.2)
            message.additional = try section(header.counts.3)
            guard cursor.offset == bytes.count else { return nil }
            return message
        } catch {
            return nil
        }
    }
}
