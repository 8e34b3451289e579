public import NIOCore

/// One packet of the MySQL/MariaDB compressed protocol (`CLIENT_COMPRESS`, zlib), its payload inflated.
///
/// ## Framing
///
/// Once both sides have set `CLIENT_COMPRESS`, every write is wrapped in compressed packets:
///
/// | bytes | field |
/// |---|---|
/// | 3 | length of the payload as sent (little-endian) |
/// | 1 | compressed sequence id |
/// | 3 | length of the payload once inflated; 0 means the payload is stored, not deflated |
/// | n | payload: a zlib stream (RFC 1950: deflate with zlib header and Adler-32), or the stored bytes |
///
/// The inflated payloads, joined, are the ordinary packet stream (4-byte headers and payloads). The two
/// layers are cut independently: an ordinary packet may span several compressed packets (a 20 MiB packet
/// always does, since a compressed packet holds at most 16 MiB − 1 inflated bytes), and one compressed
/// packet may hold many ordinary packets (a whole small result set usually travels in one). Senders store
/// short payloads uncompressed: MariaDB's server below 50 bytes, libmariadb below 150; both also store a
/// payload that deflating does not shrink.
///
/// ## Sequence ids
///
/// Read in MariaDB's `sql/net_serv.cc` (`my_real_read`, `my_net_write`, `net_flush`) and `do_command`, and
/// in libmariadb's `ma_net.c` (`ma_real_read`, `ma_net_write_command`, `ma_net_flush`); confirmed against
/// MariaDB 10.11.19 with `mariadb --compress` (the `CompressedCapture` test fixture) and with this codec
/// (`compressedProtocolAgainstRealServer`).
///
/// - The compressed id is one counter per command exchange, shared by both directions, kept like the
///   uncompressed protocol's id: the client's command starts at 0, and every compressed packet, either
///   way, takes the next value. Reading id `n` sets the reader's counter to `n + 1`; each packet written
///   takes the counter and increments it. So a command in compressed packet 0 is answered in 1, 2, 3, …
///   however many inner packets each carries; a command cut into compressed packets 0 … k (a query of
///   16 MiB or more) is answered from k + 1; and in a multi-packet exchange each side continues from the
///   last id it received. Captured LOAD DATA LOCAL: command 0, the server's file request 1, the file
///   2 … 11, the server's result 12 and 13.
/// - The server checks it: before each command it expects 0, then exactly the next id; anything else
///   gets ERR 1156 (`ER_NET_PACKETS_OUT_OF_ORDER`) and the connection closes. libmariadb checks nothing:
///   it copies the id it read, plus one, into its counters.
/// - Inner (ordinary) ids are never checked by a compressed reader, on either side: only the lengths are
///   read. Writers number them from their counters, so they differ from the uncompressed protocol's
///   after a multi-packet flight: the server answers a LOAD DATA whose file ended with inner id 39, sent in
///   compressed packet 11, with inner ids 12 and 13; libmariadb sends every chunk of a query of 16 MiB or
///   more with inner id 0, which an uncompressed server refuses.
/// - Compression starts after authentication on both sides: the handshake, any auth switch and the OK
///   that ends the login are uncompressed; the first compressed packet is the client's first command.
///   The server never turns compression off, so a later COM_CHANGE_USER re-authenticates compressed.
///
/// So a proxy whose client hop is compressed sends each compressed packet to the client with the id
/// following the last compressed id it received from the client (the decoder's `lastSequenceID + 1`),
/// incrementing per packet it sends (`CompressedPacketEncoder.encode` returns the next one), whatever
/// the inner packets' ids. It treats the client's inner ids as unchecked, and numbers the packets it
/// forwards to an uncompressed backend itself (a command's chunks from 0; a continuing exchange from the
/// backend's last id + 1). The backend's inner ids may go to the client unchanged.
public struct CompressedPacket: Hashable, Sendable {
    /// Length of the compressed packet header.
    public static let headerLength = 7
    /// Most bytes one compressed packet carries, stored or inflated (16 MiB − 1).
    public static let maxPayloadLength = 0xFF_FFFF
    /// Below this many bytes MariaDB's server stores a payload instead of deflating it.
    public static let defaultMinimumCompressLength = 50

    /// The compressed sequence id.
    public var sequenceID: UInt8
    /// The payload as it reads once inflated: a piece of the ordinary packet stream.
    public var payload: ByteBuffer
    /// True when the payload travelled deflated, false when it was stored.
    public var isDeflated: Bool

    public init(sequenceID: UInt8, payload: ByteBuffer, isDeflated: Bool) {
        self.sequenceID = sequenceID
        self.payload = payload
        self.isDeflated = isDeflated
    }
}
