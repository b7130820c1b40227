/// The DNS messages the registry reads and writes (RFC 1035, with RFC 2782's SRV, RFC 3596's
/// AAAA and RFC 6891's EDNS0): a query's header, question and OPT record in; a response with
/// answer, authority and additional sections out. Pure and allocation-light; no I/O.
public enum DNSType: UInt16, Sendable {
    case a = 1
    case ns = 2
    case cname = 5
    case soa = 6
    case ptr = 12
    case txt = 16
    case aaaa = 28
    case srv = 33
    case opt = 41
    case any = 255
}

public enum DNSResponseCode: UInt8, Sendable {
    case noError = 0
    case formatError = 1
    case serverFailure = 2
    case nameError = 3
    case notImplemented = 4
    case refused = 5

    public var name: String {
        switch self {
        case .noError: return "NOERROR"
        case .formatError: return "FORMERR"
        case .serverFailure: return "SERVFAIL"
        case .nameError: return "NXDOMAIN"
        case .notImplemented: return "NOTIMP"
        case .refused: return "REFUSED"
        }
    }
}

/// A domain name as its labels, in order, as sent (matching is the reader's, case-insensitive).
public struct DNSName: Hashable, Sendable, CustomStringConvertible {
    public var labels: [[UInt8]]

    public init(labels: [[UInt8]]) {
        self.labels = labels
    }

    /// `a.b.c.` (a trailing dot or not; empty labels are not names and give nil).
    public init?(_ text: String) {
        var parts = text.split(separator: ".", omittingEmptySubsequences: false).map { Array($0.utf8) }
        if parts.last?.isEmpty == true { parts.removeLast() }
        guard parts.allSatisfy({ !$0.isEmpty && $0.count <= 63 }), parts.reduce(1, { $0 + $1.count + 1 }) <= 255 else { return nil }
        labels = parts
    }

    /// Each label lower-cased (ASCII only, as DNS compares names).
    public var lowercased: DNSName {
        DNSName(labels: labels.map { $0.map { $0 >= 0x41 && $0 <= 0x5A ? $0 + 32 : $0 } })
    }

    public var description: String {
        labels.isEmpty ? "." : labels.map { String(decoding: $0, as: UTF8.self) }.joined(separator: ".") + "."
    }

    /// Whether the name ends with `suffix` (compared as given: lower-case both first).
    public func hasSuffix(_ suffix: DNSName) -> Bool {
        labels.count >= suffix.labels.count && Array(labels.suffix(suffix.labels.count)) == suffix.labels
    }

    /// This name's bytes on the wire, uncompressed.
    public var wireLength: Int { labels.reduce(1) { $0 + $1.count + 1 } }
}

public struct DNSQuestion: Equatable, Sendable {
    public var name: DNSName
    public var type: UInt16
    public var qclass: UInt16

    public init(name: DNSName, type: UInt16, qclass: UInt16 = 1) {
        self.name = name
        self.type = type
        self.qclass = qclass
    }
}

/// A query as read: what a response must echo, and what it asked.
public struct DNSQuery: Equatable, Sendable {
    public var id: UInt16
    public var opcode: UInt8
    public var recursionDesired: Bool
    public var checkingDisabled: Bool
    public var question: DNSQuestion
    /// The requester's UDP payload size from its OPT record (RFC 6891); nil without EDNS0.
    public var ednsPayloadSize: UInt16?
    /// The OPT record's version (0 is the only one; another is answered BADVERS).
    public var ednsVersion: UInt8 = 0
}

/// Why a message was not a query this server answers normally.
public enum DNSQueryFailure: Error, Equatable, Sendable {
    /// Not worth an answer: too short for a header, or a response (answering responses could
    /// start a loop between two servers).
    case drop
    /// A header that can be answered, with this code (FORMERR for a broken question,
    /// NOTIMP for an opcode other than QUERY).
    case answer(id: UInt16, opcode: UInt8, recursionDesired: Bool, code: DNSResponseCode)
}

public enum DNSRecordData: Equatable, Sendable {
    case a((UInt8, UInt8, UInt8, UInt8))
    case aaaa([UInt8])
    case srv(priority: UInt16, weight: UInt16, port: UInt16, target: DNSName)
    case soa(primary: DNSName, mailbox: DNSName, serial: UInt32, refresh: UInt32, retry: UInt32, expire: UInt32, minimum: UInt32)
    case ns(DNSName)
    case txt([String])

    public var type: DNSType {
        switch self {
        case .a: return .a
        case .aaaa: return .aaaa
        case .srv: return .srv
        case .soa: return .soa
        case .ns: return .ns
        case .txt: return .txt
        }
    }

    public static func == (lhs: DNSRecordData, rhs: DNSRecordData) -> Bool {
        switch (lhs, rhs) {
        case (.a(let l), .a(let r)): return l == r
        case (.aaaa(let l), .aaaa(let r)): return l == r
        case (.srv(let lp, let lw, let lport, let lt), .srv(let rp, let rw, let rport, let rt)):
            return lp == rp && lw == rw && lport == rport && lt == rt
        case (.soa(let a1, let b1, let c1, let d1, let e1, let f1, let g1), .soa(let a2, let b2, let c2, let d2, let e2, let f2, let g2)):
            return a1 == a2 && b1 == b2 && c1 == c2 && d1 == d2 && e1 == e2 && f1 == f2 && g1 == g2
        case (.ns(let l), .ns(let r)): return l == r
        case (.txt(let l), .txt(let r)): return l == r
        default: return false
        }
    }
}

public struct DNSRecord: Equatable, Sendable {
    public var name: DNSName
    public var ttl: UInt32
    public var data: DNSRecordData

    public init(name: DNSName, ttl: UInt32, data: DNSRecordData) {
        self.name = name
        self.ttl = ttl
        self.data = data
    }
}

public struct DNSResponse: Equatable, Sendable {
    public var id: UInt16
    public var opcode: UInt8 = 0
    public var authoritative = true
    public var recursionDesired = false
    public var checkingDisabled = false
    public var code: DNSResponseCode = .noError
    /// RFC 6891's extended code BADVERS (16): the query's EDNS version is not 0.
    public var badVersion = false
    public var question: DNSQuestion?
    public var answers: [DNSRecord] = []
    public var authority: [DNSRecord] = []
    public var additional: [DNSRecord] = []
    /// Our UDP payload size in an OPT record; nil: no OPT (the query had none).
    public var ednsPayloadSize: UInt16?

    public init(id: UInt16) {
        self.id = id
    }

    /// The answer to `query` with its header echoed, before any record is added.
    public init(answering query: DNSQuery) {
        id = query.id
        opcode = query.opcode
        recursionDesired = query.recursionDesired
        checkingDisabled = query.checkingDisabled
        question = query.question
    }
}
