import Testing
import Registry
@testable import Server

/// The API with no sockets: the router, the handlers and their caches, on a fake clock.
@Suite struct RouterTests {
    var now = Instant(nanoseconds: 5_000_000_000)
    let api = RegistryAPI(registry: Registry(heartbeatTimeout: .seconds(30)), logger: Logger(level: .error))

    private func text(_ response: Response) -> String {
        String(decoding: response.body, as: UTF8.self)
    }

    @Test mutating func discoverReflectsEveryChangeDespiteTheCache() {
        #expect(api.handle(method: .post, path: "/register", body: #"{"service":"api","address":"a"}"#, now: now).status == 201)
        #expect(text(api.handle(method: .get, path: "/discover/api", now: now))
                == #"{"service":"api","instances":[{"address":"a","uptime_seconds":0.00}],"count":1}"#)
        // Same tick, new instance: the cached body must not be served.
        #expect(api.handle(method: .post, path: "/register", body: #"{"service":"api","address":"b"}"#, now: now).status == 201)
        #expect(text(api.handle(method: .get, path: "/discover/api", now: now))
                == #"{"service":"api","instances":[{"address":"a","uptime_seconds":0.00},{"address":"b","uptime_seconds":0.00}],"count":2}"#)
        // Time moves: uptimes move with it.
        now = now + .milliseconds(1_234)
        #expect(text(api.handle(method: .get, path: "/discover/api", now: now))
                == #"{"service":"api","instances":[{"address":"a","uptime_seconds":1.23},{"address":"b","uptime_seconds":1.23}],"count":2}"#)
        #expect(api.handle(method: .post, path: "/deregister", body: #"{"service":"api","address":"a"}"#, now: now).status == 200)
        #expect(text(api.handle(method: .get, path: "/discover/api", now: now))
                == #"{"service":"api","instances":[{"address":"b","uptime_seconds":1.23}],"count":1}"#)
    }

