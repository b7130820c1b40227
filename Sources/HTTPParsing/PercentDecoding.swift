/// Decodes the percent-encoding of one URI path segment (RFC 3986 §2.1).
///
/// A '%' not followed by two hex digits, and a result that is not UTF-8, are errors rather
/// than being passed through: a name the client did not mean must not reach the registry.
public enum PercentDecoding {
    public struct Problem: Error, Equatable {
        public let message: String
    }

    public static func decode(_ encoded: UnsafeBufferPointer<UInt8>) -> Result<String, Problem> {
        guard encoded.contains(UInt8(ascii: "%")) else {
            return validUTF8(encoded)
        }
        var decoded: [UInt8] = []
        decoded.reserveCapacity(encoded.count)
        var index = 0
        while index < encoded.count {
            let byte = encoded[index]
            if byte != UInt8(ascii: "%") {
                decoded.append(byte)
                index += 1
                continue
            }
            guard index + 2 < encoded.count,
                  let high = hexValue(encoded[index + 1]), let low = hexValue(encoded[index + 2]) else {
                return .failure(Problem(message: "malformed percent-encoding in the service name at byte \(index); '%' must be followed by two hex digits"))
            }
            decoded.append(high << 4 | low)
            index += 3
        }
        return validUTF8(decoded)
    }

    private static func validUTF8<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> Result<String, Problem> {
        guard let text = String(validating: bytes, as: UTF8.self) else {
            return .failure(Problem(message: "the service name is not valid UTF-8 once percent-decoded"))
        }
        return .success(text)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
