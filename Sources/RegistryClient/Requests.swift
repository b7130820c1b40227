/// Paths for the registry's API; the bodies are RegistryWire's `RegistrationRequest` and
/// `InstanceReference`.
public enum Requests {
    /// `prefix` + the percent-encoded service name + the query.
    public static func path(_ prefix: String, service: String?, query: [(name: String, value: String)] = []) -> String {
        var path = prefix
        if let service { path += "/" + percentEncoded(service) }
        if !query.isEmpty {
            path += "?" + query.map { percentEncoded($0.name) + "=" + percentEncoded($0.value) }.joined(separator: "&")
        }
        return path
    }

    /// Everything but RFC 3986's unreserved characters is percent-encoded.
    public static func percentEncoded(_ text: String) -> String {
        var result = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                result.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = Array("0123456789ABCDEF".utf8)
                result += "%" + String(decoding: [hex[Int(byte >> 4)], hex[Int(byte & 0xF)]], as: UTF8.self)
            }
        }
        return result
    }
}
