import Testing
@testable import Registry

/// `RegistryPolicy.maxInstances` and `maxServices`: a registration that would pass one is
/// refused and changes nothing; an update of what is held, restores and mirrored changes never are.
@Suite struct LimitTests {
    let now = Instant(nanoseconds: 1_000_000_000)

    @Test func newInstancesPastTheLimitsAreRefusedAndUpdatesAreNot() {
        var registry = Registry(policy: RegistryPolicy(heartbeatTimeout: .seconds(30), maxInstances: 3, maxServices: 2))
        #expect(registry.register(service: "a", address: "a1", now: now) == .registered)
        #expect(registry.register(service: "b", address: "b1", now: now) == .registered)
        #expect(registry.register(service: "c", address: "c1", now: now) == .overLimit(.services(2)), "a third service")
        #expect(registry.register(service: "a", address: "a2", now: now) == .registered, "a known service may grow")
        #expect(registry.register(service: "a", address: "a3", now: now) == .overLimit(.instances(3)))
        #expect(registry.register(service: "a", address: "a1", fields: InstanceFields(weight: 5), now: now) == .updated(changed: true),
                "what is held may still be updated at the limit")
        #expect(registry.instanceCount == 3)
        #expect(registry.serviceCount == 2)
        #expect(registry.deregister(service: "b", id: "b1", now: now) == .done(changed: true))
        #expect(registry.register(service: "c", address: "c1", now: now) == .registered, "room again once one is gone")
    }

    @Test func aMirrorJudgesTheLimitsButAppliesWhatWasCommitted() {
        var mirror = Registry(policy: RegistryPolicy(heartbeatTimeout: .seconds(30), mirrored: true, maxInstances: 1))
        let first = mirror.judgeRegister(service: "a", address: "a1", now: now)
        #expect(first.outcome == .registered)
        _ = mirror.applyCommitted(.put(first.proposal!.state!), revision: 2, now: now)
        #expect(mirror.judgeRegister(service: "a", address: "a2", now: now).outcome == .overLimit(.instances(1)))
        // Another replica, under another limit, committed one more: it is applied, not refused.
        let other = InstanceState(service: "a", id: "a2", attributes: InstanceAttributes(address: "a2"), registeredAt: now)
        _ = mirror.applyCommitted(.put(other), revision: 3, now: now)
        #expect(mirror.instanceCount == 2)
    }
}
