/// IP address literals as text, for the addresses instances give: `10.0.0.1` (four decimal
/// parts, no leading zeros beyond a single `0`) and IPv6 (`fe80::1`, `::ffff:10.0.0.1`; no
/// zone index). Nil for anything else, host names included.
public enum IPAddressText {
    public static func ipv4(_ text: Substring) -> [UInt8]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var bytes: [UInt8] = []
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.allSatisfy({ $0 >= "0" && $0 <= "9" }),
                  part.count == 1 || part.first != "0", let value = UInt16(part), value <= 255 else { return nil }
            bytes.append(UInt8(value))
        }
        return bytes
    }

    public static func ipv6(_ text: Substring) -> [UInt8]? {
        guard text.contains(":"), text.count <= 45 else { return nil }
        var rest = text
        var sawGap = false
        if rest.hasPrefix("::") {
            sawGap = true
            rest = rest.dropFirst(2)
        }
        if rest.hasSuffix("::") {
            guard !sawGap else { return nil }
            sawGap = true
            rest = rest.dropLast(2)
        }
        var groups = rest.isEmpty ? [] : rest.split(separator: ":", omittingEmptySubsequences: false)
        var embedded: [UInt8]?
        if let last = groups.last, last.contains(".") {
            guard let four = ipv4(last) else { return nil }
            embedded = four
            groups.removeLast()
        }
        var head: [UInt16] = []
        var tail: [UInt16] = []
        var gapInside = false
        for group in groups {
            if group.isEmpty {
                // One "::" in all.
                guard !sawGap, !gapInside else { return nil }
                gapInside = true
                continue
            }
            guard group.count <= 4, group.allSatisfy(\.isHexDigit), let value = UInt16(group, radix: 16) else { return nil }
            if gapInside || (sawGap && text.hasPrefix("::")) { tail.append(value) } else { head.append(value) }
        }
        let gap = sawGap || gapInside
        let words = head.count + tail.count + (embedded == nil ? 0 : 2)
        guard gap ? words <= 7 : words == 8 else { return nil }
        let all = head + [UInt16](repeating: 0, count: 8 - words) + tail
        var bytes: [UInt8] = []
        for word in all.prefix(embedded == nil ? 8 : 6) { bytes += [UInt8(word >> 8), UInt8(word & 0xFF)] }
        return bytes + (embedded ?? [])
    }
}
