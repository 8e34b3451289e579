import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOSSL
import Topology

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
    private let clientCAFile: String?
    private let logger: Logger
    private let keyLog: NIOSSLKeyLogCallback?
    private let loaded: NIOLockedValueBox<Loaded>

    /// `keyLog` receives each handshake's secrets for the TLS fast path (kept in memory only). With
    /// `clientCAFile`, clients are asked for a certificate, and one they present must be signed by that CA.
    init(
        files: ProxySettings.CertificateFiles, clientCAFile: String? = nil, logger: Logger,
        keyLog: NIOSSLKeyLogCallback? = nil
    ) throws {
        self.files = files
        self.clientCAFile = clientCAFile
        self.logger = logger
        self.keyLog = keyLog
        let stamp = Self.stamp(files, clientCAFile)
        self.loaded = NIOLockedValueBox(
            Loaded(
                context: try Self.make(files, clientCAFile: clientCAFile, keyLog: keyLog), stamp: stamp,
                checkedAt: ContinuousClock.now))
    }

    /// Whether clients are asked for a certificate.
    var asksForCertificates: Bool { clientCAFile != nil }

    /// The context for a new connection.
    func current() -> NIOSSLContext {
        let now = ContinuousClock.now
        let (context, due) = loaded.withLockedValue { state -> (NIOSSLContext, Bool) in
            guard now - state.checkedAt >= .seconds(1) else { return (state.context, false) }
            state.checkedAt = now
            return (state.context, true)
        }
        guard due else { return context }
        let stamp = Self.stamp(files, clientCAFile)
        guard loaded.withLockedValue({ $0.stamp != stamp }) else { return context }
        do {
            let fresh = try Self.make(files, clientCAFile: clientCAFile, keyLog: keyLog)
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

    private static func stamp(_ files: ProxySettings.CertificateFiles, _ clientCAFile: String?) -> [Date?] {
        ([files.certificateFile, files.keyFile] + [clientCAFile].compactMap { $0 }).map {
            (try? FileManager.default.attributesOfItem(atPath: $0))?[.modificationDate] as? Date
        }
    }

    private static func make(
        _ files: ProxySettings.CertificateFiles, clientCAFile: String?, keyLog: NIOSSLKeyLogCallback?
    ) throws -> NIOSSLContext {
        let (chain, key) = try load(files)
        var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: key)
        configuration.minimumTLSVersion = .tlsv12
        configuration.keyLogCallback = keyLog
        if let clientCAFile {
            // Asked for, not required: most accounts need no certificate. One presented must verify.
            let authorities = try NIOSSLCertificate.fromPEMFile(clientCAFile)
            guard !authorities.isEmpty else { throw NoCertificate(file: clientCAFile) }
            configuration.trustRoots = .certificates(authorities)
            configuration.certificateVerification = .optionalVerification
        }
        return try NIOSSLContext(configuration: configuration)
    }
}

struct NoCertificate: Error, CustomStringConvertible {
    var file: String
    var description: String { "\(file) holds no PEM certificate" }
}

/// A certificate chain and its key from PEM files.
private func load(
    _ files: ProxySettings.CertificateFiles
) throws -> ([NIOSSLCertificateSource], NIOSSLPrivateKeySource) {
    let chain = try NIOSSLCertificate.fromPEMFile(files.certificateFile)
    guard !chain.isEmpty else { throw NoCertificate(file: files.certificateFile) }
    let key = try NIOSSLPrivateKey(file: files.keyFile, format: .pem)
    return (chain.map { .certificate($0) }, .privateKey(key))
}

/// The names of the first certificate in a PEM file (the one a TLS peer is shown).
func certificateNames(ofPEMFile path: String) throws -> CertificateNames {
    guard let first = try NIOSSLCertificate.fromPEMFile(path).first else { throw NoCertificate(file: path) }
    return try CertificateNameReader.names(der: try first.toDERBytes())
}

/// The client context for backend connections; with `certificate`, the proxy shows it to the servers.
func makeBackendTLSContext(
    _ mode: ProxySettings.BackendTLS, certificate: ProxySettings.CertificateFiles? = nil,
    keyLog: NIOSSLKeyLogCallback? = nil
) throws -> NIOSSLContext? {
    var configuration = TLSConfiguration.makeClientConfiguration()
    configuration.minimumTLSVersion = .tlsv12
    configuration.keyLogCallback = keyLog
    if let certificate {
        (configuration.certificateChain, configuration.privateKey) = try load(certificate)
    }
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
