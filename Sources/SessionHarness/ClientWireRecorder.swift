import NIOConcurrencyHelpers
import NIOCore

/// What the client side of a driven session saw: every byte the session wrote, and whether it wrote
/// after it had closed the connection.
struct ClientWire: Sendable {
    var bytes: [UInt8] = []
    var closeRequested = false
    var writesAfterClose = 0
}

/// Sits next to the channel's head on the client side and records the session's writes and its close.
final class ClientWireRecorder: ChannelOutboundHandler {
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let wire: NIOLockedValueBox<ClientWire>

    init(_ wire: NIOLockedValueBox<ClientWire>) {
        self.wire = wire
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let buffer = unwrapOutboundIn(data)
        wire.withLockedValue { wire in
            if wire.closeRequested {
                wire.writesAfterClose += 1
            } else {
                wire.bytes.append(contentsOf: buffer.readableBytesView)
            }
        }
        context.write(data, promise: promise)
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        wire.withLockedValue { $0.closeRequested = true }
        context.close(mode: mode, promise: promise)
    }
}
