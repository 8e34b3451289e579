import NIOCore

/// Collects what reaches the application above TLS in the tests' pipelines.
final class Collector: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    var received: [UInt8] = []
    var errors: [any Error] = []
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        received += Array(unwrapInboundIn(data).readableBytesView)
    }
    func errorCaught(context: ChannelHandlerContext, error: any Error) { errors.append(error) }
}
