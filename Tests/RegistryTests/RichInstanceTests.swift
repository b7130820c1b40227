import Testing
@testable import Registry

@Suite struct RichInstanceTests {
    var clock = FakeClock()
    var registry = Registry(policy: RegistryPolicy(heartbeatTimeout: .seconds(30), minimumTTL: .seconds(1), maximumTTL: .seconds(600)))

    private func only(_ registry: Registry, _ service: String) -> InstanceSnapshot? {
        var registry = registry
        return registry.instances(ofService: service, now: clock.now).first
    }

    @Test mutating func fieldsAreStoredAndAbsentOnesKeptOnUpdate() throws {
        let fields = InstanceFields(tags: ["v2", "canary"], metadata: [MetadataEntry("region", "eu")], weight: 7, zone: "z1",
                                    status: .starting, ttl: .seconds(10))
        #expect(registry.register(service: "api", id: "i-1", address: "http://a", fields: fields, now: clock.now) == .registered)
        var instance = try #require(only(registry, "api"))
        #expect(instance.id == "i-1")
        #expect(instance.tags == ["v2", "canary"])
        #expect(instance.metadata.map(\.value) == ["eu"])
        #expect(instance.weight == 7)
        #expect(instance.zone == "z1")
        #expect(instance.status == .starting)
        #expect(instance.ttl == .seconds(10))
        #expect(instance.deadline == clock.now + .seconds(10))

        // A seed-style re-registration (address only) changes nothing visible.
        let index = registry.changeIndex
        clock.advance(.seconds(1))
        #expect(registry.register(service: "api", id: "i-1", address: "http://a", now: clock.now) == .updated(changed: false))
        #expect(registry.changeIndex == index)
        instance = try #require(only(registry, "api"))
        #expect(instance.status == .starting)
        #expect(instance.tags == ["v2", "canary"])

        // Present fields replace; an explicit null clears the zone and the TTL.
        let update = InstanceFields(tags: [], weight: 100, zone: .some(nil), status: .up, ttl: .serverDefault)
        #expect(registry.register(service: "api", id: "i-1", address: "http://b", fields: update, now: clock.now) == .updated(changed: true))
        #expect(registry.changeIndex == index + 1)
        instance = try #require(only(registry, "api"))
        #expect(instance.address == "http://b")
        #expect(instance.tags.isEmpty)
        #expect(instance.zone == nil)
        #expect(instance.ttl == .seconds(30))
        #expect(instance.metadata.map(\.key) == ["region"])
    }

    /// The id defaults to the address, but an address never reaches an instance that took
    /// that string as an explicit id: one client cannot move or remove another's instance.
    @Test mutating func anAddressNamesOnlyAnInstanceAtThatAddress() {
        var registry = Registry(heartbeatTimeout: .seconds(30))
        #expect(registry.register(service: "id", id: "foo", address: "bar", now: clock.now) == .registered)
        let before = registry.changeIndex
        #expect(registry.register(service: "id", address: "foo", now: clock.now) == .conflict(existingAddress: "bar"))
        #expect(registry.changeIndex == before)
        #expect(registry.instances(ofService: "id", now: clock.now).map(\.address) == ["bar"])
        #expect(registry.register(service: "id", id: "bar", address: "zzz", now: clock.now) == .registered)
        // By address "bar": the instance named "bar" is at zzz, so not the one meant.
        #expect(registry.deregister(service: "id", id: "bar", address: "bar", now: clock.now) == .unknownInstance)
        #expect(registry.heartbeat(service: "id", id: "bar", address: "bar", now: clock.now) == .unknownInstance)
        #expect(registry.setStatus(service: "id", id: "bar", address: "bar", status: .down, now: clock.now) == .unknownInstance)
        // By id it is found; an instance registered without id is found by its address.
        #expect(registry.heartbeat(service: "id", id: "bar", now: clock.now) == .done(changed: false))
        #expect(registry.register(service: "id", address: "plain", now: clock.now) == .registered)
        #expect(registry.register(service: "id", address: "plain", now: clock.now) == .updated(changed: false))
        #expect(registry.deregister(service: "id", id: "plain", address: "plain", now: clock.now) == .done(changed: true))
        // An explicit id may still move its instance to a new address.
        #expect(registry.register(service: "id", id: "foo", address: "moved", now: clock.now) == .updated(changed: true))
    }

