import FuzzSupport
@testable import Persistence
import Registry

/// The journal record decoder: any payload decodes to an entry or is refused with a reason;
/// what decodes encodes and decodes back to the same entry, and applies to a registry.
func fuzzJournal(_ data: UnsafePointer<UInt8>, _ size: Int) {
    let payload = Array(UnsafeBufferPointer(start: data, count: size))[...]
    _ = JournalCodec.isRecord(payload)
    _ = JournalCodec.decodeSnapshotHeader(payload)
    _ = JournalCodec.decodeSnapshotTrailer(payload)
    do {
        let entry = try JournalCodec.decode(payload, wallOffset: 0)
        let again = try JournalCodec.decode(JournalCodec.encode(entry, wallOffset: 0)[...], wallOffset: 0)
        guard again == entry else { fatalError("a decoded record did not survive encoding: \(entry) became \(again)") }
    } catch {
        guard !error.reason.isEmpty else { fatalError("a refusal without a reason") }
    }
}

runFuzzer(fuzzJournal)
