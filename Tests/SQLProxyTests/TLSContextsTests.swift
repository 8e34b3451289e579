import Foundation
import Logging
import Testing
import Topology

@testable import SQLProxy

@Suite struct TLSContextsTests {
    /// A self-signed certificate and key for `subject`, made by openssl into `directory`.
    private func certificate(_ subject: String, in directory: String, named name: String) throws {
        let openssl = Process()
        openssl.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        openssl.arguments = [
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
            "-subj", subject, "-keyout", "\(directory)/\(name).key", "-out", "\(directory)/\(name).pem",
        ]
        openssl.standardError = FileHandle.nullDevice
        try openssl.run()
        openssl.waitUntilExit()
        #expect(openssl.terminationStatus == 0)
    }

    @Test("The names of the certificate the proxy shows the servers follow the files when they are rotated")
    func shownCertificateRotates() async throws {
        let directory = NSTemporaryDirectory() + "switchyard-tls-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try certificate("/CN=first", in: directory, named: "proxy")
        try certificate("/O=Example/CN=second", in: directory, named: "next")
        let files = ProxySettings.CertificateFiles(
            certificateFile: directory + "/proxy.pem", keyFile: directory + "/proxy.key")
        let context = try #require(
            try makeBackendTLSContext(.unverified, certificate: files, logger: Logger(label: "test")))
        #expect(context.shownCertificate() == CertificateNames(subject: "/CN=first", issuer: "/CN=first"))

        // Rotated as an operator would: the new files written aside, then renamed over the old ones.
        #expect(rename(directory + "/next.key", files.keyFile) == 0)
        #expect(rename(directory + "/next.pem", files.certificateFile) == 0)
        let rotated = CertificateNames(subject: "/O=Example/CN=second", issuer: "/O=Example/CN=second")
        let deadline = ContinuousClock.now + .seconds(10)
        while context.shownCertificate() != rotated && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(context.shownCertificate() == rotated)
    }
}
