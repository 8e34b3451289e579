import NIOCore

/// Bytes captured between `mariadb --compress` (libmariadb, MariaDB 10.11.19 client) and a MariaDB 10.11.19
/// server through a recording TCP relay, after the (uncompressed) login. Each constant is whole compressed
/// packets exactly as they crossed the wire.
enum CompressedCapture {
    static func bytes(_ hex: String) -> ByteBuffer {
        let digits = Array(hex.filter { !$0.isWhitespace }.utf8)
        var buffer = ByteBuffer()
        var index = 0
        while index + 1 < digits.count,
            let byte = UInt8(String(decoding: digits[index...index + 1], as: UTF8.self), radix: 16)
        {
            buffer.writeInteger(byte)
            index += 2
        }
        return buffer
    }

    /// Client: `SELECT 1` (COM_QUERY, inner id 0), stored in compressed packet 0.
    static let selectOneCommand = bytes(
        """
        0d000000000000090000000353454c4543542031
        """)

    /// Server: its result set (5 inner packets, ids 1-5), deflated (58 bytes) in compressed packet 1.
    static let selectOneResponse = bytes(
        """
        360000013a0000789c63626060646494606060624e494d6300f20c191878ec1918814ce64620c1c00a64fc03ca032103
        0ba32190cb0ae602007b4d049e
        """)

    /// Client: `SELECT REPEAT('ab', 60) AS r`, stored in compressed packet 0 (libmariadb stores < 150 bytes).
    static let repeatCommand = bytes(
        """
        210000000000001d0000000353454c4543542052455045415428276162272c203630292041532072
        """)

    /// Server: its result set, deflated (177 bytes) in compressed packet 1.
    static let repeatResponse = bytes(
        """
        3f000001b10000789c63626060646494606060624e494d6300f28a181878141932181918fe3230a83330b0323030ff03
        ca33543230b05424260d0c04ba8215ec0a00a1c9343a
        """)

    /// Client: COM_QUIT, stored in compressed packet 0.
    static let quitCommand = bytes(
        """
        050000000000000100000001
        """)

    /// Server: the result of `SELECT LENGTH(REPEAT('x', 100000)), REPEAT('xy', 50000) AS big` in compressed packets
    /// 1 (16384 bytes deflated: the server's full write buffer), 2 (83730 deflated) and 3 (9 stored); the
    /// 100011-byte row (inner id 5) starts in packet 1 and ends in packet 2.
    static let bigRowResponse = bytes(
        """
        9d000001004000789cedcc314e02611006d06f77c582c005b4c16a21b1002e602c365a18630c27200ae106d851710e7a
        8ec0cd4c34fe441beff0e625934966e6ab93aaaee649ddbcbdaf925c3f75cf0f8bc7f16bf7d2dd2fc6edb6bd1dcda6e7
        9a4c92c15dfae5a8d99596ab32fc7d35cbcdba6c6f72380df399b4492fb9f82eb939eeabdee56fc4d7615f6d3f000000
        00000000000000000000000080ff7e001168ff8769000002124701789cedc2310d00000002a0dadade1a1e0cd2000000
        000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000
        0000000000000000000000000000000000000000000000000000000000009c18987ffcf10900000300000005000006fe
        00000200
        """)

    /// Client: `LOAD DATA LOCAL INFILE '/tmp/helperC/data.tsv' INTO TABLE t`, stored in compressed packet 0.
    static let loadDataCommand = bytes(
        """
        400000000000003c000000034c4f41442044415441204c4f43414c20494e46494c4520272f746d702f68656c70657243
        2f646174612e7473762720494e544f205441424c452074
        """)

    /// Server: the LOCAL INFILE request (0xFB, inner id 1) in compressed packet 1.
    static let loadDataFileRequest = bytes(
        """
        1a00000100000016000001fb2f746d702f68656c706572432f646174612e747376
        """)

    /// Client: the last of its file's compressed packets, 2 to 11: compressed packet 11, deflated to 3476 bytes;
    /// it starts inside inner packet 38 and ends with the empty inner packet 39 that closes the file.
    static let loadDataLastFilePacket = bytes(
        """
        7301000b940d00789c85d23b4e03311845e169412cc215b479fccfe50c64104520124c583d0529234ec4ed2ccb472ebe
        bbebfdeeee7b3e9e97f1717e7f5e3ec7ee72334eaf637d5bc6f1341fc6615ee7cbe9653e8e75f95aef2f0ff648f62a31
        24762bf979981eaf3347e6eaa740122a4924a99242522a69242d12dbfc4d6ca3922d92ad4ab000530b302cc0d4020c0b
        b09b0bb84ea06f4adfa06f4adfa06f4adfa06f4adfa06f4adfa1ef4adfa1ef4adfa1ef4adfa1ef4adfa1ef4adfa1ef4a
        dfa1ef4adfa1ef4adfa1ef4adfa1ef4a3fa01f4a3fa01f4a3fa01f4a3fa01f4a3fa01f4a3fa01f4a3fa01f4a3fa01f4a
        3fa01f4a3fa01f4a3fa19f4a3fa19f4a3fa19f4a3fa19f4a3fa19f4a3fa19f4a3fa19f4a3fa19f4a3fa19f4a3fa19f4a
        bfa05f4abfa05f4abfa05f4abfa05f4abfa05f4abfa05f4abfa05f4abfa05f4abfa05f4abfa05f4abfa1df4abfa1df4a
        bfa1df4abfa1df4abfa1df4abfa1df4abfa1df4abfa1df4abfa1df4abfa1dfffeb4fd3f4f40bb688636a
        """)

    /// Server: a progress report (ERR 0xFFFF, inner id 12) in compressed packet 12, then the OK (inner id 13) in
    /// compressed packet 13: both ids continue from the client's compressed packet 11, not from its inner id 39.
    static let loadDataResult = bytes(
        """
        1d00000c0000001900000cffffff0102020000000f456e642062756c6b20696e736572744000000d0000003c00000d00
        fcb80b0002000000325265636f7264733a2033303030202044656c657465643a20302020536b69707065643a20302020
        5761726e696e67733a2030
        """)

}
