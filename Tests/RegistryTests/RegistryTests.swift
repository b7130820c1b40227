import Testing
@testable import Registry
import TestSupport

/// A hand-advanced clock: every test controls time exactly, with no sleeps.
struct FakeClock {
    private(set) var now = Instant(nanoseconds: 1_000_000_000)

    mutating func advance(_ duration: Duration) {
        now = now + duration
    }
}

@Suite struct RegistryTests {
    var clock = FakeClock()
    var registry = Registry(heartbeatTimeout: .seconds(30))

    /// The addresses of the instances expired since the last call, in order.
    mutating func expiredAddresses() -> [String] {
        registry.takeEvents().compactMap { event in
            if case .expired(_, _, let address, _) = event { return address }
            return nil
        }
    }

    @Test mutating func registerThenDiscover() {
        #expect(registry.register(service: "api", address: "http://a:1", now: clock.now) == .registered)
        #expect(registry.register(service: "api", address: "http://b:2", now: clock.now) == .registered)
        #expect(registry.serviceChangeIndex("api", now: clock.now) != nil)
        #expect(registry.instances(ofService: "api", now: clock.now).map(\.address) == ["http://a:1", "http://b:2"])
        #expect(registry.serviceSummaries(now: clock.now).map { [$0.name: $0.instanceCount] } == [["api": 2]])
    }

    @Test mutating func reRegisterCountsAsHeartbeatAndKeepsUptime() {
        let first = clock.now
        _ = registry.register(service: "api", address: "a", now: clock.now)
        clock.advance(.seconds(20))
        #expect(registry.register(service: "api", address: "a", now: clock.now) == .updated(changed: false))
        clock.advance(.seconds(20))
        // 40 s after the first registration but 20 s after the renewal: still alive.
        #expect(registry.serviceChangeIndex("api", now: clock.now) != nil)
        let instance = registry.instances(ofService: "api", now: clock.now)[0]
        #expect(instance.registeredAt == first)
        #expect(instance.lastHeartbeat == first + .seconds(20))
    }

    @Test mutating func heartbeatOutcomes() {
        #expect(registry.heartbeat(service: "api", id: "a", now: clock.now) == .unknownService)
        _ = registry.register(service: "api", address: "a", now: clock.now)
        #expect(registry.heartbeat(service: "api", id: "b", now: clock.now) == .unknownInstance)
        #expect(registry.heartbeat(service: "api", id: "a", now: clock.now) == .done(changed: false))
        #expect(registry.heartbeat(service: "bad name", id: "a", now: clock.now) == .invalid(.serviceNameCharacter(" ")))
    }

    @Test mutating func deregisterOutcomes() {
        #expect(registry.deregister(service: "api", id: "a", now: clock.now) == .unknownService)
        _ = registry.register(service: "api", address: "a", now: clock.now)
        _ = registry.register(service: "api", address: "b", now: clock.now)
        #expect(registry.deregister(service: "api", id: "zzz", now: clock.now) == .unknownInstance)
        #expect(registry.deregister(service: "api", id: "a", now: clock.now) == .done(changed: true))
        #expect(registry.instances(ofService: "api", now: clock.now).map(\.address) == ["b"])
        #expect(registry.deregister(service: "api", id: "b", now: clock.now) == .done(changed: true))
        // The last instance took its service with it.
        #expect(registry.serviceChangeIndex("api", now: clock.now) == nil)
        #expect(registry.serviceSummaries(now: clock.now).isEmpty)
        #expect(registry.serviceCount == 0)
    }

