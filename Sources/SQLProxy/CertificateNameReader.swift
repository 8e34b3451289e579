package import Topology

/// Reads a certificate's subject and issuer from its DER bytes and writes them the way MariaDB compares
/// them with an account's `REQUIRE SUBJECT` and `ISSUER` (OpenSSL 3's `X509_NAME_oneline`, as
/// `openssl x509 -noout -subject -nameopt compat` prints it): each attribute in order as `/` + short name +
/// `=` + value (`+` instead of `/` between the attributes of one multi-valued RDN), `/` and `+` in a value
/// escaped with a backslash, a byte outside printable ASCII as `\xHH`.
package enum CertificateNameReader {
    package struct Malformed: Error, CustomStringConvertible {
        package var description: String
    }

    package static func names(der: [UInt8]) throws(Malformed) -> CertificateNames {
        var whole = DER(bytes: der[...])
        var certificate = try whole.constructed(0x30, "Certificate")
        var tbs = try certificate.constructed(0x30, "TBSCertificate")
        if tbs.peekTag == 0xA0 { _ = try tbs.element(0xA0, "version") }
        _ = try tbs.element(0x02, "serialNumber")
        _ = try tbs.element(0x30, "signature")
        let issuer = try oneLine(tbs.constructed(0x30, "issuer"))
        _ = try tbs.element(0x30, "validity")
        let subject = try oneLine(tbs.constructed(0x30, "subject"))
        return CertificateNames(subject: subject, issuer: issuer)
    }

    /// A Name (a sequence of sets of attribute type and value) in one line.
    static func oneLine(_ name: DER) throws(Malformed) -> String {
        var name = name
        var line = ""
        while !name.isEmpty {
            var set = try name.constructed(0x31, "RelativeDistinguishedName")
            var separator = "/"
            while !set.isEmpty {
                var attribute = try set.constructed(0x30, "AttributeTypeAndValue")
                let oid = try attribute.element(0x06, "attribute type")
                guard oid.last.map({ $0 & 0x80 == 0 }) == true else {
                    throw Malformed(description: "attribute type: truncated")
                }
                let (tag, value) = try attribute.any("attribute value")
                line += separator + shortName(oid) + "=" + text(value, tag: tag)
                separator = "+"
            }
        }
        return line
    }

    /// OpenSSL's short names for the attributes certificates use; the dotted form for any other.
    static func shortName(_ oid: ArraySlice<UInt8>) -> String {
        let dotted = dottedForm(oid)
        return shortNames[dotted] ?? dotted
    }

    static let shortNames: [String: String] = [
        "2.5.4.3": "CN", "2.5.4.4": "SN", "2.5.4.5": "serialNumber", "2.5.4.6": "C", "2.5.4.7": "L",
        "2.5.4.8": "ST", "2.5.4.9": "street", "2.5.4.10": "O", "2.5.4.11": "OU", "2.5.4.12": "title",
        "2.5.4.13": "description", "2.5.4.17": "postalCode", "2.5.4.42": "GN", "2.5.4.43": "initials",
        "2.5.4.44": "generationQualifier", "2.5.4.46": "dnQualifier", "2.5.4.65": "pseudonym",
        "2.5.4.97": "organizationIdentifier", "1.2.840.113549.1.9.1": "emailAddress",
        "0.9.2342.19200300.100.1.1": "UID", "0.9.2342.19200300.100.1.25": "DC", "2.5.4.15": "businessCategory",
        "2.5.4.16": "postalAddress", "2.5.4.20": "telephoneNumber", "2.5.4.41": "name",
        "2.5.4.45":
            "x500UniqueIdentifier", "2.5.4.72": "role", "1.2.840.113549.1.9.2": "unstructuredName",
        "1.3.6.1.4.1.311.60.2.1.1": "jurisdictionL", "1.3.6.1.4.1.311.60.2.1.2": "jurisdictionST",
        "1.3.6.1.4.1.311.60.2.1.3": "jurisdictionC",
    ]

    static func dottedForm(_ oid: ArraySlice<UInt8>) -> String {
        var parts: [String] = []
        var value: UInt64 = 0
        for byte in oid {
            value = value << 7 | UInt64(byte & 0x7F)
            guard byte & 0x80 == 0 else { continue }
            if parts.isEmpty {
                let first = min(value / 40, 2)
                parts += ["\(first)", "\(value - first * 40)"]
            } else {
                parts.append("\(value)")
            }
            value = 0
        }
        return parts.joined(separator: ".")
    }

    /// The value as `X509_NAME_oneline` prints it. A GeneralString whose every fourth byte alone is set
    /// prints as those bytes, as OpenSSL does (other wide strings print byte by byte).
    static func text(_ value: ArraySlice<UInt8>, tag: UInt8) -> String {
        var bytes = Array(value)
        if tag == 0x1B, bytes.count % 4 == 0, !bytes.isEmpty,
            bytes.indices.allSatisfy({ $0 % 4 == 3 || bytes[$0] == 0 })
        {
            bytes = stride(from: 3, to: bytes.count, by: 4).map { bytes[$0] }
        }
        let hex = Array("0123456789ABCDEF")
        var line = ""
        for byte in bytes {
            if byte == UInt8(ascii: "/") || byte == UInt8(ascii: "+") {
                line += "\\" + String(Character(Unicode.Scalar(byte)))
            } else if byte >= 0x20 && byte <= 0x7E {
                line.append(Character(Unicode.Scalar(byte)))
            } else {
                line += "\\x" + String(hex[Int(byte >> 4)]) + String(hex[Int(byte & 0x0F)])
            }
        }
        return line
    }

    /// A reader of DER elements (tag, definite length, contents).
    struct DER {
        var bytes: ArraySlice<UInt8>

        var isEmpty: Bool { bytes.isEmpty }
        var peekTag: UInt8? { bytes.first }

        /// The next element's tag and contents.
        mutating func any(_ what: String) throws(Malformed) -> (tag: UInt8, contents: ArraySlice<UInt8>) {
            guard let tag = bytes.first, bytes.count >= 2 else { throw Malformed(description: "\(what): truncated") }
            guard tag & 0x1F != 0x1F else { throw Malformed(description: "\(what): unexpected tag \(tag)") }
            var index = bytes.startIndex + 1
            let first = bytes[index]
            index += 1
            var length = 0
            if first < 0x80 {
                length = Int(first)
            } else {
                let count = Int(first & 0x7F)
                guard count >= 1, count <= 4, bytes.endIndex - index >= count else {
                    throw Malformed(description: "\(what): bad length")
                }
                for _ in 0..<count {
                    length = length << 8 | Int(bytes[index])
                    index += 1
                }
            }
            guard bytes.endIndex - index >= length else { throw Malformed(description: "\(what): truncated") }
            let contents = bytes[index..<(index + length)]
            bytes = bytes[(index + length)...]
            return (tag, contents)
        }

        /// The next element's contents, which must have `tag`.
        mutating func element(_ tag: UInt8, _ what: String) throws(Malformed) -> ArraySlice<UInt8> {
            let (found, contents) = try any(what)
            guard found == tag else { throw Malformed(description: "\(what): unexpected tag \(found)") }
            return contents
        }

        mutating func constructed(_ tag: UInt8, _ what: String) throws(Malformed) -> DER {
            DER(bytes: try element(tag, what))
        }
    }
}
