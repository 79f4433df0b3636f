import Glibc

/// Buffered output to a file descriptor, flushed in large writes. A closed pipe (`| head`)
/// ends the output quietly instead of killing the process.
///
/// - Important: Use it from one task at a time (it is handed to a stream's serial callback,
///   hence `@unchecked Sendable`).
public final class Output: @unchecked Sendable {
    let fd: Int32
    var buffer: [UInt8] = []
    /// Set once the reader went away (EPIPE); further output is dropped.
    public private(set) var closed = false

    public init(fd: Int32 = 1) {
        self.fd = fd
        buffer.reserveCapacity(1 << 20)
    }

    public func write(_ bytes: some Sequence<UInt8>) {
        buffer.append(contentsOf: bytes)
        if buffer.count >= 1 << 20 { flush() }
    }

    public func write(_ text: String) { write(text.utf8) }

    public func flush() {
        defer { buffer.removeAll(keepingCapacity: true) }
        guard !closed else { return }
        var offset = 0
        while offset < buffer.count {
            let n = buffer.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                closed = true
                return
            }
            offset += n
        }
    }
}