    @Test mutating func expiredInstancesLeaveEveryReadAtTheirDeadline() {
        _ = api.handle(method: .post, path: "/register", body: #"{"service":"api","address":"a"}"#, now: now)
        _ = api.handle(method: .post, path: "/register", body: #"{"service":"web","address":"w"}"#, now: now + .seconds(10))
        #expect(text(api.handle(method: .get, path: "/services", now: now + .seconds(29)))
                == #"{"services":{"api":{"total_instances":1,"active_instances":1},"web":{"total_instances":1,"active_instances":1}},"total_services":2}"#)
        // No expiry cycle ran; the listing and discover must still leave "api" out.
        #expect(text(api.handle(method: .get, path: "/services", now: now + .seconds(30)))
                == #"{"services":{"web":{"total_instances":1,"active_instances":1}},"total_services":1}"#)
        #expect(api.handle(method: .get, path: "/discover/api", now: now + .seconds(30)).status == 404)
        #expect(api.handle(method: .get, path: "/discover/web", now: now + .seconds(30)).status == 200)
    }

    @Test func errorsHaveOneShape() {
        let responses = [
            api.handle(method: .post, path: "/register", body: "{", now: now),
            api.handle(method: .put, path: "/register", now: now),
            api.handle(method: .get, path: "/unknown", now: now),
            api.handle(method: .get, path: "/discover/bad%zz", now: now),
        ]
        #expect(responses.map(\.status) == [400, 405, 404, 400])
        for response in responses {
            #expect(text(response).hasPrefix(#"{"status":"error","message":""#))
        }
        #expect(responses[1].allow?.description == "POST")
    }

    @Test func messagesAreEscapedJSON() {
        let response = api.handle(method: .post, path: "/register", body: #"{"service":"api","address":"say \"hi\" \\ there"}"#, now: now)
        #expect(text(response) == #"{"status":"registered","message":"Service api registered at say \"hi\" \\ there"}"#)
    }
}

@Suite struct JSONParserTests {
    private func parse(_ text: String) throws(JSONParser.Failure) -> JSONValue {
        try JSONParser.parse(Array(text.utf8))
    }

    @Test func parsesEveryKindOfValue() throws {
        let value = try parse(#" {"a": [1, -2.5e3, true, false, null], "b": {"c": "d\u00e9\ud83d\ude00\n"}} "#)
        #expect(value == .object([
            JSONMember(name: "a", value: .array([.number(1), .number(-2500), .bool(true), .bool(false), .null])),
            JSONMember(name: "b", value: .object([JSONMember(name: "c", value: .string("dé😀\n"))])),
        ]))
        #expect(try parse(#""plain é""#) == .string("plain é"))
    }

    @Test(arguments: [
        ("", "unexpected end of input"), ("{", "unexpected end of input"), ("[1,]", "unexpected"),
        ("01", "unexpected data"), ("1.", "invalid number"), ("-", "invalid number"), ("1e", "invalid number"),
        ("tru", "invalid literal"), ("nul", "invalid literal"), ("\"abc", "unexpected end of input in a string"),
        (#""\x""#, "invalid escape"), (#""\u12""#, #"invalid \u escape"#), (#""\udc00""#, "lone surrogate"),
        (#""\ud800\u0041""#, "lone surrogate"), ("{1:2}", "member name"), (#"{"a" 1}"#, "expected ':'"),
        (#"{"a":1 "b":2}"#, "expected ','"), (#"{"a":1,"a":2}"#, "duplicate member name"), ("1e999", "out of range"),
    ])
    func refusesWhatIsNotJSON(input: String, expected: String) {
        #expect {
            _ = try parse(input)
        } throws: { error in
            (error as? JSONParser.Failure)?.message.contains(expected) == true
        }
    }

    @Test(arguments: [[0xC0, 0x80], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xE2, 0x82], [0x80], [0xFF]])
    func refusesInvalidUTF8(sequence: [UInt8]) {
        let bytes = Array("\"a".utf8) + sequence + Array("\"".utf8)
        #expect(throws: JSONParser.Failure.self) { try JSONParser.parse(bytes) }
    }

    @Test func duplicateNamesAreFoundInLargeObjectsToo() {
        let members = (0..<40).map { #""k\#($0)":\#($0)"# }.joined(separator: ",")
        #expect(throws: JSONParser.Failure.self) { try JSONParser.parse(Array(("{" + members + #","k39":0}"#).utf8)) }
        #expect(throws: Never.self) { try JSONParser.parse(Array(("{" + members + "}").utf8)) }
    }

    @Test func nestingIsBounded() {
        let ok = String(repeating: "[", count: JSONParser.maxDepth) + String(repeating: "]", count: JSONParser.maxDepth)
        #expect(throws: Never.self) { try JSONParser.parse(Array(ok.utf8)) }
        let deep = "[" + ok + "]"
        #expect(throws: JSONParser.Failure.self) { try JSONParser.parse(Array(deep.utf8)) }
    }
}

@Suite struct ConfigTests {
    @Test func defaultsMatchTheSeed() throws {
        guard case .run(let config) = try Config.parse(arguments: [], environment: [:]) else {
            Issue.record("expected a configuration")
            return
        }
        #expect(config.port == 5001)
        #expect(config.host == "0.0.0.0")
        #expect(config.heartbeatTimeout == .seconds(30))
        #expect(config.maxBodyBytes == 65536)
    }

    @Test func flagsOverrideTheEnvironmentAndBothForms() throws {
        let parsed = try Config.parse(arguments: ["--port=0", "--heartbeat-timeout", "0.25", "--log-level", "DEBUG"],
                                      environment: ["REGISTRY_PORT": "6000", "REGISTRY_IDLE_TIMEOUT": "5"])
        guard case .run(let config) = parsed else {
            Issue.record("expected a configuration")
            return
        }
        #expect(config.port == 0)
        #expect(config.heartbeatTimeout == .milliseconds(250))
        #expect(config.idleTimeout == .seconds(5))
        #expect(config.logLevel == .debug)
        #expect(config.heartbeatTimeout.secondsDescription == "0.25s")
    }

    @Test func badEnvironmentIsNamed() {
        #expect(throws: Config.Problem(message: "REGISTRY_PORT must be an integer from 0 to 65535, got 'x'")) {
            try Config.parse(arguments: [], environment: ["REGISTRY_PORT": "x"])
        }
    }
}
