import Foundation
import Testing
@testable import Registry
@testable import Server
import JSON
import TestSupport

/// The incrementally kept answers (`/services` in blocks, `/discover` per instance version)
/// against answers made from scratch, through random changes: they must never differ.
@Suite struct IncrementalViewTests {
    let api = NativeHarness(policy: RegistryPolicy(heartbeatTimeout: .seconds(30), expiryProtection: 0.5),
                            random: RandomSource(SplitMix64(state: 3)))
    let wallOffset: Int64 = 1_800_000_000_000_000_000

    private func call(_ method: HTTPMethod, _ target: String, _ body: String = "", at now: Instant) -> Response {
        api.handle(method: method, path: target, body: body, now: now, wallClock: now.nanoseconds + wallOffset).response
            ?? Response(status: 0, body: [])
    }

    /// `/services` rendered from the registry's summaries, as it was before the listing.
    private func servicesFromScratch(at now: Instant) -> [UInt8] {
        let summaries = api.service.snapshot.serviceSummaries(now: now)
        var json = JSONWriter()
        json.raw("{\"services\":{")
        for (position, summary) in summaries.enumerated() {
            if position > 0 { json.raw(",") }
            json.raw(ServicesListing.entry(summary))
        }
        json.raw("},\"total_services\":")
        json.integer(summaries.count)
        json.raw("}")
        return json.bytes
    }

    /// `/discover` rendered by a view made for this read alone.
    private func discoverFromScratch(_ name: String, onlyUp: Bool, at now: Instant) -> [UInt8]? {
        var registry = api.service.snapshot
        guard let index = registry.serviceChangeIndex(name, now: now) else { return nil }
        let view = ServiceView(name: name)
        view.update(from: &registry, changeIndex: index, now: now, wallOffset: wallOffset)
        view.refresh(from: &registry, tick: now.nanoseconds / ServiceView.tickNanoseconds, now: now, wallOffset: wallOffset)
        return view.listing(view.entries.indices.filter { !onlyUp || view.entries[$0].instance.status == .up })
    }

    @Test func incrementalAnswersEqualAnswersFromScratch() {
        var random = SplitMix64(state: 17)
        var now = Instant(nanoseconds: 10_000_000_000)
        let services = (0..<1_100).map { "svc-\(String($0, radix: 36))" } + ["big"]
        for step in 0..<3_000 {
            let service = Int.random(in: 0..<3, using: &random) == 0 ? "big" : services[Int.random(in: 0..<services.count, using: &random)]
            let address = "a\(Int.random(in: 0..<(service == "big" ? 900 : 4), using: &random))"
            let tags = ["x", "y", "z"].filter { _ in Bool.random(using: &random) }
            switch Int.random(in: 0..<10, using: &random) {
            case 0...4:
                let ttl = Int.random(in: 0..<3, using: &random) == 0 ? #","ttl_seconds":2"# : ""
                _ = call(.post, "/register", #"{"service":"\#(service)","address":"\#(address)","tags":\#(tags)\#(ttl)}"#, at: now)
            case 5:
                _ = call(.post, "/status", #"{"service":"\#(service)","address":"\#(address)","status":"DOWN"}"#, at: now)
            case 6:
                _ = call(.post, "/deregister", #"{"service":"\#(service)","address":"\#(address)"}"#, at: now)
            case 7:
                _ = call(.post, "/heartbeat", #"{"service":"\#(service)","address":"\#(address)"}"#, at: now)
            case 8:
                now = now + .milliseconds(Int64.random(in: 0...1500, using: &random))
            default:
                _ = api.service.expireDue(now: now, limit: Int.random(in: 1...50, using: &random))
                api.service.endTurn(now: now)
            }
            if step % 7 == 0 {
                // Compared as one Bool: a mismatch would print megabytes of bytes.
                let same = call(.get, "/services", at: now).bytes == servicesFromScratch(at: now)
                #expect(same, "step \(step): /services differs from one made from scratch")
            }
            if step % 3 == 0 {
                let plain = Int.random(in: 0..<2, using: &random) == 0
                let reply = call(.get, "/discover/\(service)" + (plain ? "" : "?status=any"), at: now)
                let expected = discoverFromScratch(service, onlyUp: plain, at: now)
                if let expected {
                    let same = reply.bytes == expected
                    #expect(same, "step \(step): /discover/\(service) differs from one made from scratch")
                } else {
                    #expect(reply.status == 404, "step \(step): \(service)")
                }
            }
        }
    }
}
