/// Finds the next whole, valid frame after damage, in time linear in the bytes searched.
///
/// Every offset could start a frame, and checking one means a CRC over up to
/// `Frames.maxPayloadBytes` bytes: done naively that is quadratic in the size of the damage
/// (nine megabytes of garbage took 15 s). Instead the search keeps the CRC register's state
/// after every byte of a window (one pass), and uses that the register is linear over GF(2):
/// the checksum of `bytes[a..<b]` is
///
///     (x^(8(b-a)) · (0xFFFFFFFF ⊕ P[a])) ⊕ P[b] ⊕ 0xFFFFFFFF
///
/// where `P[i]` is the register after the window's bytes up to `i`, started at 0. That is
/// one table lookup and one multiplication modulo the polynomial per candidate, whatever its
/// length: the idea behind zlib's `crc32_combine`.
enum FrameSearch {
    /// Candidate offsets per window; each window also needs the states of the longest frame
    /// past its end, so the work is (window + longest frame) / window per byte, about 1.2.
    private static let windowBytes = 1 << 20

    /// x^(8n) for every payload length a frame may have, made once, on the first search.
    private static let shifts: [UInt32] = CRC32C.byteShifts(count: Frames.maxPayloadBytes + 1)

    /// The offset of the first frame starting in `from..<before` whose length is plausible,
    /// whose checksum matches and whose payload `isRecord` accepts; nil when there is none.
    /// The frame itself may extend past `before`.
    static func nextValidFrame(in bytes: [UInt8], from start: Int, before limit: Int,
                               isRecord: (ArraySlice<UInt8>) -> Bool) -> Int? {
        let header = Frames.headerBytes
        let lastStart = min(limit - 1, bytes.count - header - 1)
        guard start <= lastStart else { return nil }
        let maxPayload = Frames.maxPayloadBytes
        var states: [UInt32] = []
        return bytes.withUnsafeBytes { raw -> Int? in
            var windowStart = start
            while windowStart <= lastStart {
                let windowEnd = min(lastStart + 1, windowStart + windowBytes)
                // States for every position a candidate's payload can start or end at.
                let base = windowStart + header
                let top = min(bytes.count, windowEnd - 1 + header + maxPayload)
                CRC32C.prefixStates(UnsafeRawBufferPointer(rebasing: raw[base..<top]), into: &states)
                for candidate in windowStart..<windowEnd {
                    let length = Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: candidate, as: UInt32.self)))
                    let payloadStart = candidate + header
                    guard length > 0, length <= maxPayload, payloadStart + length <= bytes.count else { continue }
                    let first = states[payloadStart - base]
                    let last = states[payloadStart + length - base]
                    let checksum = CRC32C.multiply(shifts[length], 0xFFFF_FFFF ^ first) ^ last ^ 0xFFFF_FFFF
                    let expected = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: candidate + 4, as: UInt32.self))
                    if checksum == expected && isRecord(bytes[payloadStart..<(payloadStart + length)]) { return candidate }
                }
                windowStart = windowEnd
            }
            return nil
        }
    }
}