    @Test mutating func eachBrokenRuleHasItsOwnViolation() {
        let cases: [(InstanceFields, Violation)] = [
            (InstanceFields(weight: 0), .weightOutOfRange(0)),
            (InstanceFields(weight: 1001), .weightOutOfRange(1001)),
            (InstanceFields(tags: ["a", "a"]), .duplicateTag("a")),
            (InstanceFields(tags: [""]), .badTag("", reason: "must not be empty")),
            (InstanceFields(tags: Array(repeating: "t", count: 65).enumerated().map { "\($0.offset)" }), .tooManyTags(count: 65)),
            (InstanceFields(metadata: [MetadataEntry("bad key", "v")]), .badMetadataKey("bad key", reason: "contains a space; only letters, digits, '.', '_' and '-' are allowed")),
            (InstanceFields(metadata: [MetadataEntry("k", "a\u{1}")]), .badMetadataValue(key: "k", reason: "contains U+0001, a control or format character")),
            (InstanceFields(zone: "eu west"), .badZone("eu west", reason: "contains a space; only letters, digits, '.', '_' and '-' are allowed")),
            (InstanceFields(ttl: .seconds(0.5)), .ttlOutOfRange(seconds: 0.5, minimum: .seconds(1), maximum: .seconds(600))),
            (InstanceFields(ttl: .seconds(601)), .ttlOutOfRange(seconds: 601, minimum: .seconds(1), maximum: .seconds(600))),
        ]
        for (fields, violation) in cases {
            #expect(registry.register(service: "api", address: "a", fields: fields, now: clock.now) == .invalid(violation))
        }
        #expect(registry.register(service: "api", id: "", address: "a", now: clock.now) == .invalid(.emptyID))
        #expect(registry.instanceCount == 0)
        #expect(registry.changeIndex == 1)
        #expect(Violation.ttlOutOfRange(seconds: 601, minimum: .seconds(1), maximum: .seconds(600)).message
                == "ttl_seconds must be from 1s to 600s on this server, got 601")
    }

    @Test mutating func statusChangesMoveTheIndexHeartbeatsDoNot() {
        _ = registry.register(service: "api", address: "a", now: clock.now)
        let index = registry.changeIndex
        #expect(registry.heartbeat(service: "api", id: "a", now: clock.now) == .done(changed: false))
        #expect(registry.heartbeat(service: "api", id: "a", status: .up, now: clock.now) == .done(changed: false))
        #expect(registry.changeIndex == index)
        #expect(registry.heartbeat(service: "api", id: "a", status: .down, now: clock.now) == .done(changed: true))
        #expect(registry.changeIndex == index + 1)
        #expect(registry.setStatus(service: "api", id: "a", status: .outOfService, now: clock.now) == .done(changed: true))
        #expect(registry.setStatus(service: "api", id: "a", status: .outOfService, now: clock.now) == .done(changed: false))
        #expect(registry.setStatus(service: "api", id: "zz", status: .up, now: clock.now) == .unknownInstance)
        #expect(registry.changeIndex == index + 2)
        let summary = registry.serviceSummaries(now: clock.now).first
        #expect(summary?.countsByStatus == [.outOfService: 1])
        #expect(summary?.changeIndex == index + 2)
    }

    @Test mutating func perInstanceTTLDrivesExpiryAndCanShrink() {
        _ = registry.register(service: "api", address: "short", fields: InstanceFields(ttl: .seconds(5)), now: clock.now)
        _ = registry.register(service: "api", address: "long", fields: InstanceFields(ttl: .seconds(60)), now: clock.now)
        _ = registry.register(service: "api", address: "default", now: clock.now)
        clock.advance(.seconds(5))
        #expect(registry.expireDue(now: clock.now, limit: 100).expired == 1)
        // A re-registration with a shorter TTL moves the deadline earlier, not only later.
        _ = registry.register(service: "api", address: "long", fields: InstanceFields(ttl: .seconds(2)), now: clock.now)
        clock.advance(.seconds(2))
        #expect(registry.expireDue(now: clock.now, limit: 100).expired == 1)
        clock.advance(.seconds(23))
        #expect(registry.expireDue(now: clock.now, limit: 100).expired == 1)
        let expired = registry.takeEvents().compactMap { event -> String? in
            if case .expired(_, let id, _, _) = event { return id }
            return nil
        }
        #expect(expired == ["short", "long", "default"])
    }

    @Test mutating func changedServicesAreReportedOncePerTake() {
        _ = registry.register(service: "api", address: "a", now: clock.now)
        _ = registry.register(service: "api", address: "b", now: clock.now)
        _ = registry.register(service: "web", address: "w", now: clock.now)
        #expect(registry.takeChangedServices() == ["api", "web"])
        #expect(registry.takeChangedServices().isEmpty)
        _ = registry.heartbeat(service: "api", id: "a", now: clock.now)
        #expect(registry.takeChangedServices().isEmpty)
        _ = registry.deregister(service: "web", id: "w", now: clock.now)
        #expect(registry.takeChangedServices() == ["web"])
        #expect(registry.nextRoundRobinTicket(service: "api") == 0)
        #expect(registry.nextRoundRobinTicket(service: "api") == 1)
    }

    @Test mutating func tagsOfAServiceAreItsInstancesTags() {
        _ = registry.register(service: "api", address: "a", fields: InstanceFields(tags: ["x", "y"]), now: clock.now)
        _ = registry.register(service: "api", address: "b", fields: InstanceFields(tags: ["y", "z"]), now: clock.now)
        #expect(registry.serviceSummaries(now: clock.now).first?.tags == ["x", "y", "z"])
        _ = registry.deregister(service: "api", id: "a", now: clock.now)
        #expect(registry.serviceSummaries(now: clock.now).first?.tags == ["y", "z"])
        _ = registry.register(service: "api", address: "b", fields: InstanceFields(tags: []), now: clock.now)
        #expect(registry.serviceSummaries(now: clock.now).first?.tags == [])
    }
}

