import Testing
@testable import Registry

/// Cluster mode: judging without changing, applying what the store committed at its
/// revisions, and expiry proposed by the leader.
@Suite struct MirrorTests {
    var clock = FakeClock()
    var mirror = Registry(policy: RegistryPolicy(heartbeatTimeout: .seconds(10), mirrored: true))

    /// Judges a registration and applies its proposal at `revision`, as a commit would.
    @discardableResult
    mutating func commitRegister(_ service: String, _ address: String, id: String? = nil, fields: InstanceFields = InstanceFields(),
                                 at revision: UInt64) -> RegisterOutcome {
        let (outcome, proposal) = mirror.judgeRegister(service: service, id: id, address: address, fields: fields, now: clock.now)
        if let state = proposal?.state { mirror.applyCommitted(.put(state), revision: revision, now: clock.now) }
        return outcome
    }

    @Test mutating func judgingChangesNothingAndApplyingCarriesTheRevision() {
        let (outcome, proposal) = mirror.judgeRegister(service: "api", address: "http://a", now: clock.now)
        #expect(outcome == .registered)
        #expect(proposal?.basedOn == 0)
        #expect(mirror.instanceCount == 0)
        #expect(!mirror.hasOutput)

        mirror.applyCommitted(.put(proposal!.state!), revision: 40, now: clock.now)
        #expect(mirror.changeIndex == 40)
        #expect(mirror.serviceChangeIndex("api", now: clock.now) == 40)
        #expect(mirror.committedRevision(service: "api", id: "http://a") == 40)
        #expect(mirror.takeChangedServices() == ["api"])

        // The same registration again: a heartbeat, nothing to commit.
        #expect(mirror.judgeRegister(service: "api", address: "http://a", now: clock.now).proposal == nil)
        // A field change is judged against revision 40.
        let retag = mirror.judgeRegister(service: "api", address: "http://a", fields: InstanceFields(tags: ["v2"]), now: clock.now)
        #expect(retag.outcome == .updated(changed: true))
        #expect(retag.proposal?.basedOn == 40)
        #expect(retag.proposal?.state?.attributes.tags == ["v2"])
        #expect(mirror.instances(ofService: "api", now: clock.now).first?.attributes.tags == [])

        // Refusals are the direct writes' own.
        #expect(mirror.judgeRegister(service: "bad name", address: "x", now: clock.now).outcome.isInvalid)
        commitRegister("api", "http://b", id: "b-1", at: 41)
        #expect(mirror.judgeRegister(service: "api", address: "b-1", now: clock.now).outcome == .conflict(existingAddress: "http://b"))
        #expect(mirror.judgeStatus(service: "api", id: "nope", status: .down).outcome == .unknownInstance)
        #expect(mirror.judgeStatus(service: "web", id: "x", status: .down).outcome == .unknownService)
        #expect(mirror.judgeStatus(service: "api", id: "b-1", status: .up).proposal == nil)
        let down = mirror.judgeStatus(service: "api", id: "b-1", status: .down)
        #expect(down.proposal?.state?.attributes.status == .down && down.proposal?.basedOn == 41)
        let gone = mirror.judgeDeregister(service: "api", id: "b-1")
        #expect(gone.outcome == .done(changed: true) && gone.proposal?.state == nil && gone.proposal?.basedOn == 41)

        mirror.applyCommitted(.remove(service: "api", id: "b-1"), revision: 45, now: clock.now)
        #expect(mirror.instanceCount == 1)
        #expect(mirror.serviceChangeIndex("api", now: clock.now) == 45)
        // A registration keeps its first registration time through later puts.
        let registered = mirror.instances(ofService: "api", now: clock.now).first!.registeredAt
        clock.advance(.seconds(3))
        mirror.applyCommitted(.put(retag.proposal!.state!), revision: 46, now: clock.now)
        #expect(mirror.instances(ofService: "api", now: clock.now).first!.registeredAt == registered)
    }

    @Test mutating func nothingExpiresOnItsOwnAndTheLeaderProposesExpiries() {
        commitRegister("api", "a", at: 2)
        commitRegister("api", "b", at: 3)
        clock.advance(.seconds(11))
        // Past every deadline: still listed, a write still finds it, no index moves.
        #expect(mirror.instances(ofService: "api", now: clock.now).count == 2)
        #expect(mirror.heartbeat(service: "api", id: "a", now: clock.now) == .done(changed: false))
        #expect(mirror.changeIndex == 3)

        // The leader: `a` heartbeated just now, `b` is due.
        var (proposals, more) = mirror.takeExpiryProposals(now: clock.now, limit: 100)
        #expect(proposals.map(\.id) == ["b"])
        #expect(proposals.first?.basedOn == 3 && proposals.first?.state == nil)
        #expect(!more)
        // Handed out once; meanwhile it is listed, but heartbeats no longer find it.
        #expect(mirror.takeExpiryProposals(now: clock.now, limit: 100).proposals.isEmpty)
        #expect(mirror.heartbeat(service: "api", id: "b", now: clock.now) == .unknownInstance)
        #expect(mirror.instances(ofService: "api", now: clock.now).count == 2)

        // Not committed: due again at the retry time.
        mirror.expiryNotCommitted(service: "api", id: "b", retryAt: clock.now + .seconds(1))
        #expect(mirror.takeExpiryProposals(now: clock.now, limit: 100).proposals.isEmpty)
        clock.advance(.seconds(1))
        (proposals, more) = mirror.takeExpiryProposals(now: clock.now, limit: 100)
        #expect(proposals.map(\.id) == ["b"])
        mirror.applyCommitted(.remove(service: "api", id: "b"), revision: 9, now: clock.now)
        #expect(mirror.instances(ofService: "api", now: clock.now).map(\.id) == ["a"])
        #expect(mirror.changeIndex == 9)

        // A heartbeat another replica took renews the deadline here.
        clock.advance(.seconds(8))
        let renewed = mirror.renewReported(service: "api", id: "a", heartbeatAt: Instant(nanoseconds: clock.now.nanoseconds - 1_000_000_000))
        #expect(renewed)
        clock.advance(.seconds(5))
        #expect(mirror.takeExpiryProposals(now: clock.now, limit: 100).proposals.isEmpty)
        let unknown = mirror.renewReported(service: "api", id: "gone", heartbeatAt: clock.now)
        #expect(!unknown)
    }

