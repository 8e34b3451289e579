import Foundation
import Testing
import Topology

@testable import SQLProxy

@Suite struct CertificateNameReaderTests {
    /// `openssl req -x509 -utf8 -subj "/C=FI/ST=Uusimaa/O=Example Oy/OU=Databases/CN=Jörg Müller/emailAddress=jorg@example.com"`
    /// (EC P-256, self-signed), in DER.
    static let certificate = Array(
        Data(
            base64Encoded:
                "MIICWDCCAf+gAwIBAgIUE4spYJg+ZrkCoMRcLswT0k1vUyIwCgYIKoZIzj0EAwIwgYExCzAJBgNVBAYTAkZJMRAwDgYDVQQIDAdVdXNpbWFhMRMwEQYDVQQKDApFeGFtcGxlIE95MRIwEAYDVQQLDAlEYXRhYmFzZXMxFjAUBgNVBAMMDUrDtnJnIE3DvGxsZXIxHzAdBgkqhkiG9w0BCQEWEGpvcmdAZXhhbXBsZS5jb20wHhcNMjYxMjAyMDg0NjE1WhcNMzYxMTI5MDg0NjE1WjCBgTELMAkGA1UEBhMCRkkxEDAOBgNVBAgMB1V1c2ltYWExEzARBgNVBAoMCkV4YW1wbGUgT3kxEjAQBgNVBAsMCURhdGFiYXNlczEWMBQGA1UEAwwNSsO2cmcgTcO8bGxlcjEfMB0GCSqGSIb3DQEJARYQam9yZ0BleGFtcGxlLmNvbTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABE1l9eDae7mNdIGWUIcsa7xBnRCbPHH2ftihBUGHzYKlkXrlHmwLagbZJCaFD+SNYJdWGKj6RAXt4JAiljHfuJOjUzBRMB0GA1UdDgQWBBTGkpn5vuXCVM6mYXjlK0V632KKfzAfBgNVHSMEGDAWgBTGkpn5vuXCVM6mYXjlK0V632KKfzAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0cAMEQCIEe77tkjQI5DXxk/+QX8dxsw454BIE2JdOIFLHmQJ/lBAiBB/APfH+BswxyegYQ7JZ9AtlgyEzire7P1PyUc4RyBGg=="
        )!)

    @Test("Subject and issuer come out as the server compares them (openssl x509 -nameopt compat prints the same)")
    func oneLine() throws {
        let names = try CertificateNameReader.names(der: Self.certificate)
        let expected =
            #"/C=FI/ST=Uusimaa/O=Example Oy/OU=Databases/CN=J\xC3\xB6rg M\xC3\xBCller/emailAddress=jorg@example.com"#
        #expect(names.subject == expected)
        #expect(names.issuer == expected)
    }

    /// `openssl req -x509 -multivalue-rdn -subj "/O=db\\/CN=alice/OU=x+CN=bob/CN=plus\\+sign"`: a value with `/`,
    /// a multi-valued RDN and a value with `+`.
    static let punctuated = Array(
        Data(
            base64Encoded:
                "MIIB2TCCAX+gAwIBAgIUGyVagcR4yQ8z1OciMk5jFVqYjkcwCgYIKoZIzj0EAwIwQjEUMBIGA1UECgwLZGIvQ049YWxpY2UxFjAIBgNVBAsMAXgwCgYDVQQDDANib2IxEjAQBgNVBAMMCXBsdXMrc2lnbjAeFw0yNjEyMDIwODUzMTBaFw0yNjEyMDUwODUzMTBaMEIxFDASBgNVBAoMC2RiL0NOPWFsaWNlMRYwCAYDVQQLDAF4MAoGA1UEAwwDYm9iMRIwEAYDVQQDDAlwbHVzK3NpZ24wWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAT1xCgJD1Ld8a05NTaxCtWM+pW6AFzK66ywyb5MyyGnlLb7vU88gFmUKqN3OPnBSbD90VqXaqVlOvuXW9kWphXxo1MwUTAdBgNVHQ4EFgQU1mWx+LHaM12PuOY+Q4RrlWjZ/l0wHwYDVR0jBBgwFoAU1mWx+LHaM12PuOY+Q4RrlWjZ/l0wDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiA3LSVnL7xhLFCx8HUR/1WddojX+fkAaVzZKt+noyoKeQIhAOPul35E6jXEghlzOv6h19kR4FjWjwkx19f6JFsqSxP7"
        )!)

    @Test("A slash or plus in a value is escaped, and one RDN's attributes are joined with a plus, as OpenSSL 3 does")
    func punctuation() throws {
        // A subject that merely contains "/CN=alice" is not the subject /CN=alice.
        #expect(
            try CertificateNameReader.names(der: Self.punctuated).subject
                == #"/O=db\/CN=alice/OU=x+CN=bob/CN=plus\+sign"#)
    }

    @Test("Every truncation of a certificate is refused with an error, never a crash")
    func truncated() {
        for length in 0..<Self.certificate.count where length % 7 == 0 || length < 64 {
            #expect(throws: CertificateNameReader.Malformed.self) {
                try CertificateNameReader.names(der: Array(Self.certificate.prefix(length)))
            }
        }
    }

    @Test(
        "Object identifiers without a short name print dotted; wide strings print byte by byte, except OpenSSL's GeneralString case"
    )
    func unusualAttributes() {
        #expect(
            CertificateNameReader.shortName([0x2B, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x3C, 0x02, 0x01, 0x03])
                == "jurisdictionC")
        // 1.3.6.1.4.1.99999.1: no short name.
        #expect(
            CertificateNameReader.shortName([0x2B, 0x06, 0x01, 0x04, 0x01, 0x86, 0x8D, 0x1F, 0x01])
                == "1.3.6.1.4.1.99999.1")
        #expect(CertificateNameReader.shortName([0x55, 0x04, 0x03]) == "CN")
        #expect(CertificateNameReader.text([0x00, 0x41, 0x00, 0x42], tag: 0x1E) == #"\x00A\x00B"#)
        #expect(CertificateNameReader.text([0, 0, 0, 0x41, 0, 0, 0, 0x42], tag: 0x1B) == "AB")
        #expect(CertificateNameReader.text([0, 0, 1, 0x41], tag: 0x1B) == #"\x00\x00\x01A"#)
        #expect(CertificateNameReader.text(Array("a/b".utf8)[...], tag: 0x0C) == #"a\/b"#)
    }
}
