import Foundation
import Testing

/// The web dashboard against the real binary: what its answers carry (caching, the
/// Content-Security-Policy, `/`'s redirect for browsers only), and the page itself in a real
/// headless Chromium driven by Selenium (`Tests/DashboardBrowser/dashboard_checks.py`, in
/// .build/browser-tests from scripts/install-test-tools.sh), which writes the README's
/// screenshots to `DASHBOARD_SCREENSHOTS` (`.build/dashboard-screenshots` by default;
/// `make screenshots` writes them to docs/screenshots).
@Suite(.serialized) struct LiveDashboardTests {
    static let python = LiveConsulTests.root.appendingPathComponent(".build/browser-tests/bin/python")

    @Test func thePageAndItsAssetsCarryCachingAndASecurityPolicy() throws {
        let registry = try RegistryProcess()
        let http = try registry.client()
        let page = try http.request("GET", "/ui")
        #expect(page.status == 200 && page.header("Content-Type") == "text/html; charset=utf-8")
        let policy = try #require(page.header("Content-Security-Policy"))
        #expect(policy.contains("default-src 'none'") && policy.contains("script-src 'self'") && !policy.contains("unsafe-inline"))
        #expect(page.header("X-Content-Type-Options") == "nosniff" && page.header("Cache-Control") == "no-cache")
        let etag = try #require(page.header("ETag"))
        #expect(try http.request("GET", "/ui", headers: ["If-None-Match": etag]).status == 304)
        #expect(try http.request("GET", "/ui", headers: ["If-None-Match": "\"other\""]).status == 200)
        // Both assets are named by their digest and kept a year; no inline script in the page.
        let assets = page.text.components(separatedBy: "\"").filter { $0.hasPrefix("/ui/app.") }
        #expect(assets.count == 2, "\(page.text)")
        #expect(!page.text.contains("<script>") && !page.text.contains("style="))
        for asset in assets {
            let reply = try http.request("GET", asset)
            #expect(reply.status == 200 && reply.header("Cache-Control") == "public, max-age=31536000, immutable", "\(asset)")
            #expect(reply.header("Content-Type")?.hasPrefix(asset.hasSuffix(".js") ? "text/javascript" : "text/css") == true)
            #expect(!reply.text.contains("innerHTML") && !reply.text.contains("eval("))
        }
        let missing = try http.request("GET", "/ui/app.0000000000000000.js")
        #expect(missing.status == 404 && missing.header("Content-Type") == "text/plain; charset=utf-8")
        #expect(try http.request("POST", "/ui").status == 405)
        // `/`: a browser is sent to the page; curl and scripts get the 404 they always got.
        let browser = try http.request("GET", "/", headers: ["Accept": "text/html,application/xhtml+xml,*/*;q=0.8"])
        #expect(browser.status == 302 && browser.header("Location") == "/ui")
        let plain = try http.request("GET", "/")
        #expect(plain.status == 404 && plain.text.hasPrefix(#"{"status":"error","message":"no such endpoint: GET /; the API is "#))
        #expect(try http.request("POST", "/", body: "{}").status == 404)
        #expect(try http.request("GET", "/access").text
                == #"{"acl":false,"caller":"anonymous","name":null,"read":["*"],"write":["*"],"operator":true,"reads_everything":true,"writes_something":true}"#)
    }

    @Test func accessSaysWhatEachTokenMayDo() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dashboard-acl-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let acl = directory.appendingPathComponent("acl.json")
        try #"{"tokens": [{"name": "payments", "token": "payments-token-0123456789", "write": ["payment-*"], "read": ["*"]}],"#
            .appending(#""anonymous": {"read": ["public-*"]}}"#).write(to: acl, atomically: true, encoding: .utf8)
        let registry = try RegistryProcess(["--acl-file", acl.path])
        let http = try registry.client()
        #expect(try http.request("GET", "/access").text
                == #"{"acl":true,"caller":"anonymous","name":null,"read":["public-*"],"write":[],"operator":false,"reads_everything":false,"writes_something":false}"#)
        #expect(try http.request("GET", "/access", headers: ["Authorization": "Bearer payments-token-0123456789"]).text
                == #"{"acl":true,"caller":"token","name":"payments","read":["*","payment-*"],"write":["payment-*"],"operator":false,"reads_everything":true,"writes_something":true}"#)
        let unknown = try http.request("GET", "/access", headers: ["X-Registry-Token": "nobody-knows-this-token"])
        #expect(unknown.status == 401 && unknown.text.contains("not one this registry knows") && !unknown.text.contains("nobody-knows"))
        // The page itself is open: it holds no data.
        #expect(try http.request("GET", "/ui").status == 200)
    }

    @Test func theDashboardWorksInARealBrowser() throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.python.path),
                     "\(Self.python.path) is missing: run scripts/install-test-tools.sh (make test does)")
        try #require(FileManager.default.isExecutableFile(atPath: "/usr/bin/chromedriver"),
                     "chromium-driver is missing: run scripts/install-test-tools.sh (make test does)")
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("dashboard-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        let screenshots = ProcessInfo.processInfo.environment["DASHBOARD_SCREENSHOTS"]
            ?? LiveConsulTests.root.appendingPathComponent(".build/dashboard-screenshots").path
        let (status, text) = try PythonScript.run(Self.python, "Tests/DashboardBrowser/dashboard_checks.py",
                                                  [RegistryProcess.binaryURL.path, work.path, screenshots])
        #expect(status == 0, Comment(rawValue: text))
        #expect(text.contains("\ndone\n"), Comment(rawValue: text))
        print(text.split(separator: "\n").filter { $0.hasPrefix("ok:") }.joined(separator: "\n"))
        for name in ["dashboard-services-1280", "dashboard-service-1280", "dashboard-services-390", "dashboard-service-390"] {
            #expect(FileManager.default.fileExists(atPath: screenshots + "/\(name).png"), "\(name).png was not written")
        }
    }
}
