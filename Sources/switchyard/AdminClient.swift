import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// A small HTTP/1.1 client for the admin API (GET only).
struct AdminClient {
    var host: String
    var port: Int
    var token: String?

    init(url: String, token: String?) throws {
        guard let components = URLComponents(string: url), components.scheme == "http", let host = components.host,
            !host.isEmpty
        else {
            throw CLIError(
                description: "--admin must be an http://host:port URL, got '\(url)'", exitCode: ExitStatus.usage)
        }
        self.host = host
        self.port = components.port ?? 80
        self.token = token
    }

    var base: String { "http://\(host):\(port)" }

    /// GETs `path` and decodes the JSON body.
    func get<T: Decodable>(_ path: String, as type: T.Type) async throws -> T {
        let (status, body) = try await get(path)
        guard status == 200 else {
            let text = String(decoding: body, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            if status == 401 {
                throw CLIError(
                    description: "the admin API at \(base) refused the token (HTTP 401): pass --token or --config")
            }
            throw CLIError(description: "the admin API at \(base)\(path) answered HTTP \(status): \(text)")
        }
        do {
            return try JSONDecoder().decode(T.self, from: Data(body))
        } catch {
            throw CLIError(
                description: "the admin API at \(base)\(path) sent a response this CLI cannot read: \(error)")
        }
    }

    func get(_ path: String) async throws -> (Int, [UInt8]) {
        let host = self.host
        let channel: NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>
        do {
            channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(.seconds(3))
                .connect(host: host, port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(
                            wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            throw CLIError(
                description: "cannot reach the admin API at \(base): \(error) (is `switchyard run` running?)",
                exitCode: ExitStatus.adminUnreachable)
        }
        var headers = HTTPHeaders([
            ("Host", "\(host):\(port)"), ("Connection", "close"), ("Accept", "application/json"),
        ])
        if let token { headers.add(name: "Authorization", value: "Bearer \(token)") }
        let request = HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: headers)
        do {
            return try await withThrowingTaskGroup(of: (Int, [UInt8]).self) { group in
                group.addTask {
                    try await channel.executeThenClose { inbound, outbound in
                        // The request goes in one write. A server may answer and close before the write
                        // completes (the write then fails); its whole answer still counts.
                        var writeFailure: (any Error)?
                        do {
                            try await outbound.write(contentsOf: [.head(request), .end(nil)])
                        } catch {
                            writeFailure = error
                        }
                        var status = 0
                        var body: [UInt8] = []
                        var readFailure: (any Error)?
                        do {
                            for try await part in inbound {
                                switch part {
                                case .head(let head): status = Int(head.status.code)
                                case .body(let buffer): body.append(contentsOf: buffer.readableBytesView)
                                case .end: return (status, body)
                                }
                            }
                        } catch {
                            readFailure = error
                        }
                        throw AnswerCutShort(gotHead: status != 0, cause: readFailure ?? writeFailure)
                    }
                }
                group.addTask {
                    try await Task.sleep(for: .seconds(10))
                    throw CLIError(
                        description: "the admin API at \(base) did not answer within 10 s",
                        exitCode: ExitStatus.adminUnreachable)
                }
                let first = try await group.next() ?? (0, [])
                group.cancelAll()
                return first
            }
        } catch let error as CLIError {
            throw error
        } catch let error as AnswerCutShort {
            throw CLIError(
                description: "the admin API at \(base) closed the connection \(error)",
                exitCode: ExitStatus.adminUnreachable)
        } catch {
            throw CLIError(
                description: "the admin API at \(base) closed the connection: \(error)",
                exitCode: ExitStatus.adminUnreachable)
        }
    }
}

/// The admin API closed the connection before the end of its answer.
private struct AnswerCutShort: Error, CustomStringConvertible {
    var gotHead: Bool
    /// The read's or the write's error, if either failed.
    var cause: (any Error)?
    var description: String {
        (gotHead ? "in the middle of its answer" : "before answering") + (cause.map { " (\($0))" } ?? "")
    }
}
