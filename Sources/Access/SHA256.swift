/// SHA-256 (FIPS 180-4), for token digests: the ACL file may hold a token's digest instead
/// of the token, and every presented token is compared as its digest. Pure Swift, so that
/// the policy stays a pure target; a token is tens of bytes, hashed once per request.
public enum SHA256 {
    private static let k: [UInt32] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ]

    /// The 32-byte digest of `bytes`. Hashes contiguous bytes in place (a token is hashed on
    /// every request), with the message schedule and the padded last blocks on the stack.
    public static func digest<Bytes: Collection>(_ bytes: Bytes) -> [UInt8] where Bytes.Element == UInt8 {
        if let digest = bytes.withContiguousStorageIfAvailable({ digest(contiguous: $0) }) { return digest }
        return Array(bytes).withUnsafeBufferPointer { digest(contiguous: $0) }
    }

    private static func digest(contiguous bytes: UnsafeBufferPointer<UInt8>) -> [UInt8] {
        var h: (UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32) =
            (0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19)
        let count = bytes.count
        let bitLength = UInt64(count) &* 8
        k.withUnsafeBufferPointer { k in
            withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 64) { w in
                withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 128) { tail in
                    @inline(__always) func compress(_ block: UnsafePointer<UInt8>) {
                        for t in 0..<16 {
                            w[t] = UInt32(block[t * 4]) << 24 | UInt32(block[t * 4 + 1]) << 16 | UInt32(block[t * 4 + 2]) << 8
                                | UInt32(block[t * 4 + 3])
                        }
                        for t in 16..<64 {
                            let s0 = rotate(w[t - 15], 7) ^ rotate(w[t - 15], 18) ^ (w[t - 15] >> 3)
                            let s1 = rotate(w[t - 2], 17) ^ rotate(w[t - 2], 19) ^ (w[t - 2] >> 10)
                            w[t] = w[t - 16] &+ s0 &+ w[t - 7] &+ s1
                        }
                        var (a, b, c, d, e, f, g, hh) = h
                        for t in 0..<64 {
                            let s1 = rotate(e, 6) ^ rotate(e, 11) ^ rotate(e, 25)
                            let choice = (e & f) ^ (~e & g)
                            let t1 = hh &+ s1 &+ choice &+ k[t] &+ w[t]
                            let s0 = rotate(a, 2) ^ rotate(a, 13) ^ rotate(a, 22)
                            let majority = (a & b) ^ (a & c) ^ (b & c)
                            let t2 = s0 &+ majority
                            hh = g; g = f; f = e; e = d &+ t1; d = c; c = b; b = a; a = t1 &+ t2
                        }
                        h = (h.0 &+ a, h.1 &+ b, h.2 &+ c, h.3 &+ d, h.4 &+ e, h.5 &+ f, h.6 &+ g, h.7 &+ hh)
                    }
                    // Whole blocks straight from the input, then the rest with the padding.
                    var offset = 0
                    if let base = bytes.baseAddress {
                        while count - offset >= 64 {
                            compress(base + offset)
                            offset += 64
                        }
                    }
                    let used = count - offset
                    for position in 0..<used { tail[position] = bytes[offset + position] }
                    tail[used] = 0x80
                    let total = used + 1 + 8 <= 64 ? 64 : 128
                    for position in (used + 1)..<(total - 8) { tail[position] = 0 }
                    for byte in 0..<8 { tail[total - 8 + byte] = UInt8(truncatingIfNeeded: bitLength >> UInt64(56 - 8 * byte)) }
                    let padded = UnsafePointer(tail.baseAddress!)
                    compress(padded)
                    if total == 128 { compress(padded + 64) }
                }
            }
        }
        return [UInt8](unsafeUninitializedCapacity: 32) { out, initialized in
            func put(_ word: UInt32, at slot: Int) {
                out[slot * 4] = UInt8(truncatingIfNeeded: word >> 24)
                out[slot * 4 + 1] = UInt8(truncatingIfNeeded: word >> 16)
                out[slot * 4 + 2] = UInt8(truncatingIfNeeded: word >> 8)
                out[slot * 4 + 3] = UInt8(truncatingIfNeeded: word)
            }
            put(h.0, at: 0); put(h.1, at: 1); put(h.2, at: 2); put(h.3, at: 3)
            put(h.4, at: 4); put(h.5, at: 5); put(h.6, at: 6); put(h.7, at: 7)
            initialized = 32
        }
    }

    /// The digest as lowercase hex, the form the ACL file's `sha256` holds.
    public static func hex<Bytes: Collection>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        for byte in digest(bytes) { text.append(digits[Int(byte >> 4)]); text.append(digits[Int(byte & 15)]) }
        return String(decoding: text, as: UTF8.self)
    }

    @inline(__always) private static func rotate(_ x: UInt32, _ n: UInt32) -> UInt32 { (x >> n) | (x << (32 - n)) }
}
