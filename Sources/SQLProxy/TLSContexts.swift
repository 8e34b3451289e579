import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOSSL
import Topology

/// A TLS context rebuilt when one of its files changes on disk (checked at most once a second, as new
/// connections ask for it), so certificates and CAs are rotated without a restart. A file that fails to load
/// keeps the previous context in service and is logged.
final class ReloadingTLSContext: Sendable {
    /// A context, and the names of the certificate it shows its peers (when someone needs them).
    struct Built {
        var context: NIOSSLContext
        var shownCertificate: CertificateNames? = nil
    }

    private struct Loaded {
        var built: Built
        var stamp: [Date?]
        var checkedAt: ContinuousClock.Instant
    }

    /// What the context is, for the log ("proxy TLS certificate").
    private let what: String
    private let files: [String]
    private let make: @Sendable () throws -> Built
    private let logger: Logger
    private let loaded: NIOLockedValueBox<Loaded>

    init(_ what: String, files: [String], logger: Logger, make: @escaping @Sendable () throws -> Built) throws {
        self.what = what
        self.files = files
        self.make = make
        self.logger = logger
        let stamp = Self.stamp(files)
        loaded = NIOLockedValueBox(Loaded(built: try make(), stamp: stamp, checkedAt: ContinuousClock.now))
    }

    /// The context for a new connection.
    func current() -> NIOSSLContext { built().context }

    /// The names of the certificate the context shows, as of the files on disk (rotated with them).
    func shownCertificate() -> CertificateNames? { built().shownCertificate }

    private func built() -> Built {
        let now = ContinuousClock.now
        let (built, due) = loaded.withLockedValue { state -> (Built, Bool) in
            guard now - state.checkedAt >= .seconds(1) else { return (state.built, false) }
            state.checkedAt = now
            return (state.built, true)
        }
        guard due else { return built }
        let stamp = Self.stamp(files)
        guard loaded.withLockedValue({ $0.stamp != stamp }) else { return built }
        do {
            let fresh = try make()
            loaded.withLockedValue {
                $0.built = fresh
                $0.stamp = stamp
            }
            logger.info("\(what) reloaded", metadata: ["files": "\(files.joined(separator: ", "))"])
            return fresh
        } catch {
            loaded.withLockedValue { $0.stamp = stamp }
            logger.error(
                "\(what) could not be reloaded; keeping the previous one",
                metadata: ["files": "\(files.joined(separator: ", "))", "error": "\(error)"])
            return built
        }
    }

    private static func stamp(_ files: [String]) -> [Date?] {
        files.map { (try? FileManager.default.attributesOfItem(atPath: $0))?[.modificationDate] as? Date }
    }
}

/// The proxy's TLS server context (its certificate for clients, and the CA of clients' certificates),
/// reloaded when the files change.
final class ServerTLSContext: Sendable {
    private let reloading: ReloadingTLSContext
    /// Whether clients are asked for a certificate.
    let asksForCertificates: Bool

    /// `keyLog` receives each handshake's secrets for the TLS fast path (kept in memory only). With
    /// `clientCAFile`, clients are asked for a certificate, and one they present must be signed by that CA.
    init(
        files: ProxySettings.CertificateFiles, clientCAFile: String? = nil, logger: Logger,
        keyLog: NIOSSLKeyLogCallback? = nil
    ) throws {
        asksForCertificates = clientCAFile != nil
        reloading = try ReloadingTLSContext(
            "proxy TLS certificate", files: [files.certificateFile, files.keyFile] + [clientCAFile].compactMap { $0 },
            logger: logger
        ) { ReloadingTLSContext.Built(context: try Self.make(files, clientCAFile: clientCAFile, keyLog: keyLog)) }
    }

    /// The context for a new connection.
    func current() -> NIOSSLContext { reloading.current() }

    private static func make(
        _ files: ProxySettings.CertificateFiles, clientCAFile: String?, keyLog: NIOSSLKeyLogCallback?
    ) throws -> NIOSSLContext {
        let (chain, key, _) = try load(files)
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

/// A certificate chain and its key from PEM files, and the chain's first certificate (the one a TLS peer
/// is shown).
private func load(
    _ files: ProxySettings.CertificateFiles
) throws -> (chain: [NIOSSLCertificateSource], key: NIOSSLPrivateKeySource, first: NIOSSLCertificate) {
    let chain = try NIOSSLCertificate.fromPEMFile(files.certificateFile)
    guard let first = chain.first else { throw NoCertificate(file: files.certificateFile) }
    let key = try NIOSSLPrivateKey(file: files.keyFile, format: .pem)
    return (chain.map { .certificate($0) }, .privateKey(key), first)
}

/// The client context for backend connections, reloaded when the CA or the proxy's certificate changes;
/// nil for plaintext. With `certificate`, the proxy shows it to the servers.
func makeBackendTLSContext(
    _ mode: ProxySettings.BackendTLS, certificate: ProxySettings.CertificateFiles? = nil,
    keyLog: NIOSSLKeyLogCallback? = nil, logger: Logger
) throws -> ReloadingTLSContext? {
    var files = [certificate?.certificateFile, certificate?.keyFile].compactMap { $0 }
    switch mode {
    case .disabled: return nil
    case .verified(let caFile, _): files.insert(caFile, at: 0)
    case .unverified: break
    }
    return try ReloadingTLSContext("proxy backend TLS CA or certificate", files: files, logger: logger) {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        configuration.keyLogCallback = keyLog
        var shown: CertificateNames?
        if let certificate {
            let (chain, key, first) = try load(certificate)
            (configuration.certificateChain, configuration.privateKey) = (chain, key)
            shown = try CertificateNameReader.names(der: try first.toDERBytes())
        }
        if case .verified(let caFile, let verifyHostname) = mode {
            configuration.trustRoots = .file(caFile)
            configuration.certificateVerification = verifyHostname ? .fullVerification : .noHostnameVerification
        } else {
            configuration.certificateVerification = .none
        }
        return .init(context: try NIOSSLContext(configuration: configuration), shownCertificate: shown)
    }
}
