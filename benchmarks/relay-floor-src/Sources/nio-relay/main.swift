import NIOCore
import NIOPosix

// nio-relay LISTEN_PORT SERVER_PORT
//
// The floor of a relay on SwiftNIO: each accepted client channel glued to a channel to
// 127.0.0.1:SERVER_PORT, bytes passed unchanged (TLS too), one handler per channel, on one event loop
// (as Switchyard's proxy runs on this machine). Reading from one side waits while the other side is not
// writable (backpressure).

/// One side of a glued pair: what it reads goes to its partner.
final class Glue: ChannelDuplexHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    var partner: Glue?
    private var context: ChannelHandlerContext?
    private var readWaiting = false

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) { partner?.context?.write(data, promise: nil) }
    func channelReadComplete(context: ChannelHandlerContext) { partner?.context?.flush() }

    func channelInactive(context: ChannelHandlerContext) {
        partner?.context?.close(promise: nil)
        partner = nil
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { partner?.resumeReading() }
    }

    func read(context: ChannelHandlerContext) {
        if partner?.context?.channel.isWritable ?? true {
            context.read()
        } else {
            readWaiting = true
        }
    }

    private func resumeReading() {
        guard readWaiting, let context else { return }
        readWaiting = false
        context.read()
    }
}

let arguments = CommandLine.arguments
guard arguments.count == 3, let listenPort = Int(arguments[1]), let serverPort = Int(arguments[2]) else {
    print("usage: nio-relay LISTEN_PORT SERVER_PORT")
    exit(2)
}
let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
let server = try ServerBootstrap(group: group)
    .serverChannelOption(.backlog, value: 1024)
    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
    .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
    .childChannelOption(.autoRead, value: false)
    .childChannelInitializer { channel in
        let client = Glue()
        return channel.pipeline.addHandler(client).flatMap {
            ClientBootstrap(group: channel.eventLoop)
                .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                .channelInitializer { serverChannel in
                    let glue = Glue()
                    glue.partner = client
                    client.partner = glue
                    return serverChannel.pipeline.addHandler(glue)
                }
                .connect(host: "127.0.0.1", port: serverPort)
                .flatMap { _ in channel.setOption(.autoRead, value: true) }
        }
    }
    .bind(host: "127.0.0.1", port: listenPort)
    .wait()
try server.closeFuture.wait()
