import Access
import XCTest

final class SHA256Tests: XCTestCase {
    // FIPS 180-4 examples (NIST's "SHA256.pdf") and the empty message.
    func testKnownDigests() {
        XCTAssertEqual(SHA256.hex(Array("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256.hex([UInt8]()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        XCTAssertEqual(SHA256.hex([UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)),
                       "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    // Lengths around the padding boundary (55, 56, 63, 64 bytes), against sha256sum's answers.
    func testPaddingBoundaries() {
        let expected = [
            55: "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318",
            56: "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a",
            63: "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34",
            64: "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb",
        ]
        for (length, hex) in expected {
            XCTAssertEqual(SHA256.hex([UInt8](repeating: UInt8(ascii: "a"), count: length)), hex, "length \(length)")
        }
    }
}

final class AccessPolicyTests: XCTestCase {
    private func pattern(_ text: String) -> ServicePattern {
        guard case .success(let pattern) = ServicePattern.parse(text) else { fatalError("bad pattern \(text)") }
        return pattern
    }

    func testPatterns() {
        XCTAssertTrue(pattern("*").matches("anything".utf8))
        XCTAssertTrue(pattern("payment-*").matches("payment-api".utf8))
        XCTAssertTrue(pattern("payment-*").matches("payment-".utf8))
        XCTAssertFalse(pattern("payment-*").matches("payments".utf8))
        XCTAssertFalse(pattern("payment-*").matches("my-payment-api".utf8))
        XCTAssertTrue(pattern("*-internal").matches("db-internal".utf8))
        XCTAssertFalse(pattern("*-internal").matches("db-internal-2".utf8))
        XCTAssertTrue(pattern("a*b*c").matches("aXXbYYc".utf8))
        XCTAssertTrue(pattern("a*b*c").matches("abbbc".utf8))
        XCTAssertFalse(pattern("a*b*c").matches("acb".utf8))
        XCTAssertTrue(pattern("api").matches("api".utf8))
        XCTAssertFalse(pattern("api").matches("api2".utf8))
        XCTAssertFalse(pattern("api").matches("API".utf8), "names are case-sensitive, as the registry's are")
        for bad in ["", "pay ment", "a/b", "é*"] {
            guard case .failure = ServicePattern.parse(bad) else { return XCTFail("\(bad) accepted") }
        }
    }

    private let fileText = """
        {"tokens": [
           {"name": "ops", "token": "ops-token-0123456789", "operator": true},
           {"name": "payments", "sha256": "\(SHA256.hex(Array("payments-token-0123456789".utf8)))", "write": ["payment-*"], "read": ["*"]},
           {"name": "reader", "token": "reader-token-0123456789", "read": ["*"]},
           {"name": "mesh", "cert_subject": "spiffe://example.org/mesh", "read": ["mesh-*"]}],
         "anonymous": {"read": ["public-*"]}}
        """

    func testCallers() throws {
        let policy = try AccessPolicy.parse(Array(fileText.utf8))
        XCTAssertEqual(policy.caller(token: nil as String?), .anonymous(policy.anonymous))
        XCTAssertEqual(policy.caller(token: "wrong-token-0123456789"), .unknownToken)
        XCTAssertEqual(policy.caller(token: ""), .unknownToken)
        guard case .token("payments", let payments) = policy.caller(token: "payments-token-0123456789") else {
            return XCTFail("hashed token not found")
        }
        XCTAssertTrue(payments.mayWrite("payment-api"))
        XCTAssertFalse(payments.mayWrite("billing"))
        XCTAssertTrue(payments.mayRead("billing"))
        XCTAssertFalse(payments.isOperator)
        guard case .token("ops", let ops) = policy.caller(token: "ops-token-0123456789") else { return XCTFail("ops not found") }
        XCTAssertTrue(ops.isOperator && ops.mayWrite("anything") && ops.readsEverything)
        guard case .token("reader", let reader) = policy.caller(token: "reader-token-0123456789") else { return XCTFail() }
        XCTAssertFalse(reader.mayWrite("payment-api"))
        XCTAssertTrue(reader.readsEverything)
        XCTAssertTrue(policy.anonymous.mayRead("public-api"))
        XCTAssertFalse(policy.anonymous.mayRead("payment-api"))
        XCTAssertFalse(policy.anonymous.mayWrite("public-api"))
        XCTAssertFalse(policy.anonymous.readsEverything)
        // A certificate-only entry: no token presents it.
        XCTAssertEqual(policy.caller(certificateNames: ["spiffe://example.org/mesh"]).map(\.grant.read.count), 1)
        XCTAssertNil(policy.caller(certificateNames: ["someone-else"]))
        // Writing implies reading what one writes.
        let writer = Grant(write: [pattern("jobs-*")])
        XCTAssertTrue(writer.mayRead("jobs-a") && !writer.mayRead("other"))
    }

    func testNoAnonymousEntryGrantsNothing() throws {
        let policy = try AccessPolicy.parse(Array(#"{"tokens": []}"#.utf8))
        XCTAssertFalse(policy.anonymous.readsSomething)
        XCTAssertEqual(policy.caller(token: nil as String?).grant, .nothing)
    }

    func testLimitsAreReadForTokensAndAnonymous() throws {
        let policy = try AccessPolicy.parse(Array(#"""
            {"tokens": [{"name": "a", "token": "0123456789abcdef", "write": ["a-*"], "max_instances": 100, "max_services": 5,
                         "requests_per_second": 2.5, "burst": 20}],
             "anonymous": {"read": ["*"], "requests_per_second": 50}}
            """#.utf8))
        let limits = policy.entries[0].grant.limits
        XCTAssertEqual(limits, Grant.Limits(maxInstances: 100, maxServices: 5, requestsPerSecond: 2.5, burst: 20))
        XCTAssertEqual(limits.bucketSize, 20)
        XCTAssertTrue(limits.boundsHoldings)
        XCTAssertEqual(policy.anonymous.limits.requestsPerSecond, 50)
        XCTAssertEqual(policy.anonymous.limits.bucketSize, 50, "without burst, one second's worth")
        XCTAssertFalse(policy.anonymous.limits.boundsHoldings)
    }

    func testBrokenFilesAreRefusedWithTheReason() {
        let cases: [(String, String)] = [
            ("[]", "must hold a JSON object"),
            ("{", "not valid JSON"),
            (#"{"tokenz": []}"#, "unknown key \"tokenz\""),
            (#"{"tokens": [{"token": "0123456789abcdef"}]}"#, "needs a \"name\""),
            (#"{"tokens": [{"name": "a", "token": "short"}]}"#, "shorter than 16 bytes"),
            (#"{"tokens": [{"name": "a", "token": "0123456789abcdef", "sha256": "00"}]}"#, "both"),
            (#"{"tokens": [{"name": "a", "sha256": "abc"}]}"#, "64 hex digits"),
            (#"{"tokens": [{"name": "a", "read": ["*"]}]}"#, "nothing could ever present it"),
            (#"{"tokens": [{"name": "a", "token": "0123456789abcdef", "wirte": ["*"]}]}"#, "unknown key \"wirte\""),
            (#"{"tokens": [{"name": "a", "token": "0123456789abcdef", "read": "*"}]}"#, "must be an array"),
            (#"{"tokens": [{"name": "a", "token": "0123456789abcdef", "read": ["a b"]}]}"#, "no service name has"),
            (#"{"tokens": [{"name": "a", "token": "0123456789abcdef", "operator": "yes"}]}"#, "true or false"),
            (#"{"tokens": [{"name": "a", "token": "0123456789abcdef"}, {"name": "a", "token": "0123456789abcdeg"}]}"#, "named \"a\""),
            (#"{"tokens": [{"name": "a", "token": "0123456789abcdef"}, {"name": "b", "token": "0123456789abcdef"}]}"#, "same token"),
            (#"{"anonymous": {"read": ["*"], "token": "x"}}"#, "unknown key \"token\""),
            (#"{"tokens": [{"name": "a", "token": "0123456789abcdef", "max_instances": 0}]}"#, "whole number from 1"),
            (#"{"tokens": [{"name": "a", "token": "0123456789abcdef", "max_services": 2.5}]}"#, "not 2.5"),
            (#"{"tokens": [{"name": "a", "token": "0123456789abcdef", "requests_per_second": -1}]}"#, "above 0"),
            (#"{"tokens": [{"name": "a", "token": "0123456789abcdef", "burst": 10}]}"#, "needs \"requests_per_second\""),
            (#"{"anonymous": {"read": ["*"], "requests_per_second": "fast"}}"#, "not a string"),
        ]
        for (text, expected) in cases {
            do {
                _ = try AccessPolicy.parse(Array(text.utf8))
                XCTFail("accepted: \(text)")
            } catch {
                XCTAssertTrue(error.message.contains(expected), "\(text): \(error.message)")
                XCTAssertFalse(error.message.contains("0123456789abcdef"), "a message must never quote a token: \(error.message)")
            }
        }
    }
}
