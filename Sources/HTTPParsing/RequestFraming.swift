import Registry

/// Where each request on a connection begins and ends, worked out from the raw bytes before
/// evhttp parses them, with every framing rule of RFC 9112 that evhttp 2.1 does not enforce.
///
/// evhttp accepts a request with two `Content-Length` headers (and uses the first), a signed
/// length, a space before a header's colon (and then ignores the header), NUL bytes in values
/// (its C strings end there), lax chunk sizes, a missing `Host`, any version number, and a
/// body on a `GET`, which it does not read but parses as the next request. Each is a way to
/// make two parsers disagree about where a request ends: request smuggling. So the transport
/// holds every request head back until this state machine has seen all of it, lets evhttp
/// have only what follows the rules here, and turns everything else into a refusal that is
/// answered in order, after the requests before it, and closes the connection.
///
/// The rules, strictly: a request line `METHOD SP TARGET SP HTTP/1.x`; header lines
/// `name ":" OWS value OWS` with a token for a name and no control character but HTAB in a
/// value; lines end in CRLF or LF, and a CR anywhere else is refused; no obsolete line
/// folding; exactly one `Host` in HTTP/1.1; at most one `Content-Length`, digits only; no
/// `Transfer-Encoding` at all (a chunked body gets 411: send `Content-Length`); a body only
/// on the methods evhttp reads one for (POST, PUT, PATCH); the request line and headers
/// within `maxHeadBytes`. Empty lines before a request line are skipped, as RFC 9112 asks.
///
/// Pure: it sees bytes and returns what to do with them. `Transport` carries that out.
public struct RequestFraming {
    /// A refusal, answered in place of the request that broke a rule.
    public struct Rejection: Equatable {
        public let status: Int32
        public let message: String
        /// For 405: the methods the target does allow.
        public var allow: String?
    }

    public enum Phase: Equatable {
        /// Between requests: nothing of the next one has arrived.
        case idle
        /// Part of a request line or its headers has arrived; the header deadline runs.
        case head
        /// The head was let through; this many body bytes are still to come.
        case body(remaining: Int)
        /// A rule was broken: nothing more is let through.
        case rejected
    }

    /// What to do with the bytes waiting after the last call.
    public enum Step: Equatable {
        /// Let this many bytes through to evhttp (whole heads, and body bytes).
        case pass(Int)
        /// Drop this many bytes (empty lines before a request line).
        case discard(Int)
        /// Nothing more can be decided until more bytes arrive.
        case wait
        /// Let `pass` bytes through (the requests before), then refuse.
        case reject(pass: Int, Rejection)
    }

    public let maxHeadBytes: Int
    /// The methods allowed on a path, for a 405's `Allow` header.
    public let allowedMethods: (UnsafeBufferPointer<UInt8>) -> String

    public private(set) var phase: Phase = .idle
    /// Heads begun since the connection opened: tells one request's deadline from the next's.
    public private(set) var heads = 0
    /// Bytes of the current head scanned so far, from the start of the waiting bytes.
    private var scanned = 0
    /// Where the current line starts, from the start of the waiting bytes.
    private var lineStart = 0
    private var head = HeadFacts()

    /// What the head's lines have said so far.
    private struct HeadFacts {
        var sawRequestLine = false
        var method = Method.other
        var minorVersion = 1
        var hosts = 0
        var contentLengths = 0
        var contentLength = 0
        var transferEncoding: String?
        /// The methods the target allows, for a refusal at the end of the head.
        var allow = "GET, HEAD, POST"
        var methodName = ""
    }

    private enum Method: Equatable {
        case get, head, post, put, delete, options, patch, trace, other

        /// Whether evhttp 2.1 reads a body for this method (`evhttp_method_may_have_body`).
        var hasBody: Bool { self == .post || self == .put || self == .patch }
    }

    public init(maxHeadBytes: Int, allowedMethods: @escaping (UnsafeBufferPointer<UInt8>) -> String) {
        self.maxHeadBytes = maxHeadBytes
        self.allowedMethods = allowedMethods
    }

