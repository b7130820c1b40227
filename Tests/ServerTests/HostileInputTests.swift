import Foundation
import Testing
import Registry
@testable import Server
import JSON
import TestSupport
import HTTPParsing

/// Hostile input through the router, as classes: every numeric field and parameter with
/// every extreme a client can write, and bodies from a generator. Nothing may trap, and a
/// refused request must change nothing.
@Suite struct HostileInputTests {
    let now = Instant(nanoseconds: 5_000_000_000)
    let api = NativeHarness(policy: RegistryPolicy(heartbeatTimeout: .seconds(30)), random: RandomSource(SplitMix64(state: 1)))

    private func call(_ method: HTTPMethod, _ target: String, _ body: String = "") -> Response {
        api.handle(method: method, path: target, body: body, now: now, wallClock: now.nanoseconds).response
            ?? Response(status: 0, body: [])
    }

    private func message(_ response: Response) -> String {
        ((try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any])?["message"] as? String ?? ""
    }

    /// Every JSON number form that is not a sensible value for the field.
    static let extremeNumbers = [
        "-1e10", "1e300", "-1e300", "1e308", "-1e308", "-0", "-0.0", "0", "1e-300", "4.9e-324",
        "123456789012345678901234567890", "-123456789012345678901234567890", "9223372036854775807",
        "9223372036854775808", "-9223372036854775809", "18446744073709551616", "1.5", "-1", "1E400",
    ]

