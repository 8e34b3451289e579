import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOSSL

/// The proxy's TLS server context, rebuilt when its certificate or key file changes on disk (checked at
/// most once a second, on new connections), so certificates are rotated without a restart. A file that
/// fails to load keeps the previous context in service and is logged.
final class ServerTLSContext: Sendable {
    private struct Loaded {
        var context: NIOSSLContext
        var stamp: [Date?]
        var checkedAt: ContinuousClock.Instant
    }

    private let files: ProxySettings.CertificateFiles
    private let logger: Logger
    private let keyLog: NIOSSLKeyLogCallback?
    private let loaded: NIOLockedValueBox<Loaded>

    /// `keyLog` receives each handshake's secrets for the TLS fast path (kept in memory only).
    init(files: ProxySettings.CertificateFiles, logger: Logger, keyLog: NIOSSLKeyLogCallback? = nil) throws {
        self.files = files
        self.logger = logger
        self.keyLog = keyLog
        let stamp = Self.stamp(files)
        self.loaded = NIOLockedValueBox(
            Loaded(context: try Self.make(files, keyLog: keyLog), stamp: stamp, checkedAt: ContinuousClock.now))
    }

    /// The context for a new connection.
    func current() -> NIOSSLContext {
        let now = ContinuousClock.now
        let (context, due) = loaded.withLockedValue { state -> (NIOSSLContext, Bool) in
            guard now - state.checkedAt >= .seconds(1) else { return (state.context, false) }
            state.checkedAt = now
            return (state.context, true)
        }
        guard due else { return context }
        let stamp = Self.stamp(files)
        guard loaded.withLockedValue({ $0.stamp != stamp }) else { return context }
        do {
            let fresh = try Self.make(files, keyLog: keyLog)
            loaded.withLockedValue {
                $0.context = fresh
                $0.stamp = stamp
            }
            logger.info(
                "proxy TLS certificate reloaded", metadata: ["cert_file": "\(files.certificateFile)"])
            return fresh
        } catch {
            loaded.withLockedValue { $0.stamp = stamp }
            logger.error(
                "proxy TLS certificate could not be reloaded; keeping the previous one",
                metadata: ["cert_file": "\(files.certificateFile)", "error": "\(error)"])
            return context
        }
    }

    private static func stamp(_ files: ProxySettings.CertificateFiles) -> [Date?] {
        [files.certificateFile, files.keyFile].map {
            (try? FileManager.default.attributesOfItem(atPath: $0))?[.modificationDate] as? Date
        }
    }

    private static func make(
        _ files: ProxySettings.CertificateFiles, keyLog: NIOSSLKeyLogCallback?
    ) throws -> NIOSSLContext {
        let chain = try NIOSSLCertificate.fromPEMFile(files.certificateFile).map {
            NIOSSLCertificateSource.certificate($0)
        }
        let key = try NIOSSLPrivateKey(file: files.keyFile, format: .pem)
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        configuration.keyLogCallback = keyLog
        return try NIOSSLContext(configuration: configuration)
    }
}

/// The client context for backend connections.
func makeBackendTLSContext(
    _ mode: ProxySettings.BackendTLS, keyLog: NIOSSLKeyLogCallback? = nil
) throws -> NIOSSLContext? {
    var configuration = TLSConfiguration.makeClientConfiguration()
    configuration.minimumTLSVersion = .tlsv12
    configuration.keyLogCallback = keyLog
    switch mode {
    case .disabled:
        return nil
    case .verified(let caFile, let verifyHostname):
        configuration.trustRoots = .file(caFile)
        configuration.certificateVerification = verifyHostname ? .fullVerification : .noHostnameVerification
    case .unverified:
        configuration.certificateVerification = .none
    }
    return try NIOSSLContext(configuration: configuration)
}