    /// In a cluster an instance is due a grace after its TTL: a follower's report of its
    /// heartbeats may take that long to reach the leader.
    @Test mutating func theGraceComesAfterTheTTL() {
        mirror = Registry(policy: RegistryPolicy(heartbeatTimeout: .seconds(10), mirrored: true, expiryGrace: .seconds(2)))
        commitRegister("api", "a", at: 2)
        clock.advance(.seconds(11))
        #expect(mirror.takeExpiryProposals(now: clock.now, limit: 100).proposals.isEmpty)
        // A report arriving now, of a heartbeat 1.5 s ago, keeps it.
        let renewed = mirror.renewReported(service: "api", id: "a", heartbeatAt: Instant(nanoseconds: clock.now.nanoseconds - 1_500_000_000))
        #expect(renewed)
        clock.advance(.seconds(10))
        #expect(mirror.takeExpiryProposals(now: clock.now, limit: 100).proposals.isEmpty)
        clock.advance(.seconds(1))
        #expect(mirror.takeExpiryProposals(now: clock.now, limit: 100).proposals.map(\.id) == ["a"])
    }

    @Test mutating func aNewLeaderGivesEveryoneAFullTTL() {
        commitRegister("api", "a", at: 2)
        clock.advance(.seconds(9))
        mirror.restartDeadlines(now: clock.now)
        clock.advance(.seconds(9))
        #expect(mirror.takeExpiryProposals(now: clock.now, limit: 100).proposals.isEmpty)
        clock.advance(.seconds(1))
        #expect(mirror.takeExpiryProposals(now: clock.now, limit: 100).proposals.map(\.id) == ["a"])
        // Registered again before the removal commits: the put wins, with a full TTL.
        let again = mirror.judgeRegister(service: "api", address: "a", now: clock.now)
        #expect(again.outcome == .registered && again.proposal?.basedOn == 2)
        mirror.applyCommitted(.put(again.proposal!.state!), revision: 5, now: clock.now)
        #expect(mirror.heartbeat(service: "api", id: "a", now: clock.now) == .done(changed: false))
        clock.advance(.seconds(9))
        #expect(mirror.takeExpiryProposals(now: clock.now, limit: 100).proposals.isEmpty)
    }

    @Test mutating func expiryProtectionHoldsInAMirrorWithoutMovingTheIndex() {
        mirror = Registry(policy: RegistryPolicy(heartbeatTimeout: .seconds(10), expiryProtection: 0.5, mirrored: true))
        for (index, name) in ["a", "b", "c", "d"].enumerated() { commitRegister("api", name, at: UInt64(index + 2)) }
        clock.advance(.seconds(11))
        let proposals = mirror.takeExpiryProposals(now: clock.now, limit: 100).proposals
        #expect(proposals.count == 2)
        #expect(mirror.changeIndex == 5)
        #expect(mirror.instances(ofService: "api", now: clock.now).filter(\.isProtected).count == 2)
    }

    @Test mutating func aLoadReconcilesTheMirrorWithTheStore() {
        commitRegister("api", "a", at: 2)
        commitRegister("api", "b", at: 3)
        commitRegister("web", "w", at: 4)
        _ = mirror.takeChangedServices()
        // The store now holds `a` unchanged, `b` changed at 9, `w` gone and `new` added at 11.
        let a = InstanceState(service: "api", id: "a", address: "a", registeredAt: clock.now)
        let b = InstanceState(service: "api", id: "b", address: "b", tags: ["t"], registeredAt: clock.now)
        let new = InstanceState(service: "new", id: "n", address: "n", registeredAt: clock.now)
        let skipped = mirror.reconcile([(a, 2), (b, 9), (new, 11)], revision: 12, now: clock.now)
        #expect(skipped.isEmpty)
        #expect(Set(mirror.takeChangedServices()) == ["api", "web", "new"])
        #expect(mirror.instances(ofService: "web", now: clock.now).isEmpty)
        #expect(mirror.instances(ofService: "api", now: clock.now).first { $0.id == "b" }?.attributes.tags == ["t"])
        // Each instance keeps its key's own revision, which later writes are judged against.
        #expect(mirror.committedRevision(service: "api", id: "a") == 2)
        #expect(mirror.committedRevision(service: "api", id: "b") == 9)
        #expect(mirror.committedRevision(service: "new", id: "n") == 11)
        #expect(mirror.changeIndex == 12)
        mirror.finishLoad(revision: 12)
        #expect(mirror.takeChangedServices().isEmpty)
    }

    @Test mutating func whatTheStoreHoldsAgainstTheRulesIsSkipped() {
        let bad = InstanceState(service: "Not A Name", id: "x", address: "a", registeredAt: clock.now)
        #expect(mirror.applyCommitted(.put(bad), revision: 7, now: clock.now) != nil)
        #expect(mirror.instanceCount == 0)
        #expect(mirror.changeIndex == 7)
    }
}

extension RegisterOutcome {
    var isInvalid: Bool {
        if case .invalid = self { return true }
        return false
    }
}
