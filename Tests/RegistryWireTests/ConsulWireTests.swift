import Registry
import RegistryWire
import Testing

/// Consul's registration body as its clients send it: field names in any case and with or
/// without underscores, Go durations or nanoseconds, Consul's default check ids, and the
/// native registration it becomes.
@Suite struct ConsulWireTests {
    private func decode(_ text: String) -> Result<ConsulRegistration, WireProblem> {
        Array(text.utf8).withUnsafeBufferPointer { ConsulRegistration.decode($0) }
    }

    private func message(_ text: String) -> String? {
        if case .failure(let problem) = decode(text) { return problem.message }
        return nil
    }

    @Test func pythonConsulsLowerCaseBodyDecodes() throws {
        // What python-consul 1.1.0 sends for register(name, service_id, address, port, tags, check=Check.http(…)).
        let body = #"{"name": "user-service", "enabletagoverride": false, "id": "u-1", "address": "127.0.0.1", "port": 8001, "tags": ["v1"], "#
            + #""check": {"http": "http://127.0.0.1:8001/health", "interval": "10s", "timeout": "2s", "DeregisterCriticalServiceAfter": "30s"}}"#
        let registration = try decode(body).get()
        #expect(registration.name == "user-service" && registration.id == "u-1" && registration.port == 8001)
        let check = try #require(registration.checks?.first)
        #expect(check.id == "service:u-1")
        #expect(check.name == "Service 'user-service' check")
        #expect(check.interval == .seconds(10) && check.timeout == .seconds(2) && check.deregisterAfter == .seconds(30))
        #expect(check.status == .critical)
        let request = registration.request(clientAddress: "10.9.9.9")
        #expect(request.address == "http://127.0.0.1:8001")
        #expect(request.fields.ttl == .never)
        #expect(request.fields.tags == ["v1"])
    }

