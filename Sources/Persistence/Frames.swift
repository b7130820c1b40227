/// The framing of log and snapshot files: each record is
/// `[payload length: u32 LE][CRC-32C of payload: u32 LE][payload]`.
///
/// A crash can leave the last frame half written; anything else that fails its length or
/// checksum is damage. `scan` tells the two apart, because they call for different answers:
/// a torn tail is cut off with a warning, damage stops start-up unless the operator asks for
/// a repair.
enum Frames {
    static let headerBytes = 8
    /// No single record is anywhere near this; a length above it is damage, not a record.
    static let maxPayloadBytes = 16 << 20

    /// Appends one frame whose payload `encode` writes in place; the header is filled in after.
    static func appendFrame(to writer: inout ByteWriter, _ encode: (inout ByteWriter) -> Void) {
        let start = writer.bytes.count
        writer.u64(0)
        encode(&writer)
        let length = writer.bytes.count - start - headerBytes
        let checksum = writer.bytes.withUnsafeBytes {
            CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[(start + headerBytes)...]))
        }
        writer.bytes.withUnsafeMutableBytes { buffer in
            buffer.storeBytes(of: UInt32(length).littleEndian, toByteOffset: start, as: UInt32.self)
            buffer.storeBytes(of: checksum.littleEndian, toByteOffset: start + 4, as: UInt32.self)
        }
    }

    static func append(_ payload: [UInt8], to output: inout [UInt8]) {
        var header = ByteWriter()
        header.u32(UInt32(payload.count))
        header.u32(CRC32C.checksum(payload))
        output.append(contentsOf: header.bytes)
        output.append(contentsOf: payload)
    }

    enum Ending: Equatable {
        /// Every byte belongs to a whole, valid frame.
        case clean
        /// The last frame is incomplete or fails its checksum with nothing after it: what a
        /// crash mid-write leaves. `offset` is where it starts; bytes from there are dropped.
        case tornTail(offset: Int, droppedBytes: Int)
        /// A frame before the end fails its length or checksum.
        case damaged(offset: Int, reason: String)
    }

    struct Scan {
        /// The payloads of the valid frames before any problem, in order.
        var payloads: [ArraySlice<UInt8>]
        /// The length of the valid prefix: where the next frame may be written.
        var validLength: Int
        var ending: Ending
    }

    static func scan(_ bytes: [UInt8]) -> Scan {
        var payloads: [ArraySlice<UInt8>] = []
        var offset = 0
        /// A bad frame is a torn tail only when nothing valid follows it: the length field is
        /// not covered by the checksum, so a damaged length in mid-file can point past the
        /// end and would otherwise pass for a torn tail, taking every record after it along.
        func badFrame(_ reason: String) -> Scan {
            let remaining = bytes.count - offset
            if let later = validFrame(in: bytes, after: offset) {
                return Scan(payloads: payloads, validLength: offset,
                            ending: .damaged(offset: offset, reason: "\(reason), with a valid record after it at byte \(later)"))
            }
            return Scan(payloads: payloads, validLength: offset, ending: .tornTail(offset: offset, droppedBytes: remaining))
        }
        while offset < bytes.count {
            let remaining = bytes.count - offset
            if remaining < headerBytes { return badFrame("an incomplete frame header") }
            var header = ByteReader(bytes[offset..<(offset + headerBytes)])
            let length = Int(header.u32() ?? 0)
            let expected = header.u32() ?? 0
            if length == 0 {
                // No record is empty; zeros are what a file system can leave past the last
                // write after a power loss: a torn tail if only zeros follow.
                if bytes[offset...].allSatisfy({ $0 == 0 }) {
                    return Scan(payloads: payloads, validLength: offset, ending: .tornTail(offset: offset, droppedBytes: remaining))
                }
                return Scan(payloads: payloads, validLength: offset, ending: .damaged(offset: offset, reason: "an empty frame"))
            }
            if length > maxPayloadBytes { return badFrame("a frame claims \(length) bytes") }
            let end = offset + headerBytes + length
            if end > bytes.count { return badFrame("a frame runs past the end of the file") }
            let payload = bytes[(offset + headerBytes)..<end]
            let actual = payload.withUnsafeBytes { CRC32C.checksum($0) }
            if actual != expected {
                // Only the very last frame can be torn; a bad frame with more after it is damage.
                if end == bytes.count { return badFrame("checksum mismatch") }
                return Scan(payloads: payloads, validLength: offset, ending: .damaged(offset: offset, reason: "checksum mismatch"))
            }
            payloads.append(payload)
            offset = end
        }
        return Scan(payloads: payloads, validLength: offset, ending: .clean)
    }

    /// The offset of the first whole frame with a matching checksum that starts after
    /// `start`, if any. Only recovery's rare bad-tail case pays for this search.
    static func validFrame(in bytes: [UInt8], after start: Int) -> Int? {
        var candidate = start + 1
        return bytes.withUnsafeBytes { raw in
            while candidate + headerBytes < bytes.count {
                let length = Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: candidate, as: UInt32.self)))
                let end = candidate + headerBytes + length
                if length > 0, length <= maxPayloadBytes, end <= bytes.count {
                    let expected = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: candidate + 4, as: UInt32.self))
                    if CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[(candidate + headerBytes)..<end])) == expected {
                        return candidate
                    }
                }
                candidate += 1
            }
            return nil
        }
    }
}
