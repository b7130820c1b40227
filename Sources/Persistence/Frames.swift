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
        while offset < bytes.count {
            let remaining = bytes.count - offset
            if remaining < headerBytes {
                return Scan(payloads: payloads, validLength: offset, ending: .tornTail(offset: offset, droppedBytes: remaining))
            }
            var header = ByteReader(bytes[offset..<(offset + headerBytes)])
            let length = Int(header.u32() ?? 0)
            let expected = header.u32() ?? 0
            if length > maxPayloadBytes {
                return Scan(payloads: payloads, validLength: offset,
                            ending: .damaged(offset: offset, reason: "a frame claims \(length) bytes"))
            }
            let end = offset + headerBytes + length
            if end > bytes.count {
                return Scan(payloads: payloads, validLength: offset, ending: .tornTail(offset: offset, droppedBytes: remaining))
            }
            let payload = bytes[(offset + headerBytes)..<end]
            let actual = payload.withUnsafeBytes { CRC32C.checksum($0) }
            if actual != expected {
                // Only the very last frame can be torn; a bad frame with more after it is damage.
                let ending: Ending = end == bytes.count
                    ? .tornTail(offset: offset, droppedBytes: remaining)
                    : .damaged(offset: offset, reason: "checksum mismatch")
                return Scan(payloads: payloads, validLength: offset, ending: ending)
            }
            payloads.append(payload)
            offset = end
        }
        return Scan(payloads: payloads, validLength: offset, ending: .clean)
    }
}