    @Test func fieldNamesMatchWithoutCaseOrUnderscores() throws {
        let registration = try decode(#"{"NAME":"a","Check":{"TTL":"5s","deregister_critical_service_after":"1m","CHECKID":"mine","Status":"passing"}}"#).get()
        let check = try #require(registration.checks?.first)
        #expect(check.id == "mine" && check.probe == .ttl(.seconds(5)) && check.deregisterAfter == .seconds(60) && check.status == .passing)
        #expect(registration.id == "a", "the id defaults to the name")
        // Go's own encoding of a duration: nanoseconds.
        let numbers = try decode(#"{"Name":"a","Check":{"TCP":"[::1]:9","Interval":1500000000}}"#).get()
        #expect(numbers.checks?.first?.interval == .milliseconds(1500))
        #expect(numbers.checks?.first?.timeout == ConsulRegistration.defaultTimeout)
        #expect(numbers.checks?.first?.probe == .tcp(host: "::1", port: 9))
    }

    @Test func severalChecksAreNumberedAndEmptyOnesSkipped() throws {
        let registration = try decode(#"{"Name":"a","ID":"x","Check":{"TTL":"5s"},"Checks":[{"TTL":"6s"},{},null,{"HTTP":"http://h/","Interval":"1s","Header":{"A":["1","2"]}}]}"#).get()
        #expect(registration.checks?.map(\.id) == ["service:x:1", "service:x:2", "service:x:3"])
        guard case .http(let http)? = registration.checks?.last?.probe else {
            Issue.record("not an HTTP check")
            return
        }
        #expect(http.headers == [MetadataEntry("A", "1"), MetadataEntry("A", "2")])
        #expect(try decode(#"{"Name":"a"}"#).get().checks == nil, "no check fields: the checks are kept")
        #expect(try decode(#"{"Name":"a","Checks":[]}"#).get().checks == [], "an empty list removes them")
    }

    @Test func addressesBecomeNativeOnes() throws {
        func address(_ body: String, client: String = "10.0.0.7") throws -> String {
            try decode(body).get().nativeAddress(clientAddress: client)
        }
        #expect(try address(#"{"Name":"a","Address":"10.0.0.1","Port":80}"#) == "http://10.0.0.1:80")
        #expect(try address(#"{"Name":"a","Address":"fe80::1","Port":443,"Meta":{"scheme":"HTTPS"}}"#) == "https://[fe80::1]:443")
        #expect(try address(#"{"Name":"a","Port":5000}"#) == "http://10.0.0.7:5000", "the client's address without Address")
        #expect(try address(#"{"Name":"a","Address":"","Port":5000}"#, client: "::1") == "http://[::1]:5000")
        #expect(try address(#"{"Name":"a","Address":"db.internal"}"#) == "db.internal", "no port: the address alone")
        #expect(try decode(#"{"Name":"a","Weights":{"Passing":5,"Warning":1}}"#).get().request(clientAddress: "x").fields.weight == 5)
    }

    @Test func wrongBodiesAreRefusedWithConsulsWords() {
        #expect(message("") == "Request decode failed: the body is empty; send a JSON object like \(ConsulRegistration.example)")
        #expect(message("[]")?.contains("must be a JSON object") == true)
        #expect(message(#"{"Name":""}"#) == "Missing service name")
        #expect(message(#"{"Name":"a","Tag":["x"]}"#) == #"Request decode failed: json: unknown field "Tag""#)
        #expect(message(#"{"Name":"a","Check":{"HTTP":"http://h/","Intervall":"1s"}}"#) == #"Request decode failed: json: unknown field "Intervall" in Check"#)
        #expect(message(#"{"Name":"a","Port":"80"}"#)?.contains("'Port' must be an integer") == true)
        #expect(message(#"{"Name":"a","Tags":"x"}"#)?.contains("'Tags' must be a list of strings") == true)
        #expect(message(#"{"Name":"a","Meta":{"k":1}}"#)?.contains("must be a string") == true)
        #expect(message(#"{"Name":"a","Check":{"HTTP":"http://h/"}}"#)?.hasPrefix("Invalid check: Interval must be > 0") == true)
        #expect(message(#"{"Name":"a","Check":{"HTTP":"http://h/","TCP":"h:1","Interval":"1s"}}"#) == "Invalid check: give only one of HTTP or TCP")
        #expect(message(#"{"Name":"a","Check":{"Notes":"nothing to run"}}"#) == "Invalid check: TTL must be > 0 for TTL checks")
        #expect(message(#"{"Name":"a","Check":{"HTTP":"http://h/","Interval":"1s","Body":"{}"}}"#)?.contains("Body is not supported") == true)
        #expect(message(#"{"Name":"a","Check":{"TTL":"1s","FailuresBeforeCritical":3}}"#)?.contains("FailuresBeforeCritical is not supported") == true)
        #expect(message(#"{"Name":"a","Check":{"DockerContainerID":"c","Shell":"sh","Interval":"1s"}}"#)?.contains("Docker checks are not supported") == true)
        #expect(message(#"{"Name":"a","Connect":{"Native":true}}"#) == "Connect is not supported: this registry has no service mesh")
        #expect(message(#"{"Name":"a","Connect":{}}"#) == nil, "an empty Connect asks for nothing")
        #expect(message(#"{"Name":"a","Address":"::"}"#) == "Invalid service address")
        #expect(message(#"{"Name":"a","Check":{"TTL":"1 s"}}"#)?.contains("invalid duration") == true)
    }

    @Test func aCheckUpdateBody() throws {
        func decode(_ text: String) -> Result<ConsulCheckUpdate, WireProblem> {
            Array(text.utf8).withUnsafeBufferPointer { ConsulCheckUpdate.decode($0) }
        }
        #expect(try decode(#"{"Status":"warning","Output":"slow"}"#).get() == ConsulCheckUpdate(status: .warning, output: "slow"))
        #expect(try decode(#"{"status":"passing"}"#).get() == ConsulCheckUpdate(status: .passing, output: ""))
        guard case .failure(let problem) = decode(#"{"Output":"x"}"#) else {
            Issue.record("a missing status decoded")
            return
        }
        #expect(problem.message == "Invalid check status: ''")
        if case .success = decode(#"{"Status":"passing","Note":"x"}"#) { Issue.record("an unknown field decoded") }
    }
}
