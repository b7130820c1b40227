import Testing
import TestSupport
@testable import Registry

/// The field rules as classes: every number a client can send, every hidden character,
/// and the promise that whatever can be registered can be reached again.
@Suite struct FieldRuleTests {
    var clock = FakeClock()
    var registry = Registry(policy: RegistryPolicy(heartbeatTimeout: .seconds(30), minimumTTL: .seconds(1),
                                                   maximumTTL: .seconds(600)))

    /// Every extreme a JSON number can hold reaches the core unconverted and is refused
    /// with the number that was sent; none traps, none changes anything.
    @Test(arguments: [
        (-1e10, "-10000000000"), (1e300, "1e+300"), (-1e300, "-1e+300"), (-0.0, "0"), (0, "0"),
        (1e-300, "1e-300"), (Double.nan, "nan"), (Double.infinity, "inf"), (-Double.infinity, "-inf"),
        (9.3e18, "9.3e+18"), (-9.3e18, "-9.3e+18"), (0.999, "0.999"), (600.0001, "600.0001"),
    ])
    mutating func everyTTLOutsideTheBoundsIsRefusedWithTheNumberSent(seconds: Double, shown: String) {
        let outcome = registry.register(service: "api", address: "a", fields: InstanceFields(ttl: .seconds(seconds)), now: clock.now)
        guard case .invalid(let violation) = outcome else {
            Issue.record("ttl \(seconds) was accepted: \(outcome)")
            return
        }
        #expect(violation.message == "ttl_seconds must be from 1s to 600s on this server, got \(shown)")
        #expect(registry.instanceCount == 0)
        #expect(registry.changeIndex == 1)
    }

    /// JSON cannot repeat a key, but a record read from disk could: it is refused, so that no
    /// answer ever repeats one.
    @Test mutating func aRepeatedMetadataKeyIsRefusedWhereverItComesFrom() {
        let repeated = [MetadataEntry("k", "1"), MetadataEntry("k", "2")]
        #expect(Violation.checkMetadata(repeated) == .duplicateMetadataKey("k"))
        #expect(Violation.duplicateMetadataKey("k").message == #"metadata key "k" appears twice"#)
        var registry = Registry(heartbeatTimeout: .seconds(30))
        let state = InstanceState(service: "api", id: "a", address: "http://a", metadata: repeated, registeredAt: Instant(nanoseconds: 0))
        #expect(registry.restore(.upsert(state, changeIndex: 2), now: Instant(nanoseconds: 0)) == .duplicateMetadataKey("k"))
        #expect(registry.instanceCount == 0)
    }

    @Test mutating func ttlsAtTheBoundsAreKeptExactly() {
        #expect(registry.register(service: "api", address: "a", fields: InstanceFields(ttl: .seconds(1)), now: clock.now) == .registered)
        #expect(registry.register(service: "api", address: "b", fields: InstanceFields(ttl: .seconds(600)), now: clock.now) == .registered)
        #expect(registry.register(service: "api", address: "c", fields: InstanceFields(ttl: .seconds(1.000000001)), now: clock.now) == .registered)
        _ = registry.serviceChangeIndex("api", now: clock.now)
        #expect(registry.instances(ofService: "api", now: clock.now).map(\.ttl) == [.seconds(1), .seconds(600), .nanoseconds(1_000_000_001)])
    }

    @Test(arguments: [
        "\u{2028}", "\u{2029}", "\u{202E}", "\u{202A}", "\u{2066}", "\u{2069}", "\u{200B}", "\u{200D}", "\u{FEFF}",
        "\u{00AD}", "\u{0000}", "\u{001B}", "\u{007F}", "\u{0085}", "\u{009F}", "\u{061C}", "\u{FFF9}", "\u{180E}",
    ])
    mutating func hiddenCharactersAreRefusedInEveryFreeTextField(hidden: String) {
        let text = "a\(hidden)b"
        let attempts: [RegisterOutcome] = [
            registry.register(service: "api", address: text, now: clock.now),
            registry.register(service: "api", id: text, address: "a", now: clock.now),
            registry.register(service: "api", address: "a", fields: InstanceFields(tags: [text]), now: clock.now),
            registry.register(service: "api", address: "a", fields: InstanceFields(metadata: [MetadataEntry("k", text)]), now: clock.now),
        ]
        for outcome in attempts {
            guard case .invalid(let violation) = outcome else {
                Issue.record("\(hidden.unicodeScalars.map { String($0.value, radix: 16) }) was accepted")
                continue
            }
            #expect(violation.message.contains("a control or format character"))
            // The message itself names the character without containing it.
            #expect(!violation.message.unicodeScalars.contains { Violation.isHidden($0) })
        }
        #expect(registry.instanceCount == 0)
    }

    /// The fixed table agrees with the standard library's categories on the whole BMP.
    @Test func theHiddenTableIsTheBMPsControlFormatAndSeparators() {
        for value in UInt32(0)...0xFFFF {
            guard let scalar = Unicode.Scalar(value) else { continue }
            let category = scalar.properties.generalCategory
            let expected = category == .control || category == .format || category == .lineSeparator || category == .paragraphSeparator
            #expect(Violation.isHidden(scalar) == expected, "U+\(String(value, radix: 16))")
        }
    }

    @Test mutating func visibleUnicodeIsWelcome() {
        // Emoji tag sequences (a subdivision flag) are format characters beyond the BMP: allowed.
        for text in ["café", "東京", "🙂", "a b", "🏴\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}"] {
            #expect(registry.register(service: "api", address: text, fields: InstanceFields(tags: [text], metadata: [MetadataEntry("k", text)]),
                                      now: clock.now) == .registered)
        }
    }

    @Test(arguments: [".", "..", "...", "...."])
    mutating func serviceNamesOfDotsOnlyAreRefused(name: String) {
        #expect(registry.register(service: name, address: "a", now: clock.now) == .invalid(.serviceNameOnlyDots))
        #expect(registry.heartbeat(service: name, id: "a", now: clock.now) == .invalid(.serviceNameOnlyDots))
    }

    @Test mutating func dotsWithinANameAreFine() {
        for name in [".a", "a.", "a..b", "_", "-"] {
            #expect(registry.register(service: name, address: "a", now: clock.now) == .registered, "\(name)")
        }
    }

    /// Whatever the rules let in can be heartbeated, updated and deregistered by the name it
    /// was registered under: the address stands in for a missing id, so their rules agree.
    @Test mutating func everythingRegistrableCanBeReachedAgain() {
        var random = SplitMix64(state: 7)
        for round in 0..<400 {
            let address = random.text(length: Int.random(in: 1...Violation.maxAddressLength, using: &random))
            let id: String? = Bool.random(using: &random) ? random.text(length: Int.random(in: 1...Violation.maxIDLength, using: &random)) : nil
            let service = "s\(round % 7)"
            guard registry.register(service: service, id: id, address: address, now: clock.now) == .registered else {
                Issue.record("round \(round): a generated instance was refused")
                continue
            }
            let name = id ?? address
            #expect(registry.heartbeat(service: service, id: name, now: clock.now) == .done(changed: false))
            #expect(registry.setStatus(service: service, id: name, status: .down, now: clock.now) == .done(changed: true))
            #expect(registry.deregister(service: service, id: name, now: clock.now) == .done(changed: true))
        }
        #expect(registry.instanceCount == 0)
    }
}
