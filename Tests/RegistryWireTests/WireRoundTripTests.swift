import JSON
import Registry
import RegistryWire
import Testing
import TestSupport

/// The client's encoding and the server's decoding are one definition: whatever the client
/// can express comes back unchanged, and malformed bodies are refused with the field named.
@Suite struct WireRoundTripTests {
    private func decode(_ bytes: [UInt8]) -> Result<RegistrationRequest, WireProblem> {
        bytes.withUnsafeBufferPointer { RegistrationRequest.decode($0) }
    }

    private func decodeReference(_ text: String, statusRequired: Bool = false) -> Result<InstanceReference, WireProblem> {
        Array(text.utf8).withUnsafeBufferPointer { InstanceReference.decode($0, statusRequired: statusRequired) }
    }

    @Test func everyRegistrationTheClientCanSendDecodesToItself() throws {
        var random = SplitMix64(state: 2026)
        for _ in 0..<2000 {
            var fields = InstanceFields()
            if Bool.random(using: &random) {
                fields.tags = (0..<Int.random(in: 0...4, using: &random)).map { _ in random.text(length: Int.random(in: 1...12, using: &random)) }
            }
            if Bool.random(using: &random) {
                var keys = Set<String>()
                for _ in 0..<Int.random(in: 0...5, using: &random) { keys.insert(random.text(length: Int.random(in: 1...8, using: &random))) }
                fields.metadata = keys.sorted().map { MetadataEntry($0, random.text(length: Int.random(in: 0...20, using: &random))) }
            }
            if Bool.random(using: &random) { fields.weight = Int.random(in: -5...100_000, using: &random) }
            switch Int.random(in: 0..<3, using: &random) {
            case 0: fields.zone = .some(nil)
            case 1: fields.zone = .some(random.text(length: 6))
            default: break
            }
            if Bool.random(using: &random) { fields.status = InstanceStatus.allCases.randomElement(using: &random) }
            switch Int.random(in: 0..<4, using: &random) {
            case 0: fields.ttl = .serverDefault
            case 1: fields.ttl = .seconds(Double(Int.random(in: 1...3600, using: &random)))
            case 2: fields.ttl = .seconds(Double.random(in: 0.001...3600, using: &random))
            default: break
            }
            let request = RegistrationRequest(service: random.text(length: Int.random(in: 1...30, using: &random)),
                                              address: "http://" + random.text(length: 10),
                                              id: Bool.random(using: &random) ? random.text(length: 8) : nil, fields: fields)
            #expect(try decode(request.encode()).get() == request)
        }
    }

    @Test func referencesRoundTripAndNameTheInstance() throws {
        let byAddress = InstanceReference(service: "web", address: "http://10.0.0.1:80", status: .down)
        #expect(try decodeReference(String(decoding: byAddress.encode(), as: UTF8.self)).get() == byAddress)
        #expect(byAddress.name == "http://10.0.0.1:80")
        let byID = RegistrationRequest(service: "web", address: "http://10.0.0.1:80", id: "web-1").reference
        #expect(byID.name == "web-1")
        #expect(byID.address == nil)
        #expect(try decodeReference(String(decoding: byID.encode(), as: UTF8.self)).get() == byID)
        #expect(RegistrationRequest(service: "web", address: "http://a").reference.name == "http://a")
    }

    @Test func malformedBodiesNameTheFieldAndHowToFixIt() {
        func message(_ text: String) -> String? {
            if case .failure(let problem) = decode(Array(text.utf8)) { return problem.message }
            return nil
        }
        #expect(message("") == #"request body is empty; send a JSON object like {"service":"user-service","address":"http://localhost:8001"}"#)
        #expect(message("[]")?.hasPrefix("request body must be a JSON object") == true)
        #expect(message("{\"service\":1,\"address\":\"x\"}") == "field 'service' must be a string, got a number")
        #expect(message("{\"address\":\"x\"}")?.hasPrefix("missing field 'service'") == true)
        #expect(message(#"{"service":"a","address":"b","tags":["x",2]}"#) == "field 'tags' must be an array of strings; element 1 is a number")
        #expect(message(#"{"service":"a","address":"b","weight":1.5}"#) == "field 'weight' must be an integer, got 1.5")
        #expect(message(#"{"service":"a","address":"b","status":"asleep"}"#) == #"field 'status' must be one of UP, STARTING, DOWN, OUT_OF_SERVICE, got "asleep""#)
        #expect(message(#"{"service":"a","address":"b","metadata":{"k":1}}"#) == #"field 'metadata' must be an object of strings; "k" is a number"#)
        // A member this version does not know is refused, naming it: a typo (`ttl` for
        // `ttl_seconds`) dropped in silence would leave the default in its place.
        #expect(message(#"{"service":"a","address":"b","later":{"x":[1]}}"#)
            == #"unknown field "later"; this request takes service, address, id, tags, metadata, weight, zone, status, ttl_seconds, check, checks"#)
    }

    @Test func referencesNeedAnAddressOrIdAndAStatusWhereRequired() {
        func message(_ text: String, statusRequired: Bool = false) -> String? {
            if case .failure(let problem) = decodeReference(text, statusRequired: statusRequired) { return problem.message }
            return nil
        }
        #expect(message(#"{"service":"a"}"#)?.hasPrefix("missing field 'address' (or 'id')") == true)
        #expect(message(#"{"service":"a","address":"b"}"#, statusRequired: true) == "missing field 'status'; use one of UP, STARTING, DOWN, OUT_OF_SERVICE")
        #expect(message(#"{"service":"a","address":"b","status":"down"}"#, statusRequired: true) == nil)
        // An address that comes with an id is judged all the same.
        #expect(message(#"{"service":"a","id":"i","address":"bad\u0001"}"#) != nil)
    }
}