@Suite struct ExpiryProtectionTests {
    var clock = FakeClock()
    var registry = Registry(policy: RegistryPolicy(heartbeatTimeout: .seconds(30), expiryProtection: 0.5))

    private mutating func events() -> [RegistryEvent] { registry.takeEvents() }

    @Test mutating func aMassExpiryIsCappedAndTheRestIsKept() {
        for index in 0..<10 { _ = registry.register(service: "api", address: "a\(index)", now: clock.now) }
        _ = registry.register(service: "lone", address: "only", now: clock.now)
        _ = events()
        clock.advance(.seconds(30))
        while registry.expireDue(now: clock.now, limit: 100).moreDue {}
        let happened = events()
        let expired = happened.filter { if case .expired = $0 { return true } else { return false } }
        #expect(expired.count == 5)
        #expect(happened.contains(.protectionStarted(service: "api", overdue: 6, instances: 10)))
        // A one-instance service that stops is protected too: the documented price.
        #expect(happened.contains(.protectionStarted(service: "lone", overdue: 1, instances: 1)))
        let kept = registry.instances(ofService: "api", now: clock.now)
        #expect(kept.count == 5)
        #expect(kept.allSatisfy { $0.isProtected })
        // Reads keep listing them; nothing more expires however long the cut lasts.
        clock.advance(.seconds(300))
        #expect(registry.serviceChangeIndex("api", now: clock.now) != nil)
        #expect(registry.expireDue(now: clock.now, limit: 100).expired == 0)
        #expect(registry.serviceSummaries(now: clock.now).first { $0.name == "api" }?.instanceCount == 5)
    }

    @Test mutating func aReturningHeartbeatLiftsProtection() {
        for index in 0..<10 { _ = registry.register(service: "api", address: "a\(index)", now: clock.now) }
        clock.advance(.seconds(30))
        while registry.expireDue(now: clock.now, limit: 100).moreDue {}
        let protected = registry.instances(ofService: "api", now: clock.now).map(\.id)
        _ = events()
        clock.advance(.seconds(5))
        #expect(registry.heartbeat(service: "api", id: protected[0], now: clock.now) == .done(changed: true))
        #expect(events() == [.protectionLifted(service: "api")])
        #expect(registry.instances(ofService: "api", now: clock.now).first { $0.id == protected[0] }?.isProtected == false)
        // The rest are judged afresh: half may go within this timeout, the others are kept again.
        while registry.expireDue(now: clock.now, limit: 100).moreDue {}
        let after = events()
        #expect(after.filter { if case .expired = $0 { return true } else { return false } }.count == 2)
        #expect(registry.instances(ofService: "api", now: clock.now).filter(\.isProtected).count == 2)
    }

    @Test mutating func expiriesWithinTheShareAreNormal() {
        for index in 0..<10 { _ = registry.register(service: "api", address: "a\(index)", now: clock.now) }
        clock.advance(.seconds(20))
        for index in 3..<10 { _ = registry.heartbeat(service: "api", id: "a\(index)", now: clock.now) }
        clock.advance(.seconds(10))
        while registry.expireDue(now: clock.now, limit: 100).moreDue {}
        #expect(registry.instances(ofService: "api", now: clock.now).count == 7)
        #expect(!events().contains { if case .protectionStarted = $0 { return true } else { return false } })
    }
}