    @Test(arguments: extremeNumbers)
    func extremeNumbersInEveryNumericFieldAreRefusedCleanly(number: String) {
        // 1.5 is a fine TTL (1.5 s), just not a weight.
        for field in ["weight", "ttl_seconds"] where !(field == "ttl_seconds" && number == "1.5") {
            let before = api.changeIndex
            let reply = call(.post, "/register", #"{"service":"api","address":"a","\#(field)":\#(number)}"#)
            #expect(reply.status == 400, "\(field)=\(number) answered \(reply.status)")
            #expect(message(reply).contains(field) || message(reply).contains("number out of range"), "\(message(reply))")
            #expect(api.changeIndex == before)
        }
    }

    @Test func aHugeTTLIsReportedAsSent() {
        #expect(message(call(.post, "/register", #"{"service":"api","address":"a","ttl_seconds":1e300}"#))
                == "ttl_seconds must be from 1s to 3600s on this server, got 1e+300")
        #expect(message(call(.post, "/register", #"{"service":"api","address":"a","ttl_seconds":-1e10}"#))
                == "ttl_seconds must be from 1s to 3600s on this server, got -10000000000")
    }

    @Test(arguments: ["NaN", "Infinity", "-Infinity", "nan", "inf", "+1", ".5", "5.", "0x10", "1e", "--1", "01"])
    func numberLikeLiteralsAreNotJSON(literal: String) {
        for field in ["weight", "ttl_seconds"] {
            let reply = call(.post, "/register", #"{"service":"api","address":"a","\#(field)":\#(literal)}"#)
            #expect(reply.status == 400)
            #expect(message(reply).hasPrefix("request body is not valid JSON"), "\(message(reply))")
        }
    }

    @Test(arguments: ["0x10", "+5", "1e3", "-1", "inf", "nan", " 5", "5 ", "99999999999999999999", "5.", ".5", "", "1_000", "٣"])
    func numericQueryParametersTakeDecimalDigitsOnly(value: String) {
        let encoded = value.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? value
        #expect(call(.get, "/discover/api?index=\(encoded)").status == 400, "index=\(value)")
        #expect(call(.get, "/discover/api?limit=\(encoded)").status == 400, "limit=\(value)")
        #expect(call(.get, "/services?index=\(encoded)").status == 400, "index=\(value)")
        // A long wait is a valid decimal: it is cut to the longest wait, as Consul does.
        if value != "99999999999999999999" {
            #expect(call(.get, "/discover/api?index=1&wait=\(encoded)").status == 400, "wait=\(value)")
        }
    }

    @Test func waitTakesDecimalsWithUnits() {
        for good in ["0", "2.5", "500ms", "30s", "5m", "1h", "0.5s"] {
            #expect(ReadQuery.parseWait(good) != nil, "\(good)")
        }
        for bad in ["0x10", "1e3", "-1", "+1", "inf", "nan", "5.", ".5", "s", "ms", "10 s", "1h30m"] {
            #expect(ReadQuery.parseWait(bad) == nil, "\(bad)")
        }
    }

    @Test func whateverIsRegisteredThroughTheAPICanBeReachedAgain() {
        var random = SplitMix64(state: 99)
        let alphabet = Array("abcXYZ019:/._-~!$&'()*+,;=@?éß東🙂 ".unicodeScalars)
        func text(_ length: Int) -> String {
            var view = String.UnicodeScalarView()
            for _ in 0..<length { view.append(alphabet[Int.random(in: 0..<alphabet.count, using: &random)]) }
            return String(view)
        }
        func quoted(_ value: String) -> String {
            var writer = JSONWriter()
            writer.string(value)
            return String(decoding: writer.bytes, as: UTF8.self)
        }
        for round in 0..<300 {
            let address = text(Int.random(in: 1...Violation.maxAddressLength, using: &random))
            let id = Bool.random(using: &random) ? text(Int.random(in: 1...Violation.maxIDLength, using: &random)) : nil
            let name = id.map { #""id":\#(quoted($0)),"# } ?? ""
            let reference = #"{"service":"s","# + name + #""address":\#(quoted(address))"#
            #expect(call(.post, "/register", reference + "}").status == 201, "round \(round)")
            #expect(call(.post, "/heartbeat", reference + "}").status == 200, "round \(round)")
            #expect(call(.post, "/status", reference + #","status":"DOWN"}"#).status == 200, "round \(round)")
            #expect(call(.post, "/deregister", reference + "}").status == 200, "round \(round)")
        }
    }

    /// Bodies assembled from the fields the API knows and values of every JSON kind, with
    /// random damage: whatever the answer, nothing traps, a refusal changes nothing, and
    /// every refusal is the one error shape.
    @Test func generatedBodiesNeverTrapAndRefusalsChangeNothing() {
        var random = SplitMix64(state: 2026)
        let names = ["service", "id", "address", "tags", "metadata", "weight", "zone", "status", "ttl_seconds", "x", ""]
        let values = ["\"api\"", "\"a\"", "\"\"", "null", "true", "0", "-0", "1e300", "-1e10", "7", "100", "[]", "[\"t\"]",
                      "[1]", "{}", "{\"k\":\"v\"}", "{\"k\":1}", "\"UP\"", "\"down\"", "\"\\u2028\"", "\"\\u0000\"", "[[[[]]]]",
                      "\"\\ud800\"", "12.5", "3600", "3601"]
        let routes = ["/register", "/heartbeat", "/deregister", "/status"]
        for _ in 0..<3000 {
            var members: [String] = []
            for _ in 0..<Int.random(in: 0...6, using: &random) {
                let name = names[Int.random(in: 0..<names.count, using: &random)]
                let value = values[Int.random(in: 0..<values.count, using: &random)]
                members.append("\"\(name)\":\(value)")
            }
            var body = Array(("{" + members.joined(separator: ",") + "}").utf8)
            if Int.random(in: 0..<4, using: &random) == 0, !body.isEmpty {
                body[Int.random(in: 0..<body.count, using: &random)] = UInt8.random(in: 0...255, using: &random)
            }
            let before = api.changeIndex
            let route = routes[Int.random(in: 0..<routes.count, using: &random)]
            let reply = body.withUnsafeBufferPointer { bytes in
                Array(route.utf8).withUnsafeBufferPointer { path in
                    api.handle(method: .post, path: path, body: bytes, now: now).response
                }
            }
            guard let reply else {
                Issue.record("a write was not answered at once")
                continue
            }
            if reply.status >= 400 {
                #expect(api.changeIndex == before, "a refused \(route) changed the state: \(String(decoding: body, as: UTF8.self))")
                let shape = (try? JSONSerialization.jsonObject(with: Data(reply.body))) as? [String: Any]
                #expect(shape?["status"] as? String == "error" || shape?["status"] as? String == "not_found")
            }
        }
    }
}
