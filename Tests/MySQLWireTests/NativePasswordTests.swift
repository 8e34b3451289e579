import MySQLWire
import Testing

@Suite("mysql_native_password")
struct NativePasswordTests {
    static let scramble: [UInt8] = Array("abcdefghijklmnopqrst".utf8)

    @Test("the stored hash matches the server's PASSWORD() value")
    func storedHash() {
        // SELECT PASSWORD('password') on MariaDB: *2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19
        let hex = MySQLNativePassword.doubleSHA1(password: "password")
            .map { ($0 < 16 ? "0" : "") + String($0, radix: 16, uppercase: true) }.joined()
        #expect(hex == "2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19")
        #expect(MySQLNativePassword.authenticationString(password: "password") == "*" + hex)
        #expect(
            MySQLNativePassword.storedCredential(fromAuthenticationString: "*" + hex)
                == .nativePassword(doubleSHA1: MySQLNativePassword.doubleSHA1(password: "password")))
        #expect(MySQLNativePassword.storedCredential(fromAuthenticationString: "") == .empty)
        #expect(MySQLNativePassword.storedCredential(fromAuthenticationString: "*XYZ") == nil)
    }

    @Test("a client's response verifies; a wrong password does not; SHA1(password) is recovered for backends")
    func verify() throws {
        let stored = MySQLNativePassword.doubleSHA1(password: "s3cret")
        let response = MySQLNativePassword.response(password: "s3cret", scramble: Self.scramble)
        let method = MySQLNativePassword()
        #expect(
            method.verify(response: response, scramble: Self.scramble, credential: .nativePassword(doubleSHA1: stored)))
        let wrong = MySQLNativePassword.response(password: "guess", scramble: Self.scramble)
        #expect(
            !method.verify(response: wrong, scramble: Self.scramble, credential: .nativePassword(doubleSHA1: stored)))
        #expect(!method.verify(response: [], scramble: Self.scramble, credential: .nativePassword(doubleSHA1: stored)))

        let recovered = try #require(
            MySQLNativePassword.recoverPasswordSHA1(response: response, scramble: Self.scramble, doubleSHA1: stored))
        let backendScramble: [UInt8] = Array(repeating: 0x5A, count: 20)
        #expect(
            MySQLNativePassword.response(passwordSHA1: recovered, scramble: backendScramble)
                == MySQLNativePassword.response(password: "s3cret", scramble: backendScramble))
    }
}
