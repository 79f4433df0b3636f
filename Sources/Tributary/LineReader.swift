import Glibc

/// Reads a file descriptor as lines (`\n`, with a trailing `\r` dropped), in large chunks.
struct LineReader {
    let fd: Int32
    private var buffer: [UInt8] = []
    private var start = 0
    private var eof = false
    /// Bytes consumed so far (for progress).
    private(set) var bytesRead = 0
    private(set) var lineNumber = 0

    init(fd: Int32) { self.fd = fd }

    /// Whether `next()` can return without reading (a whole line, or the end, is buffered).
    var hasBufferedLine: Bool { eof || buffer[start...].contains(0x0A) }

    /// The next line (without its terminator), or nil at the end of input.
    mutating func next() throws -> ArraySlice<UInt8>? {
        while true {
            if let newline = buffer[start...].firstIndex(of: 0x0A) {
                var end = newline
                if end > start && buffer[end - 1] == 0x0D { end -= 1 }
                let line = buffer[start..<end]
                start = newline + 1
                lineNumber += 1
                return line
            }
            if eof {
                guard start < buffer.count else { return nil }
                let line = buffer[start...]
                start = buffer.count
                lineNumber += 1
                return line
            }
            if start > 0 {
                buffer.removeFirst(start)
                start = 0
            }
            let chunk = 1 << 20
            let old = buffer.count
            buffer.reserveCapacity(old + chunk)
            var n = 0
            buffer.append(contentsOf: repeatElement(0, count: chunk))
            repeat {
                n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress! + old, chunk) }
            } while n < 0 && errno == EINTR
            if n < 0 {
                throw ImportError(line: lineNumber, message: "read failed: \(String(cString: strerror(errno)))")
            }
            buffer.removeLast(chunk - n)
            bytesRead += n
            if n == 0 { eof = true }
        }
    }
}
