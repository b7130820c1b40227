import Testing
@testable import Registry

/// Taking back changes that could not be written: each instance ends as it was before them.
@Suite struct RevertTests {
    var clock = FakeClock()
    var registry = Registry(policy: RegistryPolicy(heartbeatTimeout: .seconds(30), journaling: true))

    private func sorted(_ registry: Registry) -> [InstanceState] {
        registry.durableState().sorted { ($0.service, $0.id) < ($1.service, $1.id) }
    }

    /// A registry holding a durable starting state, its journal already taken.
    private mutating func settle() {
        _ = registry.register(service: "api", id: "i-1", address: "http://a",
                              fields: InstanceFields(tags: ["v1"], metadata: [MetadataEntry("k", "v")], weight: 5, zone: "z1"), now: clock.now)
        _ = registry.register(service: "api", id: "i-2", address: "http://b", now: clock.now)
        _ = registry.register(service: "web", address: "w", fields: InstanceFields(ttl: .seconds(5)), now: clock.now)
        _ = registry.takeJournal()
        _ = registry.takeChangedServices()
    }

    @Test mutating func everyKindOfChangeIsTakenBack() {
        settle()
        let before = sorted(registry)
        let indexBefore = registry.changeIndex
        clock.advance(.seconds(1))
        // One turn's worth of every kind of change, some touching the same instance twice.
        _ = registry.register(service: "new", address: "n", now: clock.now)
        _ = registry.register(service: "api", id: "i-1", address: "http://a2", fields: InstanceFields(tags: ["v2"], zone: .some(nil)),
                              now: clock.now)
        _ = registry.setStatus(service: "api", id: "i-1", status: .outOfService, now: clock.now)
        _ = registry.heartbeat(service: "api", id: "i-2", status: .down, now: clock.now)
        _ = registry.deregister(service: "api", id: "i-2", now: clock.now)
        clock.advance(.seconds(5))
        _ = registry.expireDue(now: clock.now, limit: 100)
        #expect(!registry.contains(service: "web"))
        let changes = registry.takeJournal()
        #expect(changes.count == 6)
        _ = registry.takeChangedServices()

        #expect(changes.map(\.isExpiry) == [false, false, false, false, false, true])

        registry.revert(changes, now: clock.now)
        // Everything a client asked for is taken back; the expiry stays done (putting a dead
        // instance back with a fresh TTL on every failed write would keep it listed).
        #expect(sorted(registry) == before.filter { $0.service != "web" })
        #expect(!registry.contains(service: "web"))
        // Readers may have seen the changes: taking them back is itself a change they see.
        #expect(registry.changeIndex > indexBefore + 6)
        #expect(Set(registry.takeChangedServices()) == ["new", "api"])
        #expect(registry.takeJournal().isEmpty)
        // An instance put back gets a full TTL from the revert.
        let second = registry.instances(ofService: "api", now: clock.now).first { $0.id == "i-2" }
        #expect(second?.deadline == clock.now + .seconds(30))
    }

    @Test mutating func priorsAreRecordedOnlyForExistingInstances() throws {
        settle()
        _ = registry.register(service: "api", id: "i-3", address: "c", now: clock.now)
        _ = registry.setStatus(service: "api", id: "i-1", status: .down, now: clock.now)
        _ = registry.deregister(service: "api", id: "i-2", now: clock.now)
        let changes = registry.takeJournal()
        #expect(changes[0].prior == nil)
        #expect(changes[1].prior?.status == .up)
        #expect(changes[1].prior?.tags == ["v1"])
        #expect(changes[2].prior?.address == "http://b")
    }

    @Test mutating func anIndexMarkRaisesTheIndexOnRestore() {
        var restored = Registry(heartbeatTimeout: .seconds(30))
        restored.restore(.indexAdvanced(to: 41), now: clock.now)
        #expect(restored.changeIndex == 41)
        restored.finishRestore(changeIndex: 41, now: clock.now)
        #expect(restored.changeIndex == 42)
    }

    @Test mutating func finishingARestoreRestartsEveryTTL() {
        var restored = Registry(heartbeatTimeout: .seconds(30))
        let state = InstanceState(service: "api", id: "a", address: "a", ttl: .seconds(10), registeredAt: clock.now)
        restored.restore(.upsert(state, changeIndex: 7), now: clock.now)
        // Recovery took a while: the TTL must count from when the registry serves again.
        clock.advance(.seconds(8))
        restored.finishRestore(changeIndex: 7, now: clock.now)
        #expect(restored.instances(ofService: "api", now: clock.now).first?.deadline == clock.now + .seconds(10))
        _ = restored.expireDue(now: clock.now + .seconds(9), limit: 10)
        #expect(restored.instanceCount == 1)
        _ = restored.expireDue(now: clock.now + .seconds(10), limit: 10)
        #expect(restored.instanceCount == 0)
    }
}
