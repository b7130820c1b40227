import HTTPParsing
import Testing

/// Where an address points, for the Prometheus targets (and Consul's Address and Port).
@Suite struct InstanceEndpointTests {
    @Test(arguments: [
        ("http://10.0.0.1:8080", "http", "10.0.0.1", 8080),
        ("http://10.0.0.1", "http", "10.0.0.1", 80),
        ("https://api.example/health?x=1", "https", "api.example", 443),
        ("HTTPS://user:pw@api.example:8443/", "https", "api.example", 8443),
        ("grpc://10.0.0.2:50051", "grpc", "10.0.0.2", 50051),
        ("10.0.0.3:5432", nil, "10.0.0.3", 5432),
        ("[::1]:81", nil, "::1", 81),
        ("http://[fe80::1]:9000/x", "http", "fe80::1", 9000),
    ] as [(String, String?, String, Int)])
    func addressesWithAHostAndAPort(address: String, scheme: String?, host: String, port: Int) {
        #expect(InstanceEndpoint.parse(address) == InstanceEndpoint(scheme: scheme, host: host, port: port))
    }

    @Test(arguments: ["not-a-url", "grpc://10.0.0.2", "10.0.0.1:0", "10.0.0.1:65536", "10.0.0.1:http", "::1:80", "[::1", "[::1]x",
                      "http://", "://x:1", "h p://x:1", "http://exa mple:1", ""])
    func addressesWithout(address: String) {
        #expect(InstanceEndpoint.parse(address) == nil)
    }

    @Test func targetsBracketIPv6() {
        #expect(InstanceEndpoint(scheme: nil, host: "::1", port: 81).target == "[::1]:81")
        #expect(InstanceEndpoint(scheme: "http", host: "a", port: 1).target == "a:1")
    }
}
