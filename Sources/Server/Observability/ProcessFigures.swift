#if canImport(Glibc)
import Glibc
#endif

/// What Linux says about this process, read from `/proc/self` when scraped.
enum ProcessFigures {
    struct Figures {
        var residentBytes = 0
        var virtualBytes = 0
        var cpuSeconds = 0.0
        var openDescriptors = 0
        var maxDescriptors = 0
    }

    static func read() -> Figures {
        var figures = Figures()
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        if let statm = readSmallFile("/proc/self/statm") {
            let fields = statm.split(separator: " ")
            if fields.count >= 2 {
                figures.virtualBytes = (Int(fields[0]) ?? 0) * page
                figures.residentBytes = (Int(fields[1]) ?? 0) * page
            }
        }
        var usage = rusage()
        if getrusage(RUSAGE_SELF.rawValue, &usage) == 0 {
            figures.cpuSeconds = Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
                + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
        }
        figures.openDescriptors = countDescriptors { _ in true }
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 { figures.maxDescriptors = Int(limit.rlim_cur) }
        return figures
    }

    private static func countDescriptors(where matches: (String) -> Bool) -> Int {
        guard let directory = opendir("/proc/self/fd") else { return 0 }
        defer { closedir(directory) }
        let own = dirfd(directory)
        var count = 0
        var target = [CChar](repeating: 0, count: 64)
        while let entry = readdir(directory) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            guard let descriptor = Int32(name), descriptor != own else { continue }
            let length = readlink("/proc/self/fd/" + name, &target, target.count - 1)
            guard length > 0 else { continue }
            let text = target.withUnsafeBufferPointer { String(decoding: UnsafeRawBufferPointer($0).prefix(length), as: UTF8.self) }
            if matches(text) { count += 1 }
        }
        return count
    }

    private static func readSmallFile(_ path: String) -> String? {
        let file = open(path, O_RDONLY | O_CLOEXEC)
        guard file >= 0 else { return nil }
        defer { close(file) }
        var buffer = [UInt8](repeating: 0, count: 512)
        let count = Glibc.read(file, &buffer, buffer.count)
        return count > 0 ? String(decoding: buffer[..<count], as: UTF8.self) : nil
    }
}
