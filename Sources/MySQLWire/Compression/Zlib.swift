import CZlib
import NIOCore

/// The two zlib calls the compressed protocol needs, with every length bounded by the caller.
enum Zlib {
    /// Inflates a zlib stream that must produce exactly `declaredLength` bytes. Never writes more than
    /// `declaredLength + 1` bytes, however much the input would expand to: the extra byte only tells
    /// "too long" from "exact".
    static func inflate(_ input: ByteBuffer, declaredLength: Int) throws(CompressedPacketError) -> ByteBuffer {
        guard input.readableBytes > 0 else { throw CompressedPacketError(.corruptData(zlibStatus: Z_DATA_ERROR)) }
        var output = ByteBuffer()
        var status: Int32 = Z_OK
        var consumed = 0
        let produced = output.writeWithUnsafeMutableBytes(minimumWritableBytes: declaredLength + 1) { destination in
            guard let destinationBase = destination.baseAddress else { return 0 }
            var destinationLength = uLongf(declaredLength + 1)
            var sourceLength = uLong(input.readableBytes)
            status = input.withUnsafeReadableBytes { source in
                uncompress2(
                    destinationBase.assumingMemoryBound(to: Bytef.self), &destinationLength,
                    source.baseAddress?.assumingMemoryBound(to: Bytef.self), &sourceLength)
            }
            consumed = Int(sourceLength)
            return status == Z_OK ? Int(destinationLength) : 0
        }
        switch status {
        case Z_OK: break
        // uncompress2 answers Z_BUF_ERROR only when the output is full and the stream goes on.
        case Z_BUF_ERROR: throw CompressedPacketError(.inflatedTooLong(declared: declaredLength))
        default: throw CompressedPacketError(.corruptData(zlibStatus: status))
        }
        if produced > declaredLength { throw CompressedPacketError(.inflatedTooLong(declared: declaredLength)) }
        if produced < declaredLength {
            throw CompressedPacketError(.inflatedTooShort(declared: declaredLength, actual: produced))
        }
        if consumed < input.readableBytes {
            throw CompressedPacketError(.trailingBytes(count: input.readableBytes - consumed))
        }
        return output
    }

    /// Deflates `input` (zlib format) at the end of `out` and returns the compressed length, or writes
    /// nothing and returns nil when compressing fails or does not make the payload smaller.
    static func deflate(_ input: ByteBuffer, level: Int32, into out: inout ByteBuffer) -> Int? {
        let bound = Int(compressBound(uLong(input.readableBytes)))
        let written = out.writeWithUnsafeMutableBytes(minimumWritableBytes: bound) { destination in
            guard let destinationBase = destination.baseAddress else { return 0 }
            var destinationLength = uLongf(bound)
            let status = input.withUnsafeReadableBytes { source in
                compress2(
                    destinationBase.assumingMemoryBound(to: Bytef.self), &destinationLength,
                    source.baseAddress?.assumingMemoryBound(to: Bytef.self), uLong(source.count), level)
            }
            guard status == Z_OK, Int(destinationLength) < input.readableBytes else { return 0 }
            return Int(destinationLength)
        }
        return written > 0 ? written : nil
    }
}
