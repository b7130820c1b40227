import Foundation
import Testing
import Registry
@testable import Server
import JSON
import TestSupport
import HTTPParsing

/// The API with no sockets: the router, the handlers and their caches, on a fake clock.
@Suite struct RouterTests {
    var now = Instant(nanoseconds: 5_000_000_000)
    let api = NativeHarness(policy: RegistryPolicy(heartbeatTimeout: .seconds(30)), random: RandomSource(SplitMix64(state: 42)))

    private func call(_ method: HTTPMethod, _ target: String, _ body: String = "", at time: Instant? = nil) -> Response {
        guard let response = api.handle(method: method, path: target, body: body, now: time ?? now,
                                        wallClock: (time ?? now).nanoseconds + 1_800_000_000_000_000_000).response else {
            Issue.record("\(method.name) \(target) was not answered at once")
            return Response(status: 0, body: [])
        }
        return response
    }

    private func json(_ response: Response) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any] ?? [:]
    }

    private func addresses(_ response: Response) -> [String] {
        (json(response)["instances"] as? [[String: Any]] ?? []).compactMap { $0["address"] as? String }
    }

    private func text(_ response: Response) -> String {
        String(decoding: response.body, as: UTF8.self)
    }

    @Test mutating func discoverReflectsEveryChangeDespiteTheCache() {
        #expect(call(.post, "/register", #"{"service":"api","address":"a"}"#).status == 201)
        var reply = call(.get, "/discover/api")
        #expect(addresses(reply) == ["a"])
        let first = reply.index
        // Same tick, new instance: the cached body must not be served.
        #expect(call(.post, "/register", #"{"service":"api","address":"b"}"#).status == 201)
        reply = call(.get, "/discover/api")
        #expect(addresses(reply) == ["a", "b"])
        #expect(reply.index! > first!)
        // Time moves: uptimes move with it.
        now = now + .milliseconds(1_234)
        let instances = json(call(.get, "/discover/api"))["instances"] as? [[String: Any]] ?? []
        #expect(instances.map { $0["uptime_seconds"] as? Double } == [1.2, 1.2])
        #expect(call(.post, "/deregister", #"{"service":"api","address":"a"}"#).status == 200)
        #expect(addresses(call(.get, "/discover/api")) == ["b"])
        // A status change is a change too: DOWN leaves the default listing.
        #expect(call(.post, "/status", #"{"service":"api","address":"b","status":"DOWN"}"#).status == 200)
        #expect(addresses(call(.get, "/discover/api")) == [])
        #expect(addresses(call(.get, "/discover/api?status=any")) == ["b"])
    }

    @Test mutating func lastHeartbeatMovesWithoutAChangeIndex() throws {
        _ = call(.post, "/register", #"{"service":"api","address":"a"}"#)
        let first = call(.get, "/discover/api")
        let before = try #require((json(first)["instances"] as? [[String: Any]])?.first?["last_heartbeat"] as? String)
        now = now + .seconds(2)
        #expect(call(.post, "/heartbeat", #"{"service":"api","address":"a"}"#).status == 200)
        let second = call(.get, "/discover/api")
        #expect(second.index == first.index)
        let after = try #require((json(second)["instances"] as? [[String: Any]])?.first?["last_heartbeat"] as? String)
        #expect(after != before)
        let filtered = try #require((json(call(.get, "/discover/api?status=any"))["instances"] as? [[String: Any]])?.first)
        #expect(filtered["last_heartbeat"] as? String == after)
        #expect(filtered["uptime_seconds"] as? Double == 2.0)
    }

    @Test func everyInstanceFieldIsListed() throws {
        let body = #"{"service":"api","id":"i-1","address":"http://a:1","tags":["v2"],"metadata":{"b":"2","a":"1"},"#
            + #""weight":7,"zone":"eu-1a","status":"UP","ttl_seconds":12.5}"#
        #expect(call(.post, "/register", body).status == 201)
        let instance = try #require((json(call(.get, "/discover/api"))["instances"] as? [[String: Any]])?.first)
        #expect(instance["id"] as? String == "i-1")
        #expect(instance["tags"] as? [String] == ["v2"])
        #expect(instance["metadata"] as? [String: String] == ["a": "1", "b": "2"])
        #expect(instance["weight"] as? Int == 7)
        #expect(instance["zone"] as? String == "eu-1a")
        #expect(instance["status"] as? String == "UP")
        #expect(instance["ttl_seconds"] as? Double == 12.5)
        #expect(instance["protected"] as? Bool == false)
        #expect((instance["registered_at"] as? String)?.hasSuffix("Z") == true)
        // Metadata keys are listed sorted, whatever order they came in.
        #expect(text(call(.get, "/discover/api")).contains(#""metadata":{"a":"1","b":"2"}"#))
    }

    @Test mutating func expiredInstancesLeaveEveryReadAtTheirDeadline() {
        _ = call(.post, "/register", #"{"service":"api","address":"a"}"#)
        _ = call(.post, "/register", #"{"service":"web","address":"w"}"#, at: now + .seconds(10))
        let before = json(call(.get, "/services", at: now + .seconds(29)))
        #expect((before["services"] as? [String: Any])?.keys.sorted() == ["api", "web"])
        // No expiry cycle ran; the listing and discover must still leave "api" out.
        let after = json(call(.get, "/services", at: now + .seconds(30)))
        #expect((after["services"] as? [String: Any])?.keys.sorted() == ["web"])
        #expect(call(.get, "/discover/api", at: now + .seconds(30)).status == 404)
        #expect(call(.get, "/discover/web", at: now + .seconds(30)).status == 200)
    }

    @Test func filtersCombine() {
        _ = call(.post, "/register", #"{"service":"api","address":"a","tags":["v1"],"zone":"z1","metadata":{"tier":"gold"}}"#)
        _ = call(.post, "/register", #"{"service":"api","address":"b","tags":["v1","canary"],"zone":"z2"}"#)
        _ = call(.post, "/register", #"{"service":"api","address":"c","tags":["v2"],"zone":"z1","status":"STARTING"}"#)
        #expect(addresses(call(.get, "/discover/api?tag=v1")) == ["a", "b"])
        #expect(addresses(call(.get, "/discover/api?tag=v1&tag=canary")) == ["b"])
        #expect(addresses(call(.get, "/discover/api?zone=z1")) == ["a"])
        #expect(addresses(call(.get, "/discover/api?zone=z1&status=any")) == ["a", "c"])
        #expect(addresses(call(.get, "/discover/api?status=STARTING")) == ["c"])
        #expect(addresses(call(.get, "/discover/api?meta.tier=gold")) == ["a"])
        #expect(addresses(call(.get, "/discover/api?meta.tier=silver")) == [])
        #expect(json(call(.get, "/discover/api?tag=none"))["count"] as? Int == 0)
        #expect(addresses(call(.get, "/discover/api?limit=1")) == ["a"])
    }

    @Test func roundRobinRotatesAcrossCallers() {
        for address in ["a", "b", "c"] { _ = call(.post, "/register", #"{"service":"api","address":"\#(address)"}"#) }
        let picks = (0..<6).map { _ in addresses(call(.get, "/discover/api?pick=round-robin&limit=1")).first ?? "" }
        #expect(picks == ["a", "b", "c", "a", "b", "c"])
        #expect(addresses(call(.get, "/discover/api?pick=round-robin")).count == 3)
    }

    @Test func weightedPicksFollowTheWeights() {
        _ = call(.post, "/register", #"{"service":"api","address":"heavy","weight":900}"#)
        _ = call(.post, "/register", #"{"service":"api","address":"light","weight":100}"#)
        var heavy = 0
        for _ in 0..<2_000 where addresses(call(.get, "/discover/api?pick=weighted&limit=1")) == ["heavy"] { heavy += 1 }
        // 90 % expected; with 2,000 draws anything outside 85–95 % means the weights are ignored.
        #expect((1_700...1_900).contains(heavy), "heavy picked \(heavy) times of 2000")
        let shuffled = Set((0..<50).map { _ in addresses(call(.get, "/discover/api?pick=random")).joined() })
        #expect(shuffled == ["heavylight", "lightheavy"])
    }

    /// Over many instances a small limit takes the cheap draws (binary search over the summed
    /// weights, partial shuffle, a slice from the round-robin start): the same distributions.
    @Test func picksOverManyInstancesFollowTheSameRules() {
        for index in 0..<400 {
            let weight = index < 4 ? 1000 : 1
            _ = call(.post, "/register", #"{"service":"big","address":"a\#(index)","weight":\#(weight)}"#)
        }
        _ = call(.post, "/status", #"{"service":"big","address":"a0","status":"DOWN"}"#)
        // Weights 3 × 1000 (a0 is DOWN, so not a candidate) against 396 × 1: the heavy three
        // take 3000/3396 ≈ 88 % of the first places.
        var heavy = 0
        for _ in 0..<1_000 {
            let picked = addresses(call(.get, "/discover/big?pick=weighted&limit=3"))
            #expect(Set(picked).count == 3 && !picked.contains("a0"), "\(picked)")
            if ["a1", "a2", "a3"].contains(picked.first ?? "") { heavy += 1 }
        }
        #expect((830...930).contains(heavy), "heavy first \(heavy) times of 1000")
        let random = addresses(call(.get, "/discover/big?pick=random&limit=5"))
        #expect(Set(random).count == 5 && !random.contains("a0"))
        var seen = Set<String>()
        for _ in 0..<600 { seen.formUnion(addresses(call(.get, "/discover/big?pick=random&limit=2"))) }
        // 1,200 uniform draws over 399 reach 379 on average (399 · (1 − e⁻³)).
        #expect(seen.count > 330, "random picks reached only \(seen.count) of 399 instances")
        let first = addresses(call(.get, "/discover/big?pick=round-robin&limit=2"))
        let second = addresses(call(.get, "/discover/big?pick=round-robin&limit=2"))
        #expect(first.count == 2 && second.count == 2 && first[1] == second[0])
        // status=any includes the DOWN one; a limit without a pick is the first ones in order.
        #expect(addresses(call(.get, "/discover/big?status=any&limit=2")) == ["a0", "a1"])
        #expect(addresses(call(.get, "/discover/big?limit=2")) == ["a1", "a2"])
    }

    @Test func anotherInstancesIdIsNotTakenOverByAnAddress() {
        #expect(call(.post, "/register", #"{"service":"api","id":"web-1","address":"http://10.0.0.5:80"}"#).status == 201)
        let taken = call(.post, "/register", #"{"service":"api","address":"web-1"}"#)
        #expect(taken.status == 409)
        #expect(text(taken).contains(#"\"web-1\" is the id of another instance of api, registered at \"http://10.0.0.5:80\"; nothing was changed"#))
        #expect(call(.post, "/deregister", #"{"service":"api","address":"web-1"}"#).status == 404)
        #expect(call(.post, "/deregister", #"{"service":"api","id":"web-1"}"#).status == 200)
    }

    @Test func readsCarryTheChangeIndexAndParkWhenCurrent() {
        _ = call(.post, "/register", #"{"service":"api","address":"a"}"#)
        let index = call(.get, "/discover/api").index ?? 0
        #expect(index > 1)
        // Behind the current index: answered at once.
        #expect(api.handle(method: .get, path: "/discover/api?index=\(index - 1)", now: now).response?.status == 200)
        // At it: held.
        guard case .park(.service("api", _), let wait) = api.handle(method: .get, path: "/discover/api?index=\(index)&wait=2s", now: now) else {
            Issue.record("a blocking query at the current index must park")
            return
        }
        #expect(wait == .seconds(2))
        // A service that does not exist yet can be waited on.
        guard case .park = api.handle(method: .get, path: "/discover/later?index=0", now: now) else {
            Issue.record("a blocking query on a missing service must park")
            return
        }
        guard case .park(.services, let defaultWait) = api.handle(method: .get, path: "/services?index=\(api.changeIndex)", now: now) else {
            Issue.record("a blocking /services query must park")
            return
        }
        #expect(defaultWait == .seconds(300))
        guard case .stream(.service("api", _)) = api.handle(method: .get, path: "/watch/api", now: now) else {
            Issue.record("/watch/api must stream")
            return
        }
    }

    @Test(arguments: [
        ("/discover/api?tags=x", "unknown query parameter 'tags'"),
        ("/discover/api?status=sleeping", "query parameter 'status'"),
        ("/discover/api?pick=best", "query parameter 'pick'"),
        ("/discover/api?limit=0", "query parameter 'limit'"),
        ("/discover/api?index=-1", "query parameter 'index'"),
        ("/discover/api?wait=soon", "query parameter 'wait'"),
        ("/services?tags=x", "unknown query parameter 'tags'"),
        ("/services?order=best", "query parameter 'order' must be name or problems"),
        ("/services?limit=0", "query parameter 'limit' must be an integer from 1 to 10000"),
        ("/services?prefix=a%2Fb", "query parameter 'prefix' must be"),
        ("/discover/api?tag=%zz", "malformed percent-encoding"),
        ("/discover/api?__=1", "unknown query parameter '__'"),
        ("/discover/api?_x=1", "unknown query parameter '_x'"),
    ])
    func badQueriesAre400(target: String, expected: String) {
        let reply = call(.get, target)
        #expect(reply.status == 400)
        #expect(text(reply).contains(expected), "\(text(reply))")
    }

    /// jQuery's `cache: false` and many browser clients add `_=<time>`: ignored on every read,
    /// while the filters it sits beside still apply.
    @Test func aCacheBusterIsIgnored() {
        _ = call(.post, "/register", #"{"service":"api","address":"http://a:1","tags":["v2"]}"#)
        _ = call(.post, "/register", #"{"service":"api","address":"http://a:2"}"#)
        let plain = call(.get, "/discover/api?tag=v2")
        let busted = call(.get, "/discover/api?_=1700000000000&tag=v2")
        #expect(busted.status == 200)
        #expect(text(busted).contains("\"count\":1"))
        #expect(text(busted) == text(plain))
        #expect(call(.get, "/services?_=").status == 200)
        #expect(call(.get, "/discover/api?_").status == 200)
        guard case .stream = api.handle(method: .get, path: "/watch/api?_=5", now: now),
              case .stream = api.handle(method: .get, path: "/watch?_=5", now: now) else {
            Issue.record("a stream with a cache-buster must stream")
            return
        }
    }

    @Test func waitAcceptsUnitsAndIsCapped() {
        #expect(ReadQuery.parseWait("500ms") == .milliseconds(500))
        #expect(ReadQuery.parseWait("30s") == .seconds(30))
        #expect(ReadQuery.parseWait("5m") == .seconds(300))
        #expect(ReadQuery.parseWait("2.5") == .milliseconds(2_500))
        #expect(ReadQuery.parseWait("-1s") == nil)
        guard case .park(_, let wait) = api.handle(method: .get, path: "/discover/x?index=0&wait=1h", now: now) else {
            Issue.record("expected a park")
            return
        }
        #expect(wait == .seconds(600))
        // --max-wait lowers the cut.
        let impatient = NativeHarness(policy: RegistryPolicy(heartbeatTimeout: .seconds(30)), maximumWait: .seconds(2))
        guard case .park(_, let short) = impatient.handle(method: .get, path: "/services?index=5&wait=1h", now: now),
              case .park(_, let defaulted) = impatient.handle(method: .get, path: "/services?index=5", now: now) else {
            Issue.record("a blocking query with a short --max-wait must park")
            return
        }
        #expect(short == .seconds(2) && defaulted == .seconds(2))
    }

    @Test func errorsHaveOneShape() {
        let responses = [
            call(.post, "/register", "{"),
            call(.put, "/register"),
            call(.get, "/unknown"),
            call(.get, "/discover/bad%zz"),
            call(.post, "/status", #"{"service":"api","address":"a"}"#),
        ]
        #expect(responses.map(\.status) == [400, 405, 404, 400, 400])
        for response in responses {
            #expect(text(response).hasPrefix(#"{"status":"error","message":""#))
        }
        #expect(responses[1].allow?.description == "POST")
    }

    @Test func messagesAreEscapedJSON() {
        let response = call(.post, "/register", #"{"service":"api","address":"say \"hi\" \\ there"}"#)
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

    @Test func helpAndVersionStopBeforeAnythingElse() throws {
        #expect(try Config.parse(arguments: ["--version"], environment: [:]) == .version)
        #expect(try Config.parse(arguments: ["--port", "1", "-h"], environment: [:]) == .help)
        #expect(Config.usage.contains("--version"))
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
        #expect(config.heartbeatTimeout.secondsText == "0.25s")
    }

    private func config(_ arguments: [String], _ environment: [String: String] = [:]) throws -> Config? {
        guard case .run(let config) = try Config.parse(arguments: arguments, environment: environment) else { return nil }
        return config
    }

    @Test func persistenceIsOnByDefaultAndTheLaterChoiceWins() throws {
        let defaults = try #require(try config([]))
        #expect(defaults.persistenceDirectory == "registry-data")
        #expect(defaults.fsync == .everysec)
        #expect(defaults.registryPolicy.journaling)
        let inMemory = try #require(try config(["--in-memory"], ["REGISTRY_DATA_DIR": "/data"]))
        #expect(inMemory.persistenceDirectory == nil)
        #expect(!inMemory.registryPolicy.journaling)
        let flagWins = try #require(try config(["--data-dir", "/var/lib/registry"], ["REGISTRY_IN_MEMORY": "true"]))
        #expect(flagWins.persistenceDirectory == "/var/lib/registry")
        let fromEnvironment = try #require(try config([], ["REGISTRY_FSYNC": "ALWAYS", "REGISTRY_REPAIR": "1"]))
        #expect(fromEnvironment.fsync == .always)
        #expect(fromEnvironment.repair)
    }

    @Test(arguments: [
        (["--fsync", "sometimes"], [String: String](), "--fsync must be one of always, everysec, never, got 'sometimes'"),
        (["--in-memory=yes"], [:], "--in-memory takes no value, got 'yes'"),
        ([], ["REGISTRY_IN_MEMORY": "maybe"], "REGISTRY_IN_MEMORY must be true or false (1, yes, on / 0, no, off also work), got 'maybe'"),
        (["--data-dir", ""], [:], "--data-dir must not be empty, got ''"),
        (["--snapshot-min-log-bytes", "10"], [:], "--snapshot-min-log-bytes must be an integer from 1024 to 1099511627776, got '10'"),
    ])
    func badPersistenceSettingsAreNamed(arguments: [String], environment: [String: String], message: String) {
        #expect(throws: Config.Problem(message: message)) {
            try Config.parse(arguments: arguments, environment: environment)
        }
    }

    @Test func badEnvironmentIsNamed() {
        #expect(throws: Config.Problem(message: "REGISTRY_PORT must be an integer from 0 to 65535, or off, got 'x'")) {
            try Config.parse(arguments: [], environment: ["REGISTRY_PORT": "x"])
        }
    }
}
