#if canImport(Glibc)
import Glibc
#endif
import Persistence
import Registry

/// Opens and locks the data directory, rebuilds the registry from it, and returns what the
/// server needs to keep it durable.
func restore(into registry: inout Registry, from path: String, config: Config,
             logger: Logger) throws(StorageError) -> LocalLogStore.Setup {
    let started = Clock.monotonicNow()
    let wallOffset = Clock.wallNow() - started.nanoseconds
    let directory = try DataDirectory.open(absolutePath(path))
    let (loaded, appendAt) = try Recovery.load(directory, into: &registry, now: started, wallOffset: wallOffset,
                                               repair: config.repair)
    for torn in loaded.tornTails {
        logger.warn("recovery_torn_tail", [
            "file": torn.file, "offset": torn.offset, "dropped_bytes": torn.bytes, "kept_as": torn.keptAs,
            "note": "the last crash left an append half written; it is cut off and its bytes kept aside. Under --fsync always "
                + "its changes were never acknowledged; under everysec or never they may have been",
        ])
    }
    for (position, reason) in loaded.skipped.enumerated() where position < 10 {
        logger.warn("recovery_skipped_record", ["reason": reason, "note": "breaks this server's configuration"])
    }
    if loaded.skipped.count > 10 { logger.warn("recovery_skipped_records", ["more": loaded.skipped.count - 10]) }
    for repair in loaded.repairs {
        logger.warn("recovery_repaired", [
            "file": repair.file, "kept_records": repair.keptRecords, "skipped_regions": repair.skippedRegions.count,
            "skipped_bytes": repair.skippedBytes, "kept_as": repair.keptAs,
            "note": "every valid record was kept; what the skipped bytes held is lost (a lost deregistration brings its "
                + "instance back until its TTL runs out; a lost registration or change must be made again)",
        ])
        for region in repair.skippedRegions.prefix(10) {
            logger.warn("recovery_skipped_region", ["file": repair.file, "offset": region.offset, "bytes": region.length,
                                                    "reason": region.reason])
        }
    }
    let log: LogFile
    if !loaded.repairs.isEmpty {
        // The damaged generations must never be read again: a snapshot of what was kept
        // replaces them (and deletes them; their copies stay as *.damaged).
        let generation = loaded.lastGeneration + 1
        _ = try SnapshotWriter.write(registry, generation: generation, to: directory, wallOffset: wallOffset)
        log = try directory.openLog(generation: generation)
    } else {
        for torn in loaded.tornTails where torn.generation != appendAt.generation {
            try directory.openLog(generation: torn.generation, truncatingTo: torn.offset).close()
        }
        let lastIsTorn = loaded.tornTails.contains { $0.generation == appendAt.generation }
        log = try directory.openLog(generation: appendAt.generation, truncatingTo: lastIsTorn ? appendAt.length : nil)
        // Generations older than the snapshot, and a snapshot a crash left unfinished.
        try directory.removeGenerations(below: loaded.snapshot?.generation ?? 0)
    }
    let records = loaded.logs.reduce(0) { $0 + $1.records }
    let tookMilliseconds = Clock.monotonicNow().duration(since: started).wholeNanoseconds / 1_000_000
    logger.info("restored", [
        "data_dir": directory.path, "instances": registry.instanceCount, "services": registry.serviceCount,
        "snapshot": loaded.snapshot.map { String($0.generation) } ?? "none", "log_records": records,
        "change_index": loaded.lastChangeIndex, "took_ms": tookMilliseconds, "fsync": config.fsync.rawValue,
    ])
    return LocalLogStore.Setup(directory: directory, log: log, policy: config.fsync, wallOffset: wallOffset,
                            snapshotMinimumLogBytes: config.snapshotMinimumLogBytes, changeIndexOnDisk: loaded.lastChangeIndex)
}

/// `path` made absolute against the working directory, for messages people can act on.
private func absolutePath(_ path: String) -> String {
    guard !path.hasPrefix("/") else { return path }
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    guard getcwd(&buffer, buffer.count) != nil else { return path }
    let cwd = buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    let relative = path.hasPrefix("./") ? String(path.dropFirst(2)) : path
    return cwd == "/" ? "/" + relative : cwd + "/" + relative
}
