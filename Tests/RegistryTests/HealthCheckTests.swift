import Testing
@testable import Registry

/// Checks as the core holds them: their verdicts are visible, journaled state; a repeated
/// registration keeps them; the rules refuse what the checker could not run; an instance
/// without a heartbeat timeout stays until it is removed.
@Suite struct HealthCheckTests {
    var clock = FakeClock()
    var registry = Registry(policy: RegistryPolicy(heartbeatTimeout: .seconds(30), journaling: true))

    static let http = HealthCheck(id: "service:a", probe: .http(.init(url: "http://127.0.0.1:8001/health")), interval: .seconds(10),
                                  timeout: .seconds(2), deregisterAfter: .seconds(60))
    static let tcp = HealthCheck(id: "db", probe: .tcp(host: "127.0.0.1", port: 5432), interval: .seconds(5), status: .passing)

    private func only(_ service: String = "api") -> InstanceSnapshot? {
        var registry = registry
        return registry.instances(ofService: service, now: clock.now).first
    }

    @Test mutating func aVerdictIsAVisibleJournaledChangeAndARepeatedRegistrationKeepsIt() throws {
        #expect(registry.register(service: "api", id: "a", address: "http://127.0.0.1:8001",
                                  fields: InstanceFields(checks: [Self.http, Self.tcp]), now: clock.now) == .registered)
        #expect(only()?.checks.map(\.status) == [.critical, .passing])
        #expect(only()?.attributes.hasCriticalCheck == true)
        #expect(only()?.attributes.health == .critical)
        _ = registry.takeJournal()

        let index = registry.changeIndex
        #expect(registry.setCheckStatus(service: "api", id: "a", check: "service:a", status: .passing, now: clock.now) == .done(changed: true))
        #expect(registry.changeIndex == index + 1)
        #expect(registry.takeJournal().count == 1)
        #expect(only()?.attributes.health == .passing)
        // The same verdict again moves nothing.
        #expect(registry.setCheckStatus(service: "api", id: "a", check: "service:a", status: .passing, now: clock.now) == .done(changed: false))
        #expect(registry.changeIndex == index + 1)

        // The seed's clients re-register as a heartbeat: the same checks keep their verdicts.
        #expect(registry.register(service: "api", id: "a", address: "http://127.0.0.1:8001",
                                  fields: InstanceFields(checks: [Self.http, Self.tcp]), now: clock.now) == .updated(changed: false))
        #expect(only()?.checks.map(\.status) == [.passing, .passing])
        // A changed definition is a new check: it starts from the status it was given.
        var changed = Self.http
        changed.interval = .seconds(20)
        #expect(registry.register(service: "api", id: "a", address: "http://127.0.0.1:8001",
                                  fields: InstanceFields(checks: [changed]), now: clock.now) == .updated(changed: true))
        #expect(only()?.checks.map(\.status) == [.critical])
        #expect(only()?.checks.first?.interval == .seconds(20))
        // An empty list removes them.
        #expect(registry.register(service: "api", id: "a", address: "http://127.0.0.1:8001",
                                  fields: InstanceFields(checks: []), now: clock.now) == .updated(changed: true))
        #expect(only()?.checks == [])
    }

    @Test mutating func unknownInstancesAndChecksAreToldApart() {
        _ = registry.register(service: "api", id: "a", address: "x", fields: InstanceFields(checks: [Self.tcp]), now: clock.now)
        #expect(registry.setCheckStatus(service: "api", id: "a", check: "nope", status: .critical, now: clock.now) == .unknownCheck)
        #expect(registry.setCheckStatus(service: "api", id: "b", check: "db", status: .critical, now: clock.now) == .unknownInstance)
        #expect(registry.setCheckStatus(service: "web", id: "a", check: "db", status: .critical, now: clock.now) == .unknownService)
        #expect(registry.judgeCheckStatus(service: "api", id: "a", check: "nope", status: .critical).outcome == .unknownCheck)
    }

    @Test mutating func aReportWithAHeartbeatRenewsTheInstance() throws {
        let ttl = HealthCheck(id: "service:a", probe: .ttl(.seconds(10)))
        _ = registry.register(service: "api", id: "a", address: "x", fields: InstanceFields(ttl: .seconds(15), checks: [ttl]), now: clock.now)
        clock.advance(.seconds(14))
        #expect(registry.setCheckStatus(service: "api", id: "a", check: "service:a", status: .passing, heartbeat: true, now: clock.now) == .done(changed: true))
        clock.advance(.seconds(14))
        #expect(only() != nil)
        clock.advance(.seconds(2))
        #expect(only() == nil)
    }

    @Test mutating func anInstanceWithoutATimeoutNeverExpires() throws {
        _ = registry.register(service: "consul", id: "c", address: "10.0.0.1:80", fields: InstanceFields(ttl: .never), now: clock.now)
        let instance = try #require(only("consul"))
        #expect(instance.ttl == InstanceAttributes.noExpiry)
        #expect(instance.deadline == Instant(nanoseconds: .max))
        clock.advance(.seconds(86_400 * 365))
        #expect(registry.expireDue(now: clock.now, limit: 100).moreDue == false)
        #expect(only("consul") != nil)
        #expect(registry.heartbeat(service: "consul", id: "c", now: clock.now) == .done(changed: false))
        // Back to a timeout: it runs from the next heartbeat.
        _ = registry.register(service: "consul", id: "c", address: "10.0.0.1:80", fields: InstanceFields(ttl: .seconds(5)), now: clock.now)
        clock.advance(.seconds(6))
        #expect(only("consul") == nil)
    }

    @Test mutating func aTakeBackRestoresVerdictsExactly() throws {
        _ = registry.register(service: "api", id: "a", address: "x", fields: InstanceFields(checks: [Self.http]), now: clock.now)
        _ = registry.takeJournal()
        _ = registry.setCheckStatus(service: "api", id: "a", check: "service:a", status: .passing, now: clock.now)
        let changes = registry.takeJournal()
        registry.revert(changes, now: clock.now)
        #expect(only()?.checks.map(\.status) == [.critical])
    }

    @Test func theRulesRefuseWhatTheCheckerCouldNotRun() {
        func refused(_ check: HealthCheck) -> String? {
            Violation.checkHealthChecks([check])?.message
        }
        func http(_ url: String, method: String = "GET", headers: [MetadataEntry] = []) -> HealthCheck {
            HealthCheck(id: "c", probe: .http(.init(url: url, method: method, headers: headers)), interval: .seconds(10))
        }
        #expect(refused(http("http://127.0.0.1:8001/health")) == nil)
        #expect(refused(http("HTTPS://[::1]:8443")) == nil)
        #expect(refused(http("http://svc.internal/health?deep=1")) == nil)
        for bad in ["ftp://x/", "http://", "http://user:pw@x/", "http://x:0/", "http://x:65536/", "http://x/#frag", "http://x/ a",
                    "http://[::1/", "http://x y/", "127.0.0.1:8001/health"] {
            #expect(refused(http(bad))?.contains("is not an http:// or https:// URL") == true, "\(bad)")
        }
        #expect(refused(http("http://x/", method: "get"))?.contains("not one the checker sends") == true)
        #expect(refused(http("http://x/", headers: [MetadataEntry("Content-Length", "5")]))?.contains("set by the checker") == true)
        #expect(refused(http("http://x/", headers: [MetadataEntry("X Bad", "5")]))?.contains("not an HTTP field name") == true)
        #expect(refused(http("http://x/", headers: [MetadataEntry("X-A", "a\r\nInjected: 1")]))?.contains("control") == true)
        #expect(refused(HealthCheck(id: "c", probe: .tcp(host: "x", port: 0), interval: .seconds(1)))?.contains("port") == true)
        #expect(refused(HealthCheck(id: "c", probe: .tcp(host: "a b", port: 80), interval: .seconds(1)))?.contains("host") == true)
        #expect(refused(HealthCheck(id: "c", probe: .tcp(host: "x", port: 80), interval: .milliseconds(100)))?.contains("interval must be from 1s") == true)
        #expect(refused(HealthCheck(id: "c", probe: .tcp(host: "x", port: 80), interval: .seconds(1), timeout: .zero))?.contains("timeout") == true)
        #expect(refused(HealthCheck(id: "c", probe: .tcp(host: "x", port: 80), interval: .seconds(1), deregisterAfter: .milliseconds(10)))?
            .contains("deregister_after") == true)
        #expect(refused(HealthCheck(id: "", probe: .ttl(.seconds(5))))?.contains("id must not be empty") == true)
        #expect(refused(HealthCheck(id: "c", probe: .ttl(.zero)))?.contains("ttl must be") == true)
        #expect(Violation.checkHealthChecks([Self.tcp, Self.tcp])?.message.contains("appears twice") == true)
        #expect(Violation.checkHealthChecks(Array(repeating: Self.tcp, count: 9))?.message.contains("at most 8") == true)
        // A registration carrying a bad check changes nothing.
        var registry = Registry(heartbeatTimeout: .seconds(30))
        let outcome = registry.register(service: "api", address: "x", fields: InstanceFields(checks: [http("gopher://x")]), now: FakeClock().now)
        guard case .invalid = outcome else { Issue.record("accepted: \(outcome)"); return }
        #expect(registry.instanceCount == 0)
    }

    @Test func checkURLsSplitAsTheCheckerSendsThem() throws {
        let plain = try #require(CheckURL("http://example.com"))
        #expect(plain.host == "example.com" && plain.port == 80 && plain.target == "/" && !plain.isHTTPS)
        #expect(plain.hostHeader == "example.com")
        let v6 = try #require(CheckURL("https://[fe80::1]:8443?x=1"))
        #expect(v6.host == "fe80::1" && v6.port == 8443 && v6.target == "/?x=1" && v6.isHTTPS)
        #expect(v6.hostHeader == "[fe80::1]:8443")
        #expect(CheckURL("http://a:99999/") == nil)
    }
}
