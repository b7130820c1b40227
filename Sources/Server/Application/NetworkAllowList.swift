import DNS
#if canImport(Glibc)
import Glibc
#endif

/// The networks health checks may reach (`--check-allow`): CIDR blocks, IPv4 and IPv6. An
/// address is checked after it is resolved, so a name that resolves into a forbidden network
/// is refused as well. Empty: everything is allowed (the default, so that a local demo works).
struct NetworkAllowList: Equatable {
    struct Block: Equatable {
        /// 16 bytes; IPv4 as an IPv4-mapped IPv6 address, so one comparison serves both.
        let prefix: [UInt8]
        let bits: Int
        let text: String
    }

    let blocks: [Block]

    static let everything = NetworkAllowList(blocks: [])

    var allowsEverything: Bool { blocks.isEmpty }

    /// `10.0.0.0/8,127.0.0.1,::1/128`: a list of blocks (an address alone is one host).
    static func parse(_ text: String) -> Result<NetworkAllowList, Config.Problem> {
        var blocks: [Block] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let item = part.drop { $0 == " " }.reversed().drop { $0 == " " }.reversed().map(String.init).joined()
            if item.isEmpty { continue }
            if item == "all" || item == "any" { return .success(.everything) }
            let pieces = item.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
            guard let address = Self.bytes(of: String(pieces[0])) else {
                return .failure(Config.Problem(message: "\(item) is not an IPv4 or IPv6 address or CIDR block (like 10.0.0.0/8 or fd00::/8)"))
            }
            let isV4 = !pieces[0].contains(":")
            let maximum = isV4 ? 32 : 128
            var bits = maximum
            if pieces.count == 2 {
                guard let given = Int(pieces[1]), (0...maximum).contains(given) else {
                    return .failure(Config.Problem(message: "the prefix length in \(item) must be from 0 to \(maximum)"))
                }
                bits = given
            }
            blocks.append(Block(prefix: address, bits: isV4 ? bits + 96 : bits, text: item))
        }
        return .success(NetworkAllowList(blocks: blocks))
    }

    /// Whether checks may connect to `address` (numeric).
    func allows(_ address: String) -> Bool {
        if blocks.isEmpty { return true }
        guard let bytes = Self.bytes(of: address) else { return false }
        return blocks.contains { block in
            var remaining = block.bits
            for index in 0..<16 where remaining > 0 {
                let mask: UInt8 = remaining >= 8 ? 0xFF : ~(0xFF >> UInt8(remaining))
                if bytes[index] & mask != block.prefix[index] & mask { return false }
                remaining -= 8
            }
            return true
        }
    }

    /// 16 bytes for a numeric IPv4 or IPv6 address (IPv4 mapped), nil for anything else.
    static func bytes(of text: String) -> [UInt8]? {
        if let v4 = IPAddressText.ipv4(Substring(text)) { return [UInt8](repeating: 0, count: 10) + [0xFF, 0xFF] + v4 }
        return IPAddressText.ipv6(Substring(text))
    }
}
