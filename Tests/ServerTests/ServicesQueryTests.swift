import Testing
@testable import Registry
@testable import Server
import HTTPParsing
import JSON
import TestSupport

/// `/services` with filters and paging, against the same query answered from the registry's
/// summaries by a plain filter: the kept listing's scan (prefix ranges, `after`, limits, the
/// problems-first order, `matching_services`, `next`) must never differ from it.
@Suite struct ServicesQueryTests {
    let api = NativeHarness(policy: RegistryPolicy(heartbeatTimeout: .seconds(30)))
    var clock = Instant(nanoseconds: 1_000_000_000)

    struct Page: Equatable {
        var names: [String]
        var matching: Int?
        var next: String?
    }

    private func page(_ target: String) throws -> Page {
        let response = try #require(api.handle(method: .get, path: target, now: clock).response)
        #expect(response.status == 200, "\(target): \(String(decoding: response.bytes, as: UTF8.self))")
        let json = try JSONParser.parse(response.bytes)
        guard case .object(let services)? = json[member: "services"] else { Issue.record("no services in \(target)"); return Page(names: []) }
        var matching: Int?
        if case .number(let count)? = json[member: "matching_services"] { matching = Int(count) }
        var next: String?
        if case .string(let name)? = json[member: "next"] { next = name }
        if case .number(let total)? = json[member: "total_services"] { #expect(Int(total) == services.count) }
        return Page(names: services.map(\.name), matching: matching, next: next)
    }

    /// The query answered from `serviceSummaries`, as the documentation says it should be.
    private func expected(_ query: ServicesQuery) -> Page {
        let filter = query.filter
        var kept = api.service.snapshot.serviceSummaries(now: clock).filter { summary in
            if let prefix = query.prefix, !summary.name.hasPrefix(prefix) { return false }
            if let after = query.after, summary.name <= after { return false }
            if filter.problemsOnly && !summary.hasProblem { return false }
            if let status = filter.status, summary.countsByStatus[status, default: 0] == 0 { return false }
            if let health = filter.health, summary.countsByHealth[health, default: 0] == 0 { return false }
            if let zone = filter.zone, !summary.zones.contains(zone) { return false }
            return filter.tags.allSatisfy(summary.tags.contains)
        }
        if query.order == .problems { kept = kept.filter(\.hasProblem) + kept.filter { !$0.hasProblem } }
        let limit = query.limit ?? Int.max
        let listed = Array(kept.prefix(limit)).map(\.name)
        let more = kept.count > listed.count
        return Page(names: listed, matching: query.isWholeListing ? nil : kept.count,
                    next: more && query.order == .name ? listed.last : nil)
    }

    private mutating func populate() {
        var random = SplitMix64(state: 11)
        let tags = ["a", "b", "c", "d"]
        let zones = ["z1", "z2", "z3"]
        for number in 0..<700 {
            let name = ["api-", "apex-", "billing-", "b", "web-"][number % 5] + String(number, radix: 7)
            for instance in 0..<(1 + Int(random.next() % 3)) {
                // "rare" and z9 are held by few services: filters on them go through the index.
                let chosen = (tags.filter { _ in random.next() % 3 == 0 } + (number % 37 == 0 && instance == 0 ? ["rare"] : []))
                    .map { "\"\($0)\"" }.joined(separator: ",")
                let zone = number % 53 == 0 ? "\"z9\"" : random.next() % 4 == 0 ? "null" : "\"\(zones[Int(random.next() % 3)])\""
                let status = ["UP", "UP", "UP", "DOWN", "STARTING", "OUT_OF_SERVICE"][Int(random.next() % 6)]
                let verdict = ["passing", "warning", "critical"][Int(random.next() % 3)]
                let check = random.next() % 3 == 0 ? #","check":{"tcp":"127.0.0.1:1","interval":"10s","status":"\#(verdict)"}"# : ""
                let id = "\(name)-\(instance)"
                let body = #"{"service":"\#(name)","id":"\#(id)","address":"http://10.0.0.1:\#(1000 + instance)","tags":[\#(chosen)],"#
                    + #""zone":\#(zone),"status":"\#(status)","ttl_seconds":\#(random.next() % 10 == 0 ? 5 : 300)\#(check)}"#
                let reply = api.handle(method: .post, path: "/register", body: body, now: clock).response
                #expect(reply?.status == 201, "\(body): \(reply.map { String(decoding: $0.bytes, as: UTF8.self) } ?? "")")
            }
        }
        // Past the 5 s deadlines, before any expiry: those instances must be left out.
        clock = Instant(nanoseconds: clock.nanoseconds + 6_000_000_000)
    }

    @Test mutating func filteredAndPagedListingsEqualAPlainFilterOfTheSummaries() throws {
        populate()
        let targets = [
            "/services?limit=10", "/services?prefix=api-", "/services?prefix=ap", "/services?prefix=b", "/services?prefix=zzz",
            "/services?prefix=api-&limit=3", "/services?tag=a", "/services?tag=a&tag=c", "/services?zone=z2", "/services?status=DOWN",
            "/services?status=out_of_service&zone=z1", "/services?health=critical", "/services?health=warning&tag=b",
            "/services?problems=true", "/services?problems=true&prefix=web-&limit=5", "/services?order=problems",
            "/services?order=problems&limit=25", "/services?order=problems&tag=d&limit=7", "/services?after=billing-1",
            "/services?after=b&prefix=b&limit=4", "/services?after=zz", "/services?health=passing&status=UP&limit=50",
            "/services?tag=rare", "/services?tag=rare&limit=3", "/services?zone=z9&tag=a", "/services?tag=rare&order=problems&limit=5",
            "/services?tag=rare&prefix=api-", "/services?tag=rare&after=b", "/services?tag=nobody-has-this",
        ]
        for target in targets {
            let query = try Array(target.split(separator: "?")[1].utf8).withUnsafeBufferPointer { try ServicesQuery.parse($0).get() }
            let got = try page(target), want = expected(query)
            #expect(got == want, "\(target): got \(got.names.count) \(got.matching ?? -1) \(got.next ?? "-") \(got.names.prefix(5)) want \(want.names.count) \(want.matching ?? -1) \(want.next ?? "-") \(want.names.prefix(5))")
        }
        let whole = try page("/services")
        #expect(whole == expected(ServicesQuery()) && whole.matching == nil && whole.next == nil)
        // Tags and zones taken away and given: the index follows.
        let rare = try page("/services?tag=rare").names
        for name in rare.prefix(5) {
            _ = api.handle(method: .post, path: "/register", body: #"{"service":"\#(name)","id":"\#(name)-0","address":"http://10.0.0.1:1000","tags":[],"zone":"z9"}"#, now: clock)
        }
        _ = api.handle(method: .post, path: "/register", body: #"{"service":"web-new","address":"http://h:1","tags":["rare"]}"#, now: clock)
        for target in ["/services?tag=rare", "/services?zone=z9", "/services?zone=z9&order=problems"] {
            let query = try Array(target.split(separator: "?")[1].utf8).withUnsafeBufferPointer { try ServicesQuery.parse($0).get() }
            #expect(try page(target) == expected(query), "\(target) after changes")
        }
        #expect(try page("/services?tag=rare").names.contains("web-new"))
    }

    @Test mutating func followingNextPagesThroughEveryServiceOnce() throws {
        populate()
        for filter in ["", "&tag=b", "&prefix=api-", "&problems=true"] {
            var seen: [String] = []
            var target = "/services?limit=37" + filter
            var pages = 0
            while true {
                let answer = try page(target)
                seen += answer.names
                pages += 1
                guard let next = answer.next else { break }
                #expect(answer.names.count == 37 && pages < 100)
                target = "/services?limit=37&after=\(next)" + filter
            }
            let all = try page("/services?limit=10000" + filter)
            #expect(seen == all.names, "paging with \(filter)")
            #expect(Set(seen).count == seen.count)
        }
    }

    @Test mutating func aServiceWhoseInstancesAreAllPastTheirDeadlineIsNotListed() throws {
        _ = api.handle(method: .post, path: "/register", body: #"{"service":"brief","address":"http://h:1","ttl_seconds":2}"#, now: clock)
        _ = api.handle(method: .post, path: "/register", body: #"{"service":"lasting","address":"http://h:1","ttl_seconds":300}"#, now: clock)
        #expect(try page("/services?prefix=b").names == ["brief"])
        clock = Instant(nanoseconds: clock.nanoseconds + 3_000_000_000)
        #expect(try page("/services?limit=5") == Page(names: ["lasting"], matching: 1, next: nil))
    }
}