    /// Decides about the start of the `waiting` bytes not yet passed or discarded, of which
    /// `visible` is the start (at least the head limit and a line end, or all of them), and the
    /// first ones may have been scanned by an earlier call. Call again after carrying out a
    /// `pass` or `discard` (with the bytes that remain), until it answers `wait`.
    /// Whether the next call needs the waiting bytes themselves (a head is being scanned), or
    /// only their count (a body passes through unread).
    public var needsBytes: Bool {
        if case .body = phase { return false }
        return phase != .rejected
    }

    public mutating func next(waiting: Int, visible: UnsafeBufferPointer<UInt8>) -> Step {
        switch phase {
        case .rejected:
            return waiting == 0 ? .wait : .discard(waiting)
        case .body(let remaining):
            guard waiting > 0 else { return .wait }
            let passed = min(remaining, waiting)
            phase = remaining == passed ? .idle : .body(remaining: remaining - passed)
            return .pass(passed)
        case .idle, .head:
            return scanHead(visible)
        }
    }

    private mutating func scanHead(_ bytes: UnsafeBufferPointer<UInt8>) -> Step {
        if phase == .idle {
            guard !bytes.isEmpty else { return .wait }
            phase = .head
            heads += 1
            scanned = 0
            lineStart = 0
            head = HeadFacts()
        }
        while scanned < bytes.count {
            let byte = bytes[scanned]
            scanned += 1
            if byte != 0x0A {
                if scanned - lineStart > maxHeadBytes || scanned > maxHeadBytes + 2 {
                    return refuse(head.sawRequestLine
                        ? Rejection(status: 431, message: "the request's headers are over the server's limit (--max-header-bytes \(maxHeadBytes))")
                        : Rejection(status: 414, message: "the request line is over the server's limit (--max-header-bytes \(maxHeadBytes))"))
                }
                continue
            }
            // A whole line: lineStart..<scanned-1, without its CR.
            var end = scanned - 1
            if end > lineStart && bytes[end - 1] == 0x0D { end -= 1 }
            let line = UnsafeBufferPointer(rebasing: bytes[lineStart..<end])
            lineStart = scanned
            if !head.sawRequestLine {
                if line.isEmpty {
                    // An empty line before the request line: skipped, as RFC 9112 asks.
                    let skipped = scanned
                    phase = .idle
                    return .discard(skipped)
                }
                if let rejection = requestLine(line) { return refuse(rejection) }
                head.sawRequestLine = true
                continue
            }
            if line.isEmpty { return endOfHead(length: scanned) }
            if let rejection = headerLine(line) { return refuse(rejection) }
        }
        return .wait
    }

    private mutating func refuse(_ rejection: Rejection) -> Step {
        phase = .rejected
        return .reject(pass: 0, rejection)
    }

    // MARK: Lines

