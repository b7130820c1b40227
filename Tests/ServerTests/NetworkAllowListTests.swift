@testable import Server
import Testing

/// `--check-allow`: blocks of either family, addresses as the resolver gives them (IPv4 mapped
/// into IPv6 included), and refusals of what is not an address.
@Suite struct NetworkAllowListTests {
    @Test func blocksAdmitTheirAddressesOnly() throws {
        let list = try NetworkAllowList.parse("10.0.0.0/8, ::1 ,fd00::/8").get()
        for address in ["10.1.2.3", "::1", "fd00::5", "::ffff:10.9.9.9"] {
            #expect(list.allows(address), "\(address)")
        }
        for address in ["11.0.0.1", "127.0.0.1", "fe80::1", "::2", "not-an-address", "10.0.0.1%eth0"] {
            #expect(!list.allows(address), "\(address)")
        }
        #expect(try NetworkAllowList.parse("all").get().allowsEverything)
        for bad in ["10.0.0.256", "10.0.0.0/33", "::/129", "10.0.0", "host.example"] {
            if case .success = NetworkAllowList.parse(bad) { Issue.record("\(bad) was accepted") }
        }
    }
}
