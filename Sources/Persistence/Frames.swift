/// The framing of log and snapshot files: each record is
/// `[payload length: u32 LE][CRC-32C of payload: u32 LE][payload]`.
///
/// A crash can leave the last frame half written; anything else that fails its length or
/// checksum is damage. The two call for different answers: a torn tail is cut off with a
/// warning, damage stops start-up unless the operator asks for a repair. So a torn tail is
/// defined narrowly, as what a crash during one append can leave and nothing more: after the
/// last valid frame, at most one partial frame, no longer than the longest frame the server
/// can write, and then only zero bytes (what a file system can leave past the last write
/// after a power loss). Anything else, however it ends, is damage.
enum Frames {
    static let headerBytes = 8
    /// The longest payload the server can write, worked out from the field rules: a frame
    /// that claims more is damage, not a record.
    static var maxPayloadBytes: Int { JournalCodec.maxPayloadBytes }
    static var maxFrameBytes: Int { headerBytes + maxPayloadBytes }

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

    enum Ending: Equatable {
        /// Every byte belongs to a whole, valid frame.
        case clean
        /// What a crash mid-append leaves: `offset` is where it starts; the bytes from there
        /// (a partial frame, then zeros) are to be dropped.
        case tornTail(offset: Int, droppedBytes: Int)
        /// A bad frame that cannot be a torn tail. `nextValid` is where the next whole, valid
        /// record starts, if one does.
        case damaged(offset: Int, reason: String, nextValid: Int?)
    }

    struct Scan {
        /// The payloads of the valid frames before any problem, in order.
        var payloads: [ArraySlice<UInt8>]
        /// The length of the valid prefix: where the next frame may be written.
        var validLength: Int
        var ending: Ending
    }

    /// A stretch of a file that holds no valid record.
    struct DamagedRegion: Equatable {
        let offset: Int
        let length: Int
        let reason: String
    }

    /// Reads valid frames from the start and stops at the first bad one, saying whether it is
    /// a torn tail or damage. `isRecord` tells a payload this server can read from bytes that
    /// only happen to carry a matching checksum; it is asked only while looking for a valid
    /// record past a bad frame. Linear in the file's length.
    static func scan(_ bytes: [UInt8], isRecord: (ArraySlice<UInt8>) -> Bool) -> Scan {
        var payloads: [ArraySlice<UInt8>] = []
        var offset = 0
        while offset < bytes.count {
            switch frame(in: bytes, at: offset) {
            case .valid(let payload):
                payloads.append(payload)
                offset = payload.endIndex
            case .bad(let reason):
                return Scan(payloads: payloads, validLength: offset, ending: judge(bytes, badFrameAt: offset, reason, isRecord))
            }
        }
        return Scan(payloads: payloads, validLength: offset, ending: .clean)
    }

    /// Every valid frame of the file, wherever it is: after damage, the search goes on from
    /// the next valid record instead of giving up on the rest. What `--repair` keeps.
    /// A torn tail at the end is not counted as damage. Linear in the file's length.
    static func salvage(_ bytes: [UInt8], isRecord: (ArraySlice<UInt8>) -> Bool) -> (payloads: [ArraySlice<UInt8>], damaged: [DamagedRegion], tornTail: Int) {
        var payloads: [ArraySlice<UInt8>] = []
        var damaged: [DamagedRegion] = []
        var offset = 0
        while offset < bytes.count {
            let reason: String
            switch frame(in: bytes, at: offset) {
            case .valid(let payload) where isRecord(payload):
                payloads.append(payload)
                offset = payload.endIndex
                continue
            case .valid(let payload):
                damaged.append(DamagedRegion(offset: offset, length: payload.endIndex - offset, reason: "a record this server cannot read"))
                offset = payload.endIndex
                continue
            case .bad(let why):
                reason = why
            }
            switch judge(bytes, badFrameAt: offset, reason, isRecord) {
            case .clean:
                return (payloads, damaged, 0)
            case .tornTail(_, let dropped):
                return (payloads, damaged, dropped)
            case .damaged(_, let reason, let next):
                let end = next ?? bytes.count
                damaged.append(DamagedRegion(offset: offset, length: end - offset, reason: reason))
                offset = end
            }
        }
        return (payloads, damaged, 0)
    }

    private enum Frame {
        case valid(ArraySlice<UInt8>)
        case bad(String)
    }

    private static func frame(in bytes: [UInt8], at offset: Int) -> Frame {
        let remaining = bytes.count - offset
        if remaining < headerBytes { return .bad("an incomplete frame header") }
        let length = Int(load(bytes, at: offset))
        if length == 0 { return .bad("an empty frame") }
        if length > maxPayloadBytes { return .bad("a frame claims \(length) bytes, more than any record") }
        let end = offset + headerBytes + length
        if end > bytes.count { return .bad("a frame runs past the end of the file") }
        let payload = bytes[(offset + headerBytes)..<end]
        let actual = payload.withUnsafeBytes { CRC32C.checksum($0) }
        return actual == load(bytes, at: offset + 4) ? .valid(payload) : .bad("checksum mismatch")
    }

    /// Decides what a bad frame at `offset`, with every frame before it valid, is.
    private static func judge(_ bytes: [UInt8], badFrameAt offset: Int, _ reason: String,
                              _ isRecord: (ArraySlice<UInt8>) -> Bool) -> Ending {
        // The partial frame ends at the last non-zero byte; zeros after it are what a power
        // loss can leave past the last write.
        var end = bytes.count
        while end > offset && bytes[end - 1] == 0 { end -= 1 }
        let partial = end - offset
        if partial == 0 { return .tornTail(offset: offset, droppedBytes: bytes.count - offset) }
        var couldBeTorn = partial <= maxFrameBytes
        if couldBeTorn && partial >= 4 {
            let length = Int(load(bytes, at: offset))
            couldBeTorn = length > 0 && length <= maxPayloadBytes && partial <= headerBytes + length
        }
        // Even a short bad stretch is damage when a valid record follows it: a crash tears
        // only the last append.
        let next = FrameSearch.nextValidFrame(in: bytes, from: offset + 1, before: couldBeTorn ? end : bytes.count,
                                              isRecord: isRecord)
        if couldBeTorn && next == nil { return .tornTail(offset: offset, droppedBytes: bytes.count - offset) }
        return .damaged(offset: offset, reason: reason, nextValid: next)
    }

    static func load(_ bytes: [UInt8], at offset: Int) -> UInt32 {
        bytes.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: UInt32.self)) }
    }
}