    private mutating func requestLine(_ line: UnsafeBufferPointer<UInt8>) -> Rejection? {
        if let bad = line.firstIndex(where: { $0 == 0x0D }) { return badByte(line[bad], where: "the request line") }
        guard let firstSpace = line.firstIndex(of: 0x20),
              let secondSpace = line[(firstSpace + 1)...].firstIndex(of: 0x20),
              firstSpace > 0, secondSpace > firstSpace + 1, secondSpace + 1 < line.count,
              !line[(secondSpace + 1)...].contains(0x20) else {
            return Rejection(status: 400, message: "malformed request line: it must be METHOD, a space, the target, a space and HTTP/1.1")
        }
        let method = UnsafeBufferPointer(rebasing: line[..<firstSpace])
        let target = UnsafeBufferPointer(rebasing: line[(firstSpace + 1)..<secondSpace])
        let version = UnsafeBufferPointer(rebasing: line[(secondSpace + 1)...])
        if let bad = version.first(where: { $0 <= 0x20 || $0 >= 0x7F }) {
            return badByte(bad, where: "the request line")
        }
        guard method.allSatisfy(Self.isTokenByte) else {
            return Rejection(status: 400, message: "malformed request line: the method is not a token")
        }
        if let bad = target.first(where: { $0 <= 0x20 || $0 >= 0x7F || $0 == UInt8(ascii: "#") }) {
            return Rejection(status: 400, message: "the request target contains \(Self.describe(bad)); percent-encode it")
        }
        switch String(decoding: version, as: UTF8.self) {
        case "HTTP/1.1": head.minorVersion = 1
        case "HTTP/1.0": head.minorVersion = 0
        case let other where other.hasPrefix("HTTP/"):
            return Rejection(status: 505, message: "HTTP version \(Violation.shown(other.dropFirst(5))) is not supported; use HTTP/1.1")
        default:
            return Rejection(status: 400, message: "malformed request line: the protocol must be HTTP/1.1 or HTTP/1.0")
        }
        switch String(decoding: method, as: UTF8.self) {
        case "GET": head.method = .get
        case "HEAD": head.method = .head
        case "POST": head.method = .post
        case "PUT": head.method = .put
        case "DELETE": head.method = .delete
        case "OPTIONS": head.method = .options
        case "PATCH": head.method = .patch
        case "TRACE": head.method = .trace
        default:
            // CONNECT, QUERY and every other method evhttp would answer 501 or mishandle.
            let path = Self.path(of: target)
            return Rejection(status: 405, message: "method \(Violation.shown(String(decoding: method, as: UTF8.self))) is not "
                + "allowed here; use \(allowedMethods(path))", allow: allowedMethods(path))
        }
        head.allow = allowedMethods(Self.path(of: target))
        head.methodName = String(decoding: method, as: UTF8.self)
        if target[0] != UInt8(ascii: "/") && !Self.isAbsoluteForm(target) && !(head.method == .options && target.count == 1 && target[0] == UInt8(ascii: "*")) {
            return Rejection(status: 400, message: "the request target must be a path starting with '/'")
        }
        return nil
    }

    private mutating func headerLine(_ line: UnsafeBufferPointer<UInt8>) -> Rejection? {
        if line[0] == 0x20 || line[0] == 0x09 {
            return Rejection(status: 400, message: "a header line starts with white space (obsolete line folding); put each header on one line")
        }
        guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else {
            return Rejection(status: 400, message: "a header line has no ':'")
        }
        let name = UnsafeBufferPointer(rebasing: line[..<colon])
        guard !name.isEmpty else { return Rejection(status: 400, message: "a header line has no name before its ':'") }
        if let bad = name.first(where: { !Self.isTokenByte($0) }) {
            let shown = Violation.shown(String(decoding: name.prefix { Self.isTokenByte($0) }, as: UTF8.self))
            return bad == 0x20 || bad == 0x09
                ? Rejection(status: 400, message: "header \(shown) has white space before its ':'")
                : Rejection(status: 400, message: "a header name contains \(Self.describe(bad))")
        }
        var valueStart = colon + 1
        var valueEnd = line.count
        while valueStart < valueEnd && (line[valueStart] == 0x20 || line[valueStart] == 0x09) { valueStart += 1 }
        while valueEnd > valueStart && (line[valueEnd - 1] == 0x20 || line[valueEnd - 1] == 0x09) { valueEnd -= 1 }
        let value = UnsafeBufferPointer(rebasing: line[valueStart..<valueEnd])
        if let bad = value.first(where: { ($0 < 0x20 && $0 != 0x09) || $0 == 0x7F }) {
            return badByte(bad, where: "the value of header \(Violation.shown(String(decoding: name, as: UTF8.self)))")
        }
        if Self.matches(name, "host") {
            head.hosts += 1
        } else if Self.matches(name, "content-length") {
            head.contentLengths += 1
            guard let length = DecimalText.unsigned(String(decoding: value, as: UTF8.self)) else {
                return Rejection(status: 400, message: "Content-Length must be a number of bytes in decimal digits, got "
                    + Violation.quoted(String(decoding: value, as: UTF8.self)))
            }
            head.contentLength = Int(length)
        } else if Self.matches(name, "transfer-encoding") {
            head.transferEncoding = (head.transferEncoding.map { $0 + ", " } ?? "") + String(decoding: value, as: UTF8.self)
        }
        return nil
    }

