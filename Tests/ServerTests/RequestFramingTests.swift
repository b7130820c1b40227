import Testing
@testable import Server
import HTTPParsing

/// The framing rules on raw bytes, with no sockets: what is let through, what is refused
/// and with which status.
@Suite struct RequestFramingTests {
    private func allow(_ path: UnsafeBufferPointer<UInt8>) -> String { "GET, HEAD" }

    /// Feeds `text` in one piece and carries out every step, as the transport does.
    /// Returns the bytes let through and the refusal, if any.
    private func run(_ text: String, chunks: Int = 1) -> (passed: String, refused: RequestFraming.Rejection?) {
        var framing = RequestFraming(maxHeadBytes: 1024, allowedMethods: allow)
        let bytes = Array(text.utf8)
        var waiting: [UInt8] = []
        var passed: [UInt8] = []
        let size = max(1, (bytes.count + chunks - 1) / chunks)
        var offset = 0
        while offset < bytes.count || !waiting.isEmpty {
            if offset < bytes.count {
                waiting += bytes[offset..<min(bytes.count, offset + size)]
                offset += size
            }
            loop: while true {
                let step = waiting.withUnsafeBufferPointer { framing.next(waiting: $0.count, visible: $0) }
                switch step {
                case .wait:
                    break loop
                case .pass(let count):
                    passed += waiting.prefix(count)
                    waiting.removeFirst(count)
                case .discard(let count):
                    waiting.removeFirst(count)
                case .reject(let count, let rejection):
                    passed += waiting.prefix(count)
                    return (String(decoding: passed, as: UTF8.self), rejection)
                }
            }
            if offset >= bytes.count { break }
        }
        return (String(decoding: passed, as: UTF8.self), nil)
    }

    @Test(arguments: [1, 3, 1000])
    func wellFormedRequestsPassWholeInAnyChunking(chunks: Int) {
        let requests = "GET /health HTTP/1.1\r\nHost: a\r\n\r\n"
            + "POST /register HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
            + "GET /x HTTP/1.0\n\n"
            + "HEAD http://a/b?c HTTP/1.1\r\nhost: a\r\nX-Empty:\r\nX-Tab:\tv\t\r\n\r\n"
        let result = run(requests, chunks: chunks)
        #expect(result.refused == nil)
        #expect(result.passed == requests)
    }

