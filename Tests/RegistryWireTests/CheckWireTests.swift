import JSON
import Registry
import RegistryWire
import Testing

/// `check` and `checks` in a registration: Go durations, Consul's default ids, headers in
/// both of Consul's forms, and a clear refusal for each wrong shape.
@Suite struct CheckWireTests {
    private func decode(_ text: String) -> Result<RegistrationRequest, WireProblem> {
        Array(text.utf8).withUnsafeBufferPointer { RegistrationRequest.decode($0) }
    }

    private func message(_ text: String) -> String? {
        if case .failure(let problem) = decode(text) { return problem.message }
        return nil
    }

    @Test func goDurationsParseAndPrint() {
        #expect(DurationText.parse("10s") == .seconds(10))
        #expect(DurationText.parse("1m30s") == .seconds(90))
        #expect(DurationText.parse("1.5h") == .seconds(5400))
        #expect(DurationText.parse("250ms") == .milliseconds(250))
        #expect(DurationText.parse("120000ms") == .seconds(120))
        #expect(DurationText.parse("3us") == .microseconds(3))
        #expect(DurationText.parse("0") == .zero)
        for bad in ["", "10", "s", "-1s", "1.2.3s", "1d", "10 s", "1e3s", "999999999h"] {
            #expect(DurationText.parse(bad) == nil, "\(bad)")
        }
        #expect(DurationText.format(.seconds(10)) == "10s")
        #expect(DurationText.format(.seconds(90)) == "1m30s")
        #expect(DurationText.format(.milliseconds(250)) == "250ms")
        #expect(DurationText.format(.seconds(3600)) == "1h0m0s")
    }

    @Test func oneCheckAndAListDecodeWithConsulsDefaultIDs() throws {
        let one = try decode(#"{"service":"api","address":"http://127.0.0.1:8001","check":{"http":"http://127.0.0.1:8001/health","interval":"5s","timeout":1.5,"deregister_after":"30s","headers":{"X-A":"1","X-B":"2"},"method":"head"}}"#).get()
        let check = try #require(one.fields.checks?.first)
        #expect(check.id == "service:http://127.0.0.1:8001")
        #expect(check.interval == .seconds(5) && check.timeout == .milliseconds(1500) && check.deregisterAfter == .seconds(30))
        #expect(check.status == .critical)
        guard case .http(let http) = check.probe else { Issue.record("not http"); return }
        #expect(http.method == "HEAD")
        #expect(http.headers == [MetadataEntry("X-A", "1"), MetadataEntry("X-B", "2")])

        let list = try decode(#"{"service":"api","address":"a","id":"i-1","checks":[{"tcp":"127.0.0.1:5432"},{"tcp":"[::1]:80","id":"mine","status":"passing"}]}"#).get()
        #expect(list.fields.checks?.map(\.id) == ["service:i-1:1", "mine"])
        #expect(list.fields.checks?.first?.probe == .tcp(host: "127.0.0.1", port: 5432))
        #expect(list.fields.checks?.last?.probe == .tcp(host: "::1", port: 80))
        #expect(list.fields.checks?.first?.interval == CheckDefinition.defaultInterval)
        #expect(list.fields.checks?.first?.timeout == .seconds(10))
        #expect(list.fields.checks?.last?.status == .passing)

        // What the client encodes decodes to itself.
        let again = try one.encode().withUnsafeBufferPointer { RegistrationRequest.decode($0) }.get()
        #expect(again == one)
        let cleared = try decode(#"{"service":"api","address":"a","checks":null}"#).get()
        #expect(cleared.fields.checks == [])
        #expect(try decode(#"{"service":"api","address":"a"}"#).get().fields.checks == nil)
    }

    @Test func wrongShapesAreRefusedNamingTheField() {
        #expect(message(#"{"service":"a","address":"b","check":{"http":"x","tcp":"y"}}"#)?.contains("both 'http' and 'tcp'") == true)
        #expect(message(#"{"service":"a","address":"b","check":{"interval":"1s"}}"#)?.contains("needs 'http'") == true)
        #expect(message(#"{"service":"a","address":"b","check":{"tcp":"nohost"}}"#)?.contains("host:port") == true)
        #expect(message(#"{"service":"a","address":"b","check":{"tcp":"h:1","interval":"soon"}}"#)?.contains("check.interval' must be a duration") == true)
        #expect(message(#"{"service":"a","address":"b","check":{"tcp":"h:1","intervall":"1s"}}"#)?.contains("unknown field") == true)
        #expect(message(#"{"service":"a","address":"b","check":{"tcp":"h:1","status":"fine"}}"#)?.contains("passing, warning or critical") == true)
        #expect(message(#"{"service":"a","address":"b","checks":[{"tcp":"h:1"},3]}"#)?.contains("checks[1]") == true)
        #expect(message(#"{"service":"a","address":"b","check":{"tcp":"h:1"},"checks":[]}"#)?.contains("not both") == true)
        #expect(message(#"{"service":"a","address":"b","check":{"http":"http://x/","headers":{"A":1}}}"#)?.contains("must be a string") == true)
        // One value per header in the native API (lists are Consul's form), and no nulls.
        #expect(message(#"{"service":"a","address":"b","check":{"http":"http://x/","headers":{"A":["1"]}}}"#)?.contains("must be a string") == true)
        #expect(message(#"{"service":"a","address":"b","check":{"http":"http://x/","status":null}}"#)?.contains("must be a string") == true)
        #expect(message(#"{"service":"a","address":"b","check":{"tcp":"h:1","interval":null}}"#) != nil)
    }
}