    private mutating func endOfHead(length: Int) -> Step {
        let rejection: Rejection?
        if head.minorVersion == 1 && head.hosts != 1 {
            rejection = Rejection(status: 400, message: head.hosts == 0
                ? "an HTTP/1.1 request needs a Host header" : "the request has \(head.hosts) Host headers; send one")
        } else if head.hosts > 1 {
            rejection = Rejection(status: 400, message: "the request has \(head.hosts) Host headers; send one")
        } else if let coding = head.transferEncoding {
            rejection = coding.lowercased().contains("chunked")
                ? Rejection(status: 411, message: "chunked request bodies are not accepted; send the body with a Content-Length")
                : Rejection(status: 501, message: "Transfer-Encoding \(Violation.quoted(coding)) is not supported; send the body as it is, with a Content-Length")
        } else if head.contentLengths > 1 {
            rejection = Rejection(status: 400, message: "the request has \(head.contentLengths) Content-Length headers; send one")
        } else if head.contentLength > 0 && !head.method.hasBody {
            // The body cannot be let through (evhttp would parse it as the next request). A
            // method the target does not serve anyway is told so; one it serves, that it
            // takes no body.
            let allowed = head.allow.split(separator: ",").map { $0.trimmingPrefix(" ") }.contains { $0 == head.methodName }
            rejection = allowed
                ? Rejection(status: 400, message: "\(head.methodName) takes no body, and the request has Content-Length \(head.contentLength)")
                : Rejection(status: 405, message: "method \(head.methodName) is not allowed here; use \(head.allow)", allow: head.allow)
        } else {
            rejection = nil
        }
        if let rejection { return refuse(rejection) }
        phase = head.contentLength > 0 ? .body(remaining: head.contentLength) : .idle
        scanned = 0
        lineStart = 0
        return .pass(length)
    }

    // MARK: Helpers

    private func badByte(_ byte: UInt8, where place: String) -> Rejection {
        Rejection(status: 400, message: "\(place) contains \(Self.describe(byte)), which HTTP does not allow there")
    }

    /// tchar of RFC 9110: the bytes a method or a header name may hold.
    public static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"):
            return true
        default:
            return "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }

    private static func describe(_ byte: UInt8) -> String {
        if byte == 0 { return "a NUL byte" }
        if byte == 0x0D { return "a bare CR" }
        if byte == 0x20 { return "a space" }
        if byte >= 0x21 && byte < 0x7F { return "'\(Character(Unicode.Scalar(byte)))'" }
        return "the byte 0x" + String(byte, radix: 16, uppercase: true)
    }

    /// Whether a header name is `lowercase`, ignoring ASCII case, with no allocation.
    private static func matches(_ name: UnsafeBufferPointer<UInt8>, _ lowercase: StaticString) -> Bool {
        guard name.count == lowercase.utf8CodeUnitCount else { return false }
        let expected = lowercase.utf8Start
        for index in 0..<name.count {
            let byte = name[index]
            if (byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte) != expected[index] { return false }
        }
        return true
    }

    private static func isAbsoluteForm(_ target: UnsafeBufferPointer<UInt8>) -> Bool {
        for scheme in ["http://", "https://"] where target.count > scheme.utf8.count {
            if zip(target, scheme.utf8).allSatisfy({ $0 | 0x20 == $1 | 0x20 }) { return true }
        }
        return false
    }

    /// The path of a target, for `Allow`: up to the query, after an absolute form's authority.
    private static func path(of target: UnsafeBufferPointer<UInt8>) -> UnsafeBufferPointer<UInt8> {
        var start = 0
        if isAbsoluteForm(target) {
            let schemeEnd = (target.firstIndex(of: UInt8(ascii: ":")) ?? 0) + 3
            start = target[schemeEnd...].firstIndex(of: UInt8(ascii: "/")) ?? target.count
        }
        let end = target[start...].firstIndex(of: UInt8(ascii: "?")) ?? target.count
        return UnsafeBufferPointer(rebasing: target[start..<end])
    }
}
