// swift-tools-version:6.1
// The two thinnest relays `benchmarks/relay-floor` measures beside HAProxy and Switchyard: bytes passed
// unchanged between a client and one server, once on a bare epoll loop and once on SwiftNIO.
import PackageDescription

let package = Package(
    name: "relay-floor",
    dependencies: [.package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2")],
    targets: [
        .target(name: "CEpoll"),
        .executableTarget(name: "epoll-relay", dependencies: ["CEpoll"]),
        .executableTarget(
            name: "nio-relay",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
            ]),
    ]
)