    @Test func emptyLinesBeforeARequestAreSkipped() {
        let result = run("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(result.refused == nil)
        #expect(result.passed == "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    }

    @Test(arguments: [
        // Request smuggling: conflicting or odd lengths, hidden or odd transfer codings.
        ("GET /health HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: 44\r\n\r\n", 400, "2 Content-Length headers"),
        ("POST /register HTTP/1.1\r\nHost: a\r\nContent-Length: +42\r\n\r\n", 400, "decimal digits"),
        ("POST /register HTTP/1.1\r\nHost: a\r\nContent-Length: 4 2\r\n\r\n", 400, "decimal digits"),
        ("POST /register HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400, "decimal digits"),
        ("POST /register HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", 400, "decimal digits"),
        ("POST /register HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x2d\r\n", 411, "chunked"),
        ("POST /register HTTP/1.1\r\nHost: a\r\ntransfer-encoding: gzip, chunked\r\n\r\n", 411, "chunked"),
        ("POST /register HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "not supported"),
        ("POST /register HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n", 400, "white space before its ':'"),
        ("POST /register HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\nhello", 400, "white space before its ':'"),
        ("GET /health HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello", 400, "GET takes no body"),
        ("DELETE /x HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx", 405, "DELETE is not allowed"),
        ("TRACE /register HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx", 405, "TRACE is not allowed"),
        ("GET /health HTTP/1.1\r\nHost: a\r\nX: a\u{0}b\r\n\r\n", 400, "a NUL byte"),
        ("GET /health HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400, "a bare CR"),
        ("GET /health HTTP/1.1\r\nHost: a\r\nX: a\u{1}b\r\n\r\n", 400, "0x1"),
        ("GET /health HTTP/1.1\r\nHost: a\r\nX: a\r\n  folded\r\n\r\n", 400, "line folding"),
        ("GET /health HTTP/1.1\r\nHost: a\r\nno colon\r\n\r\n", 400, "no ':'"),
        ("GET /health HTTP/1.1\r\nHost: a\r\n: v\r\n\r\n", 400, "no name"),
        ("GET /health HTTP/1.1\r\nHost: a\r\nX(y): v\r\n\r\n", 400, "'('"),
        // Host, as RFC 9112 requires it.
        ("GET /health HTTP/1.1\r\n\r\n", 400, "needs a Host"),
        ("GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "2 Host headers"),
        ("GET /health HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400, "2 Host headers"),
        // The request line.
        ("GET /health HTTP/1.99999999999\r\nHost: a\r\n\r\n", 505, "1.99999999999 is not supported"),
        ("GET /health HTTP/2.0\r\nHost: a\r\n\r\n", 505, "not supported"),
        ("GET /health FOO/1.1\r\nHost: a\r\n\r\n", 400, "HTTP/1.1 or HTTP/1.0"),
        ("GET /health\r\nHost: a\r\n\r\n", 400, "malformed request line"),
        ("GET  /health HTTP/1.1\r\nHost: a\r\n\r\n", 400, "malformed request line"),
        ("GET /he alth HTTP/1.1\r\nHost: a\r\n\r\n", 400, "malformed request line"),
        ("GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", 400, "'#'"),
        ("GET /a\u{7F} HTTP/1.1\r\nHost: a\r\n\r\n", 400, "0x7F"),
        ("GET /é HTTP/1.1\r\nHost: a\r\n\r\n", 400, "percent-encode"),
        ("GET health HTTP/1.1\r\nHost: a\r\n\r\n", 400, "starting with '/'"),
        ("G@T /health HTTP/1.1\r\nHost: a\r\n\r\n", 400, "not a token"),
        ("CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n", 405, "CONNECT"),
        ("QUERY /health HTTP/1.1\r\nHost: a\r\n\r\n", 405, "QUERY"),
        ("get /health HTTP/1.1\r\nHost: a\r\n\r\n", 405, "get"),
    ])
    func everyFramingRuleIsEnforced(request: String, status: Int, message: String) {
        let result = run(request)
        #expect(result.refused?.status == Int32(status), "\(request.debugDescription)")
        #expect(result.refused?.message.contains(message) == true, "\(result.refused?.message ?? "nothing refused")")
        // Nothing of the request that broke the rule reaches evhttp.
        #expect(result.passed.isEmpty)
    }

    @Test func aRefusalComesAfterTheRequestsBeforeIt() {
        let good = "GET /health HTTP/1.1\r\nHost: a\r\n\r\nPOST /heartbeat HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}"
        let result = run(good + "GET /health HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: 9\r\n\r\n")
        #expect(result.passed == good)
        #expect(result.refused?.status == 400)
    }

    @Test func a405NamesTheMethodsThePathAllows() {
        let result = run("PROPFIND /discover/x HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(result.refused?.status == 405)
        #expect(result.refused?.allow.map { "\($0)" } == "GET, HEAD")
    }

    @Test func oversizedHeadsAre414Or431() {
        #expect(run("GET /" + String(repeating: "a", count: 2000) + " HTTP/1.1\r\n\r\n").refused?.status == 414)
        #expect(run("GET / HTTP/1.1\r\nHost: a\r\nX: " + String(repeating: "a", count: 2000) + "\r\n\r\n").refused?.status == 431)
        // Within the limit, it passes.
        #expect(run("GET / HTTP/1.1\r\nHost: a\r\nX: " + String(repeating: "a", count: 900) + "\r\n\r\n").refused == nil)
    }

    @Test func theHeadIsHeldUntilItIsComplete() {
        var framing = RequestFraming(maxHeadBytes: 1024, allowedMethods: allow)
        let partial = Array("GET /health HTTP/1.1\r\nHost: a\r\n".utf8)
        let step = partial.withUnsafeBufferPointer { framing.next(waiting: $0.count, visible: $0) }
        #expect(step == .wait)
        #expect(framing.phase == .head)
        let whole = partial + Array("\r\n".utf8)
        let next = whole.withUnsafeBufferPointer { framing.next(waiting: $0.count, visible: $0) }
        #expect(next == .pass(whole.count))
        #expect(framing.phase == .idle)
    }

    @Test func aBodyPassesAsItArrivesAndIsCountedExactly() {
        var framing = RequestFraming(maxHeadBytes: 1024, allowedMethods: allow)
        let head = Array("POST /register HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n".utf8)
        _ = head.withUnsafeBufferPointer { framing.next(waiting: $0.count, visible: $0) }
        #expect(framing.phase == .body(remaining: 10))
        let empty = UnsafeBufferPointer<UInt8>(start: nil, count: 0)
        #expect(framing.next(waiting: 4, visible: empty) == .pass(4))
        #expect(framing.phase == .body(remaining: 6))
        // More than the body: only the body passes; the rest is the next request's.
        #expect(framing.next(waiting: 50, visible: empty) == .pass(6))
        #expect(framing.phase == .idle)
    }
}
