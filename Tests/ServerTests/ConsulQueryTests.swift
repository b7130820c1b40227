import HTTPParsing
import Registry
import RegistryWire
import Testing

/// Consul's query strings: blocking parameters as Consul parses them, filters, and the
/// parameters that change nothing here accepted rather than refused.
@Suite struct ConsulQueryTests {
    private func parse(_ text: String) -> Result<ConsulQuery, WireProblem> {
        Array(text.utf8).withUnsafeBufferPointer { ConsulQuery.parse($0) }
    }

    @Test func blockingParametersAndFilters() throws {
        let query = try parse("index=42&wait=120000ms&passing=1&tag=a&tag=b&dc=dc1&node-meta=rack:r1&stale=&near=_agent&token=t%2Bx&note=a+b").get()
        #expect(query.index == 42 && query.wait == .seconds(120) && query.passing)
        #expect(query.tags == ["a", "b"] && query.datacenter == "dc1" && query.nodeMeta == [MetadataEntry("rack", "r1")])
        #expect(query.token == "t+x" && query.note == "a b")
        #expect(try parse("passing").get().passing, "a bare ?passing is true, as in Consul")
        #expect(try parse("passing=false").get().passing == false)
        #expect(try parse("").get().effectiveWait(cap: .seconds(600)) == .seconds(300), "Consul's default wait")
        #expect(try parse("wait=1h").get().effectiveWait(cap: .seconds(3600)) == .seconds(600), "Consul's cap")
        #expect(try parse("wait=5m").get().effectiveWait(cap: .seconds(60)) == .seconds(60), "the server's --max-wait")
        #expect(try parse("enable=true&reason=disk").get().enable == true)
    }

    @Test func wrongValuesAreRefusedInConsulsWords() {
        for (text, message) in [("index=x", "Invalid index"), ("wait=10", "Invalid wait time"), ("passing=maybe", "Invalid value for ?passing"),
                                ("node-meta=nocolon", "Invalid node-meta"), ("enable=", "Invalid value for enable"),
                                ("filter=a", "filter expressions are not supported"), ("tag=%zz", "malformed percent-encoding")] {
            guard case .failure(let problem) = parse(text) else {
                Issue.record("\(text) was accepted")
                continue
            }
            #expect(problem.message.hasPrefix(message), "\(text): \(problem.message)")
        }
    }
}
