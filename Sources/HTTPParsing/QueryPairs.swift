import RegistryWire

/// A query string's `name=value` pairs, in order, each percent-decoded ('+' is a space, as in
/// HTML forms); empty pairs (`a=1&&b=2`) are skipped. The one reader of query strings: each
/// API decides what its names mean.
public enum QueryPairs {
    public static func each(_ raw: UnsafeBufferPointer<UInt8>?, _ body: (_ name: String, _ value: String) throws(WireProblem) -> Void)
        throws(WireProblem) {
        guard let raw, !raw.isEmpty else { return }
        for pair in raw.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
            let parts = pair.split(separator: UInt8(ascii: "="), maxSplits: 1, omittingEmptySubsequences: false)
            try body(try decode(parts[0]), parts.count > 1 ? try decode(parts[1]) : "")
        }
    }

    private static func decode(_ bytes: Slice<UnsafeBufferPointer<UInt8>>) throws(WireProblem) -> String {
        var plain = Array(bytes)
        for index in plain.indices where plain[index] == UInt8(ascii: "+") { plain[index] = 0x20 }
        switch plain.withUnsafeBufferPointer({ PercentDecoding.decode($0) }) {
        case .success(let text): return text
        case .failure: throw WireProblem(message: "malformed percent-encoding or UTF-8 in the query string")
        }
    }
}
