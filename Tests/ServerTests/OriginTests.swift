import Foundation
import Testing
@testable import Server

/// Cross-site writes from browsers: refused unless same-origin or listed; CORS for listed.
@Suite struct OriginPolicyTests {
    let policy = OriginPolicy(allowed: ["http://dash.example:8080", "HTTPS://Ops.Example:443"])

    @Test func writesFromAnotherSiteAreRefused() {
        if case .refused = policy.judge(isWrite: true, origin: "http://evil.example", host: "registry:5001", fetchSite: "cross-site") {} else {
            Issue.record("a cross-site write was not refused")
        }
        if case .refused = policy.judge(isWrite: true, origin: "null", host: "registry:5001", fetchSite: nil) {} else {
            Issue.record("a write from an opaque origin was not refused")
        }
        if case .refused = policy.judge(isWrite: true, origin: nil, host: "registry:5001", fetchSite: "cross-site") {} else {
            Issue.record("a cross-site write without Origin was not refused")
        }
    }

    @Test func sameOriginListedOriginsAndNonBrowsersProceed() {
        #expect(policy.judge(isWrite: true, origin: "http://10.0.0.7:5001", host: "10.0.0.7:5001", fetchSite: "same-origin") == .proceed)
        #expect(policy.judge(isWrite: true, origin: "http://LOCALHOST", host: "localhost:80", fetchSite: nil) == .proceed)
        #expect(policy.judge(isWrite: true, origin: "http://[::1]:5001", host: "[::1]:5001", fetchSite: nil) == .proceed)
        // The TLS listener's own pages (the dashboard over HTTPS) are https: and only there.
        #expect(policy.judge(isWrite: true, origin: "https://127.0.0.1:5443", host: "127.0.0.1:5443", fetchSite: nil, secure: true) == .proceed)
        #expect(policy.judge(isWrite: true, origin: "https://localhost", host: "localhost:443", fetchSite: nil, secure: true) == .proceed)
        if case .refused = policy.judge(isWrite: true, origin: "http://127.0.0.1:5443", host: "127.0.0.1:5443", fetchSite: nil, secure: true) {} else {
            Issue.record("an http: origin passed on the TLS listener")
        }
        if case .refused = policy.judge(isWrite: true, origin: "https://127.0.0.1:5001", host: "127.0.0.1:5001", fetchSite: nil) {} else {
            Issue.record("an https: origin passed on the plain listener")
        }
        #expect(policy.judge(isWrite: true, origin: nil, host: "registry:5001", fetchSite: nil) == .proceed)
        #expect(policy.judge(isWrite: true, origin: "http://dash.example:8080", host: "registry:5001", fetchSite: "cross-site")
                == .allowed(origin: "http://dash.example:8080"))
        #expect(policy.judge(isWrite: true, origin: "https://ops.example", host: "registry:5001", fetchSite: nil)
                == .allowed(origin: "https://ops.example"))
        // Reads from other sites proceed, without CORS headers: the browser keeps the answer
        // from the page.
        #expect(policy.judge(isWrite: false, origin: "http://evil.example", host: "registry:5001", fetchSite: "cross-site") == .proceed)
    }

    /// DNS rebinding: a page on evil.example whose name now resolves to the registry sends
    /// `Host: evil.example` with its own origin. Agreeing headers prove nothing for a name.
    @Test func aHostNameIsNotItsOwnProofOfOrigin() {
        if case .refused = policy.judge(isWrite: true, origin: "http://evil.example:5001", host: "evil.example:5001", fetchSite: "same-origin") {} else {
            Issue.record("a rebound host name was taken for the registry's own origin")
        }
        if case .refused = policy.judge(isWrite: true, origin: "http://registry:5001", host: "registry:5001", fetchSite: "same-origin") {} else {
            Issue.record("an unlisted host name was taken for the registry's own origin")
        }
        // Listed, it may write.
        let listed = OriginPolicy(allowed: ["http://registry:5001"])
        #expect(listed.judge(isWrite: true, origin: "http://registry:5001", host: "registry:5001", fetchSite: "same-origin")
                == .allowed(origin: "http://registry:5001"))
        for authority in ["1.2.3.4", "1.2.3.4:80", "[fe80::1]:5001", "localhost:9"] { #expect(OriginPolicy.isUnrebindable(authority), "\(authority)") }
        for authority in ["1.2.3", "1.2.3.256", "1.2.3.4.nip.io", "127.0.0.1.evil.example", "[]", "localhost.evil", "x"] {
            #expect(!OriginPolicy.isUnrebindable(authority), "\(authority)")
        }
    }

    @Test func originsAreNormalized() {
        #expect(OriginPolicy.normalized("HTTP://Host:80") == "http://host")
        #expect(OriginPolicy.normalized("https://h:8443") == "https://h:8443")
        #expect(OriginPolicy.normalized("http://h/path") == nil)
        #expect(OriginPolicy.normalized("ftp://h") == nil)
        #expect(OriginPolicy.normalized("http://") == nil)
    }
}

@Suite struct LiveOriginTests {
    @Test func browsersOfOtherSitesCannotWrite() throws {
        let registry = try RegistryProcess(["--allowed-origins", "http://dash.example:8080"])
        let http = try registry.client()
        let body = #"{"service":"api","address":"a"}"#
        let evil = try http.request("POST", "/register", body: body, headers: ["Origin": "http://evil.example", "Content-Type": "text/plain"])
        #expect(evil.status == 403)
        #expect((evil.json["message"] as? String)?.contains("--allowed-origins") == true)
        #expect(try registry.client().request("GET", "/discover/api").status == 404)
        let sneaky = try registry.client().request("POST", "/register", body: body, headers: ["Sec-Fetch-Site": "cross-site"])
        #expect(sneaky.status == 403)
        // The registry's own origin, and clients that send no Origin, write as always.
        let own = try registry.client().request("POST", "/register", body: body, headers: ["Origin": "http://127.0.0.1:\(registry.port)"])
        #expect(own.status == 201)
        #expect(try registry.client().request("POST", "/heartbeat", body: body).status == 200)
        // A listed origin may write, and gets CORS headers; so do its reads.
        let listed = try registry.client().request("POST", "/deregister", body: body, headers: ["Origin": "http://dash.example:8080"])
        #expect(listed.status == 200)
        #expect(listed.header("Access-Control-Allow-Origin") == "http://dash.example:8080")
        let read = try registry.client().request("GET", "/services", headers: ["Origin": "http://dash.example:8080"])
        #expect(read.header("Access-Control-Allow-Origin") == "http://dash.example:8080")
        #expect(read.header("Access-Control-Expose-Headers") == "X-Registry-Index")
        let unlisted = try registry.client().request("GET", "/services", headers: ["Origin": "http://evil.example"])
        #expect(unlisted.status == 200)
        #expect(unlisted.header("Access-Control-Allow-Origin") == nil)
        // The preflight a browser sends before a JSON POST.
        let preflight = try registry.client().request("OPTIONS", "/register", headers: [
            "Origin": "http://dash.example:8080", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        ])
        #expect(preflight.status == 204)
        #expect(preflight.header("Access-Control-Allow-Methods") == "POST")
        #expect(preflight.header("Access-Control-Allow-Headers")?.contains("Content-Type") == true)
        #expect(registry.log.contains("cross_origin_write_refused"))
    }

    @Test func aBadOriginListIsRefusedAtStart() throws {
        let (status, stderr) = try RegistryProcess.runToExit(["--allowed-origins", "http://ok.example,dash.example/path"])
        #expect(status == 2)
        #expect(stderr.contains("--allowed-origins must list origins like"))
    }
}
