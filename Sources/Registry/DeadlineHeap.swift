/// A min-heap of instance slots keyed by deadline, with each slot's position tracked so
/// that a key can be changed or a slot removed in O(log n).
///
/// The registry keeps the invariant *key ≤ the instance's real deadline*: a heartbeat only
/// moves the real deadline later and leaves the heap alone (O(1) on the hot path); when the
/// stale key reaches the top, the expiry cycle re-keys it to the real deadline. Each instance
/// is therefore re-keyed at most once per timeout instead of once per heartbeat.
struct DeadlineHeap {
    private struct Entry {
        var key: Int64
        var slot: Int32
    }

    private var entries: [Entry] = []
    /// `positions[slot]` is the slot's index in `entries`, or -1 when it is not in the heap.
    private var positions: [Int32] = []

    /// The smallest key and its slot, or nil when the heap is empty.
    var top: (slot: Int32, key: Int64)? {
        guard let first = entries.first else { return nil }
        return (first.slot, first.key)
    }

    func contains(_ slot: Int32) -> Bool {
        Int(slot) < positions.count && positions[Int(slot)] >= 0
    }

    func key(of slot: Int32) -> Int64 {
        entries[Int(positions[Int(slot)])].key
    }

    mutating func insert(_ slot: Int32, key: Int64) {
        precondition(!contains(slot), "slot \(slot) is already in the deadline heap")
        while positions.count <= Int(slot) { positions.append(-1) }
        entries.append(Entry(key: key, slot: slot))
        positions[Int(slot)] = Int32(entries.count - 1)
        siftUp(entries.count - 1)
    }

    /// Changes the key of a slot already in the heap, in either direction.
    mutating func update(_ slot: Int32, key: Int64) {
        let index = Int(positions[Int(slot)])
        let old = entries[index].key
        entries[index].key = key
        if key < old { siftUp(index) } else if key > old { siftDown(index) }
    }

    mutating func remove(_ slot: Int32) {
        let index = Int(positions[Int(slot)])
        positions[Int(slot)] = -1
        let last = entries.removeLast()
        guard index < entries.count else { return }
        entries[index] = last
        positions[Int(last.slot)] = Int32(index)
        if index > 0 && last.key < entries[(index - 1) / 2].key {
            siftUp(index)
        } else {
            siftDown(index)
        }
    }

    /// Calls `body` for every slot whose key is ≤ `limit`, in no particular order, visiting
    /// only those entries and their immediate children: O(number of such entries).
    func forEach(keyAtMost limit: Int64, _ body: (Int32) -> Void) {
        guard let first = entries.first, first.key <= limit else { return }
        var stack: [Int] = [0]
        while let index = stack.popLast() {
            body(entries[index].slot)
            let left = 2 * index + 1
            if left < entries.count && entries[left].key <= limit { stack.append(left) }
            if left + 1 < entries.count && entries[left + 1].key <= limit { stack.append(left + 1) }
        }
    }

    private mutating func siftUp(_ start: Int) {
        var index = start
        let moving = entries[index]
        while index > 0 {
            let parent = (index - 1) / 2
            guard moving.key < entries[parent].key else { break }
            entries[index] = entries[parent]
            positions[Int(entries[index].slot)] = Int32(index)
            index = parent
        }
        entries[index] = moving
        positions[Int(moving.slot)] = Int32(index)
    }

    private mutating func siftDown(_ start: Int) {
        var index = start
        let moving = entries[index]
        let count = entries.count
        while true {
            let left = 2 * index + 1
            guard left < count else { break }
            let right = left + 1
            let smaller = right < count && entries[right].key < entries[left].key ? right : left
            guard entries[smaller].key < moving.key else { break }
            entries[index] = entries[smaller]
            positions[Int(entries[index].slot)] = Int32(index)
            index = smaller
        }
        entries[index] = moving
        positions[Int(moving.slot)] = Int32(index)
    }
}
