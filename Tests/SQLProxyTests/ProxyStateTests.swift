import NIOCore
import NIOEmbedded
import Testing
import Topology

@testable import SQLProxy

@Suite struct ProxyStateTests {
    private func handle(_ loop: EmbeddedEventLoop) -> ProxyState.SessionHandle {
        ProxyState.SessionHandle(
            user: "u", eventLoop: loop, backend: nil, backendThreadID: nil, shutDown: { loop.makeSucceededVoidFuture() }
        )
    }

    @Test("Sessions get distinct non-zero ids and the limit holds")
    func register() {
        let state = ProxyState()
        let loop = EmbeddedEventLoop()
        let a = state.register(limit: 2) { _ in handle(loop) }
        let b = state.register(limit: 2) { _ in handle(loop) }
        #expect(a != nil && b != nil && a != b && a != 0)
        #expect(state.register(limit: 2) { _ in handle(loop) } == nil)
        state.unregister(a!)
        #expect(state.register(limit: 2) { _ in handle(loop) } != nil)
    }

    @Test("Failed-login throttling is off at 0 and counts within the window only")
    func throttle() {
        let state = ProxyState()
        let now = ContinuousClock.now
        for _ in 0..<10 { state.recordFailedLogin("u@h", max: 0, now: now) }
        #expect(!state.isThrottled("u@h", max: 0, window: .seconds(60), now: now))
        for _ in 0..<3 { state.recordFailedLogin("u@h", max: 3, now: now) }
        #expect(state.isThrottled("u@h", max: 3, window: .seconds(60), now: now))
        #expect(!state.isThrottled("u@other", max: 3, window: .seconds(60), now: now))
        #expect(!state.isThrottled("u@h", max: 3, window: .seconds(60), now: now + .seconds(61)))
    }

    @Test("Sessions are found by their server thread on one server only")
    func byBackendThread() {
        let state = ProxyState()
        let loop = EmbeddedEventLoop()
        let s1 = ServerIdentity(name: "s1", host: "127.0.0.1", port: 3311)
        let s2 = ServerIdentity(name: "s2", host: "127.0.0.1", port: 3312)
        func on(_ server: ServerIdentity?, _ thread: UInt32?) -> ProxyState.SessionHandle {
            ProxyState.SessionHandle(
                user: "u", eventLoop: loop, backend: server, backendThreadID: thread,
                shutDown: { loop.makeSucceededVoidFuture() })
        }
        let a = state.register(limit: 10) { _ in on(s1, 40) }!
        let b = state.register(limit: 10) { _ in on(s2, 40) }!
        _ = state.register(limit: 10) { _ in on(s1, nil) }  // still logging in
        #expect(state.sessionIDsByBackendThread(on: s1) == [40: a])
        #expect(state.sessionIDsByBackendThread(on: s2) == [40: b])
    }
}