    @Test mutating func invalidNamesChangeNothing() {
        let before = registry.changeIndex
        #expect(registry.register(service: "", address: "a", now: clock.now) == .invalid(.emptyServiceName))
        #expect(registry.register(service: "api", address: "", now: clock.now) == .invalid(.emptyAddress))
        #expect(registry.register(service: String(repeating: "a", count: 254), address: "a", now: clock.now)
                == .invalid(.serviceNameTooLong(length: 254)))
        #expect(registry.register(service: "api", address: "a\u{7}b", now: clock.now) == .invalid(.addressControlCharacter("\u{7}")))
        #expect(registry.register(service: "api", address: String(repeating: "x", count: 1025), now: clock.now)
                == .invalid(.addressTooLong(length: 1025)))
        #expect(registry.register(service: "api/v1", address: "a", now: clock.now) == .invalid(.serviceNameCharacter("/")))
        #expect(registry.changeIndex == before)
        #expect(registry.instanceCount == 0)
        // The limits themselves are allowed.
        #expect(registry.register(service: String(repeating: "a", count: 253), address: String(repeating: "x", count: 1024),
                                  now: clock.now) == .registered)
    }

    @Test mutating func expiryHappensAtTheDeadlineInDeadlineOrder() {
        _ = registry.register(service: "api", address: "first", now: clock.now)
        clock.advance(.seconds(10))
        _ = registry.register(service: "api", address: "second", now: clock.now)
        clock.advance(.seconds(10))
        _ = registry.register(service: "web", address: "third", now: clock.now)

        // One nanosecond before the first deadline nothing is due.
        clock.advance(.seconds(10) - .nanoseconds(1))
        #expect(registry.expireDue(now: clock.now, limit: 100) == ExpiryProgress(expired: 0, moreDue: false))
        clock.advance(.nanoseconds(1))
        #expect(registry.expireDue(now: clock.now, limit: 100) == ExpiryProgress(expired: 1, moreDue: false))
        clock.advance(.seconds(20))
        #expect(registry.expireDue(now: clock.now, limit: 100) == ExpiryProgress(expired: 2, moreDue: false))
        #expect(expiredAddresses() == ["first", "second", "third"])
        #expect(expiredAddresses().isEmpty)
        #expect(registry.instanceCount == 0)
        #expect(registry.serviceCount == 0)
        #expect(registry.nextDeadline == nil)
    }

    @Test mutating func heartbeatMovesTheDeadline() {
        _ = registry.register(service: "api", address: "a", now: clock.now)
        _ = registry.register(service: "api", address: "b", now: clock.now)
        clock.advance(.seconds(25))
        #expect(registry.heartbeat(service: "api", id: "a", now: clock.now) == .done(changed: false))
        clock.advance(.seconds(5))
        // b's deadline passed; a's stale index key is re-keyed, not expired.
        #expect(registry.expireDue(now: clock.now, limit: 100) == ExpiryProgress(expired: 1, moreDue: false))
        #expect(expiredAddresses() == ["b"])
        #expect(registry.nextDeadline == clock.now + .seconds(25))
        clock.advance(.seconds(25))
        #expect(registry.expireDue(now: clock.now, limit: 100).expired == 1)
        #expect(expiredAddresses() == ["a"])
    }

    @Test mutating func readsNeverReturnADueInstanceEvenBeforeTheExpiryCycle() {
        _ = registry.register(service: "api", address: "old", now: clock.now)
        clock.advance(.seconds(15))
        _ = registry.register(service: "api", address: "new", now: clock.now)
        _ = registry.register(service: "web", address: "w", now: clock.now)
        clock.advance(.seconds(15))
        // No expireDue call: the reads must still leave "old" out.
        #expect(registry.serviceSummaries(now: clock.now).first { $0.name == "api" }?.instanceCount == 1)
        let before = registry.changeIndex
        #expect(registry.serviceChangeIndex("api", now: clock.now) == before + 1)
        #expect(registry.instances(ofService: "api", now: clock.now).map(\.address) == ["new"])
        #expect(expiredAddresses() == ["old"])
    }

    @Test mutating func writesToADueInstanceTreatItAsGone() {
        _ = registry.register(service: "api", address: "a", now: clock.now)
        _ = registry.register(service: "api", address: "b", now: clock.now + .seconds(1))
        clock.advance(.seconds(30))
        #expect(registry.heartbeat(service: "api", id: "a", now: clock.now) == .unknownInstance)
        #expect(registry.deregister(service: "api", id: "a", now: clock.now) == .unknownInstance)
        // Registering again starts a new life: new uptime.
        #expect(registry.register(service: "api", address: "a", now: clock.now) == .registered)
        #expect(registry.instances(ofService: "api", now: clock.now).first { $0.address == "a" }?.registeredAt == clock.now)
        #expect(expiredAddresses() == ["a"])
        clock.advance(.seconds(1))
        #expect(registry.heartbeat(service: "api", id: "b", now: clock.now) == .unknownInstance)
        _ = registry.deregister(service: "api", id: "a", now: clock.now)
        #expect(registry.heartbeat(service: "api", id: "a", now: clock.now) == .unknownService)
    }

    @Test mutating func massExpiryIsBoundedPerCall() {
        for index in 0..<10_000 {
            _ = registry.register(service: "svc\(index % 10)", address: "addr\(index)", now: clock.now)
        }
        clock.advance(.seconds(30))
        var calls = 0
        var total = 0
        while true {
            let progress = registry.expireDue(now: clock.now, limit: 1_000)
            #expect(progress.expired <= 1_000)
            total += progress.expired
            calls += 1
            if !progress.moreDue { break }
        }
        #expect(total == 10_000)
        #expect(calls == 10)
        #expect(registry.instanceCount == 0)
        #expect(expiredAddresses().count == 10_000)
    }

    @Test mutating func changeIndexMovesOnVisibleChangesOnly() {
        let start = registry.changeIndex
        #expect(start >= 1)
        _ = registry.register(service: "api", address: "a", now: clock.now)
        #expect(registry.changeIndex == start + 1)
        _ = registry.register(service: "api", address: "a", now: clock.now)
        _ = registry.heartbeat(service: "api", id: "a", now: clock.now)
        #expect(registry.changeIndex == start + 1)
        _ = registry.register(service: "web", address: "w", now: clock.now)
        #expect(registry.serviceChangeIndex("api", now: clock.now) == start + 1)
        #expect(registry.serviceChangeIndex("web", now: clock.now) == start + 2)
        _ = registry.deregister(service: "api", id: "a", now: clock.now)
        #expect(registry.changeIndex == start + 3)
    }

    @Test mutating func registrationOrderSurvivesManyRemovals() {
        for index in 0..<100 { _ = registry.register(service: "api", address: "a\(index)", now: clock.now) }
        for index in stride(from: 0, to: 100, by: 3) {
            #expect(registry.deregister(service: "api", id: "a\(index)", now: clock.now) == .done(changed: true))
        }
        for index in stride(from: 1, to: 100, by: 3) {
            #expect(registry.deregister(service: "api", id: "a\(index)", now: clock.now) == .done(changed: true))
        }
        let expected = stride(from: 2, to: 100, by: 3).map { "a\($0)" }
        #expect(registry.instances(ofService: "api", now: clock.now).map(\.address) == expected)
        // Every survivor can still be found and removed after the holes were squeezed out.
        for address in expected {
            #expect(registry.deregister(service: "api", id: address, now: clock.now) == .done(changed: true))
        }
        #expect(registry.instanceCount == 0)
    }

    @Test mutating func slotsAreReusedAfterRemoval() {
        for round in 0..<5 {
            for index in 0..<1_000 { _ = registry.register(service: "s\(index % 7)", address: "r\(round)-\(index)", now: clock.now) }
            clock.advance(.seconds(31))
            while registry.expireDue(now: clock.now, limit: 500).moreDue {}
            #expect(registry.instanceCount == 0)
        }
        _ = expiredAddresses()
        _ = registry.register(service: "api", address: "a", now: clock.now)
        #expect(registry.instances(ofService: "api", now: clock.now).map(\.address) == ["a"])
    }
}

@Suite struct DeadlineHeapTests {
    @Test func popsInKeyOrderThroughUpdatesAndRemovals() {
        var heap = DeadlineHeap()
        var keys: [Int32: Int64] = [:]
        var generator = SplitMix64(state: 216)
        for slot in Int32(0)..<500 {
            let key = Int64.random(in: 0..<10_000, using: &generator)
            heap.insert(slot, key: key)
            keys[slot] = key
        }
        for slot in stride(from: Int32(0), to: 500, by: 5) {
            let key = Int64.random(in: 0..<10_000, using: &generator)
            heap.update(slot, key: key)
            keys[slot] = key
        }
        for slot in stride(from: Int32(1), to: 500, by: 7) {
            heap.remove(slot)
            keys[slot] = nil
        }
        var due: [Int32] = []
        heap.forEach(keyAtMost: 5_000) { due.append($0) }
        #expect(Set(due) == Set(keys.filter { $0.value <= 5_000 }.keys))
        var previous = Int64.min
        while let (slot, key) = heap.top {
            #expect(key >= previous)
            #expect(keys[slot] == key)
            previous = key
            heap.remove(slot)
            keys[slot] = nil
        }
        #expect(keys.isEmpty)
    }
}
