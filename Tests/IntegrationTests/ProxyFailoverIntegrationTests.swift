import Foundation
import SQLProxy
import Sandbox
import SwitchyardConfiguration
import SwitchyardServer
import Testing
import Topology

#if canImport(Glibc)
    import Glibc
#endif

/// A PyMySQL session through the proxy that stays open while the cluster changes under it: it connects,
/// runs its `mode`'s opening statements, then for each round N waits for the file `<go>.N` and runs
/// `SELECT @@port, @x, @@sql_mode, @@character_set_client`, logging `started N`, then `ran N <values>` or
/// `error N <errno>` (and stops at an error).
struct LongSession {
    let pid: Int32
    let log: String
    let go: String

    /// `portable`: nothing but SELECTs (autocommit on); `settings`: sets a user variable, `sql_mode` and the
    /// character set to literal values (replayed on a move); `variable`: sets a user variable to `NOW()`
    /// (pins the session); `autocommit-off`: PyMySQL's default, which sends `SET AUTOCOMMIT = 0`;
    /// `inserted`: inserts a row into `appdb.inserted` (which must exist), and from round 2 on runs
    /// `SELECT LAST_INSERT_ID()` instead; `slow-insert`: each round inserts a row with `v = N` into
    /// `appdb.inserted`, taking 3 s (`SLEEP`).
    static func start(_ proxy: ProxyFixture, mode: String, name: String? = nil) throws -> LongSession {
        let directory = proxy.cluster.manifest.directory
        let log = "\(directory)/session-\(name ?? mode).log"
        let go = "\(directory)/go-\(name ?? mode)"
        let pid = try ChildProcess.launch(
            "/usr/bin/python3",
            [
                "-c",
                """
                import os, sys, time, pymysql
                port, password, ca, go, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
                c = pymysql.connect(host='127.0.0.1', port=port, user='app', password=password, database='appdb',
                                    ssl={'ca': ca}, autocommit=(mode != 'autocommit-off'))
                opening = {'variable': ['SET @x = NOW()'],
                           'settings': ['SET @x = 5', "SET SESSION sql_mode = 'ANSI_QUOTES'", 'SET NAMES latin1'],
                           'inserted': ['INSERT INTO appdb.inserted (v) VALUES (1)']}
                for statement in opening.get(mode, ['SELECT 1']):
                    c.cursor().execute(statement)
                print('connected', flush=True)
                for n in range(1, 10):
                    while not os.path.exists(f'{go}.{n}'):
                        if os.path.exists(f'{go}.quit'):
                            c.close()
                            print('quit', flush=True)
                            sys.exit(0)
                        time.sleep(0.02)
                    print('started', n, flush=True)
                    try:
                        cursor = c.cursor()
                        if mode == 'slow-insert':
                            cursor.execute('INSERT INTO appdb.inserted (v) SELECT %s FROM (SELECT SLEEP(3)) AS s', (n,))
                            print('ran', n, cursor.rowcount, flush=True)
                            continue
                        cursor.execute('SELECT LAST_INSERT_ID()' if mode == 'inserted' and n >= 2 else
                                       'SELECT @@port, @x, @@sql_mode, @@character_set_client')
                        print('ran', n, *cursor.fetchone(), flush=True)
                    except pymysql.err.MySQLError as e:
                        print('error', n, e.args[0], flush=True)
                        break
                """,
                "\(proxy.port)", try proxy.appPassword, proxy.cluster.manifest.caFile, go, mode,
            ], logFile: log)
        return LongSession(pid: pid, log: log, go: go)
    }

    /// A Perl (DBD::MariaDB) session with server-side prepared statements: it prepares `SELECT @@port, ? + 1`
    /// and executes it once; each round N then executes it with N and prepares, executes and closes
    /// `SELECT ? * 10`, logging `ran N <port> <N+1> <N*10>`. `mode` `prepared-variable` first sets a user
    /// variable with a prepared `SET @x = ?`; `prepared-inserted` first runs a prepared `INSERT` into
    /// `appdb.inserted`, and from round 2 on prepares and runs `SELECT LAST_INSERT_ID()` instead.
    static func startPrepared(_ proxy: ProxyFixture, mode: String = "prepared") throws -> LongSession {
        let directory = proxy.cluster.manifest.directory
        let (log, go) = ("\(directory)/session-\(mode).log", "\(directory)/go-\(mode)")
        let pid = try ChildProcess.launch(
            "/usr/bin/perl",
            [
                "-e",
                #"""
                use strict; use warnings; use DBI; $| = 1;
                my ($port, $password, $ca, $go, $mode) = @ARGV;
                my $dbh = DBI->connect(
                    "DBI:MariaDB:database=appdb;host=127.0.0.1;port=$port;mariadb_ssl=1;"
                    . "mariadb_ssl_verify_server_cert=1;mariadb_ssl_ca_file=$ca", 'app', $password,
                    { RaiseError => 1, PrintError => 0, AutoCommit => 1, mariadb_server_prepare => 1,
                      mariadb_server_prepare_disable_fallback => 1 });
                my $kept = $dbh->prepare('SELECT @@port, ? + 1');
                $kept->execute(0); $kept->fetchrow_array; $kept->finish;
                my %opening = ('prepared-variable' => ['SET @x = ?', 5],
                               'prepared-inserted' => ['INSERT INTO appdb.inserted (v) VALUES (?)', 2]);
                if (my $first = $opening{$mode}) {
                    my $statement = $dbh->prepare($first->[0]); $statement->execute($first->[1]); $statement->finish;
                }
                print "connected\n";
                for my $n (1 .. 9) {
                    until (-e "$go.$n") { exit 0 if -e "$go.quit"; select(undef, undef, undef, 0.02); }
                    print "started $n\n";
                    my $ok = eval {
                        if ($mode eq 'prepared-inserted' && $n >= 2) {
                            my $last = $dbh->prepare('SELECT LAST_INSERT_ID()'); $last->execute;
                            my ($id) = $last->fetchrow_array; $last->finish;
                            print "ran $n $id\n"; return 1;
                        }
                        $kept->execute($n); my @row = $kept->fetchrow_array; $kept->finish;
                        my $new = $dbh->prepare('SELECT ? * 10'); $new->execute($n);
                        my ($tens) = $new->fetchrow_array; $new->finish; undef $new;
                        print "ran $n @row $tens\n"; 1;
                    };
                    if (!$ok) { print "error $n ", ($dbh->err // 0), " $@\n"; last; }
                }
                """#,
                "\(proxy.port)", try proxy.appPassword, proxy.cluster.manifest.caFile, go, mode,
            ], logFile: log)
        return LongSession(pid: pid, log: log, go: go)
    }

    var output: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

    func said(_ text: String) -> Bool { output.contains(text) }

    /// Lets round `n` run.
    func go(_ n: Int) { _ = FileManager.default.createFile(atPath: "\(go).\(n)", contents: Data()) }

    /// Makes the session close with COM_QUIT instead of running another round.
    func quit() { _ = FileManager.default.createFile(atPath: "\(go).quit", contents: Data()) }

    func waitForAnswer(_ n: Int, deadline: Duration = .seconds(10)) async throws {
        try await poll("round \(n) of \(log) answered", deadline: deadline) {
            said("ran \(n) ") || said("error \(n) ")
        }
    }

    func stop() {
        kill(pid, SIGKILL)
        _ = ChildProcess.waitForExit(pid)
    }
}

extension IntegrationTests {
    /// Manual switchover: s1 read-only, s2 promoted, s1 replicates from s2.
    private func switchOver(_ cluster: ClusterFixture) async throws {
        let s2 = cluster.instance("s2").port
        let replicationPassword = try cluster.manifest.password("replication")
        try await cluster.rootSQL("s1", "SET GLOBAL read_only = ON")
        try await poll("s2 caught up", deadline: .seconds(10)) {
            let s1 = try await cluster.rootSQL("s1", "SELECT @@gtid_binlog_pos")
            let s2 = try await cluster.rootSQL("s2", "SELECT @@gtid_slave_pos")
            return s1 == s2
        }
        try await cluster.rootSQL("s2", "STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only = OFF")
        try await cluster.rootSQL(
            "s1",
            """
            CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=\(s2), MASTER_USER='repl',
              MASTER_PASSWORD='\(replicationPassword)', MASTER_USE_GTID=slave_pos, MASTER_SSL=1,
              MASTER_SSL_CA='\(cluster.manifest.caFile)', MASTER_SSL_VERIFY_SERVER_CERT=1;
            START SLAVE;
            """)
    }

    @Test(
        "Proxy follows the primary: after a switchover new connections and portable open sessions run on the new primary (literal SETs replayed); sessions with other state end clearly"
    )
    func proxyFollowsPrimary() async throws {
        try await ClusterFixture.with(servers: 2) { cluster in
            try await ProxyFixture.with(cluster) { proxy in
                let before = try await proxy.mariadb(
                    "CREATE TABLE appdb.inserted (id INT AUTO_INCREMENT PRIMARY KEY, v INT); SELECT @@port")
                #expect(
                    before.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "\(cluster.instance("s1").port)")
                // Sessions opened on s1 stay open across the switchover, then run one more statement.
                let sessions =
                    try ["portable", "variable", "autocommit-off", "settings", "inserted"].map {
                        try LongSession.start(proxy, mode: $0)
                    }
                    + ["prepared", "prepared-variable", "prepared-inserted"].map {
                        try LongSession.startPrepared(proxy, mode: $0)
                    }
                defer { sessions.forEach { $0.stop() } }
                for session in sessions {
                    try await poll("\(session.log) is connected", deadline: .seconds(10)) { session.said("connected") }
                }
                try await switchOver(cluster)
                try await poll("the proxy routes to s2", deadline: .seconds(10)) {
                    proxy.controller.proxy?.state.primary?.name == "s2"
                }
                let s2 = cluster.instance("s2").port
                let after = try await proxy.mariadb(
                    "CREATE TABLE IF NOT EXISTS appdb.moved (id INT PRIMARY KEY); INSERT INTO appdb.moved VALUES (1); SELECT @@port"
                )
                #expect(after.status == 0, "\(after.stderr)")
                #expect(after.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "\(s2)")
                for session in sessions {
                    session.go(1)
                    try await session.waitForAnswer(1)
                }
                // Nothing but SELECTs: the session moves to s2 and the client cannot tell.
                #expect(sessions[0].said("ran 1 \(s2) "), "\(sessions[0].output)")
                // A user variable or autocommit off would be lost: a clear error instead of running on s2.
                #expect(sessions[1].said("error 1 1927"), "\(sessions[1].output)")
                #expect(sessions[2].said("error 1 1927"), "\(sessions[2].output)")
                // Literal SET statements run again on s2 before the statement: the same values there.
                #expect(sessions[3].said("ran 1 \(s2) 5 ANSI_QUOTES latin1"), "\(sessions[3].output)")
                // An INSERT does not keep a session from moving; LAST_INSERT_ID() does not move with it, so a
                // statement reading it afterwards ends the session rather than getting another value.
                #expect(sessions[4].said("ran 1 \(s2) "), "\(sessions[4].output)")
                sessions[4].go(2)
                try await sessions[4].waitForAnswer(2)
                #expect(sessions[4].said("error 2 1927"), "\(sessions[4].output)")
                // Prepared statements are prepared again on s2: the kept one runs there with its parameter
                // types, and one prepared after the move runs under an id of its own.
                #expect(sessions[5].said("ran 1 \(s2) 2 10"), "\(sessions[5].output)")
                sessions[5].go(2)
                try await sessions[5].waitForAnswer(2)
                #expect(sessions[5].said("ran 2 \(s2) 3 20"), "\(sessions[5].output)")
                // The same through prepared statements: a prepared SET of a user variable pins the session;
                // a prepared INSERT lets it move and loses LAST_INSERT_ID(), so reading it ends the session.
                #expect(sessions[6].said("error 1 1927"), "\(sessions[6].output)")
                #expect(sessions[7].said("ran 1 \(s2) 2 10"), "\(sessions[7].output)")
                sessions[7].go(2)
                try await sessions[7].waitForAnswer(2)
                #expect(sessions[7].said("error 2 1927"), "\(sessions[7].output)")
                let totals = try #require(proxy.controller.proxy).metrics.totals()
                #expect(totals.sessionsMoved == 5 && totals.sessionsNotMoved == 3, "\(totals)")
            }
        }
    }

    @Test(
        "Proxy survives a failover: a portable session whose server connection is lost continues on a new one; its statement waits out the promotion (failover_hold)"
    )
    func proxySurvivesFailover() async throws {
        try await ClusterFixture.with(servers: 2) { cluster in
            try await ProxyFixture.with(cluster, { $0.proxy?.failoverHold = .seconds(30) }) { proxy in
                let (s1, s2) = (cluster.instance("s1"), cluster.instance("s2"))
                let portable = try LongSession.start(proxy, mode: "portable")
                let variable = try LongSession.start(proxy, mode: "variable")
                defer {
                    portable.stop()
                    variable.stop()
                }
                for session in [portable, variable] {
                    try await poll("\(session.log) is connected", deadline: .seconds(10)) { session.said("connected") }
                }
                // The server ends both sessions' connections (an administrator's KILL, a restart): the
                // portable session logs in again on s1 at its next statement; the other one has ended.
                let threads = try await cluster.rootSQL(
                    "s1", "SELECT GROUP_CONCAT(ID) FROM information_schema.PROCESSLIST WHERE USER = 'app'")
                for thread in threads.split(separator: ",") {
                    _ = try await cluster.rootSQL("s1", "KILL \(thread)")
                }
                try await poll("the proxy ended the session that cannot move", deadline: .seconds(10)) {
                    try #require(proxy.controller.proxy).state.sessionCount == 1
                }
                portable.go(1)
                variable.go(1)
                try await portable.waitForAnswer(1)
                try await variable.waitForAnswer(1)
                #expect(portable.said("ran 1 \(s1.port) "), "\(portable.output)")
                #expect(variable.said("error 1 "), "\(variable.output)")

                // s1 crashes. The session's next statement waits while the proxy finds no reachable
                // primary, then runs on s2 once it is promoted.
                #expect(ProcessControl.signal(s1.pid, SIGKILL, marker: s1.defaultsFile))
                try await poll("the proxy saw the connection go", deadline: .seconds(10)) {
                    try #require(proxy.controller.proxy).state.allSessions().allSatisfy { $0.backend == nil }
                }
                portable.go(2)
                try await poll("round 2 started", deadline: .seconds(10)) { portable.said("started 2") }
                try await cluster.rootSQL("s2", "STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only = OFF")
                try await portable.waitForAnswer(2, deadline: .seconds(30))
                #expect(portable.said("ran 2 \(s2.port) "), "\(portable.output)")
                // Its connection is lost again; a COM_QUIT then just ends it, with no new login for nothing.
                let state = try #require(proxy.controller.proxy).state
                let thread = try #require(state.allSessions().first?.backendThreadID)
                _ = try await cluster.rootSQL("s2", "KILL \(thread)")
                try await poll("the proxy saw the connection go", deadline: .seconds(10)) {
                    state.allSessions().allSatisfy { $0.backend == nil }
                }
                portable.quit()
                try await poll("the session quit and ended", deadline: .seconds(10)) {
                    portable.said("quit") && state.sessionCount == 0
                }
                let totals = try #require(proxy.controller.proxy).metrics.totals()
                #expect(totals.sessionsMoved == 2, "\(totals)")
            }
        }
    }

    @Test(
        "Proxy: a statement whose server connection is killed while it runs is not sent again; with no primary to reach, a session's next statement waits proxy.failover_hold, then ends with 1927"
    )
    func proxyFailoverHoldExpires() async throws {
        try await ClusterFixture.with(servers: 1) { cluster in
            try await ProxyFixture.with(cluster, { $0.proxy?.failoverHold = .seconds(1) }) { proxy in
                let s1 = cluster.instance("s1")
                #expect(
                    try await proxy.mariadb("CREATE TABLE appdb.inserted (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
                        .status == 0)
                let portable = try LongSession.start(proxy, mode: "portable")
                let writer = try LongSession.start(proxy, mode: "slow-insert")
                defer {
                    portable.stop()
                    writer.stop()
                }
                for session in [portable, writer] {
                    try await poll("\(session.log) is connected", deadline: .seconds(10)) { session.said("connected") }
                }

                // A statement whose server connection is killed while it runs (the server answers ERR 1927,
                // then closes) is not sent again on a new connection: the client gets the error, and the row
                // the INSERT was writing is not there (rolled back; run again, it would be).
                writer.go(1)
                let running =
                    "SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE 'INSERT INTO appdb.inserted%'"
                var thread = ""
                try await poll("the slow INSERT runs", deadline: .seconds(10)) {
                    thread = try await cluster.rootSQL("s1", running).trimmingCharacters(in: .whitespacesAndNewlines)
                    return !thread.isEmpty
                }
                _ = try await cluster.rootSQL("s1", "KILL \(thread)")
                try await writer.waitForAnswer(1)
                #expect(writer.said("error 1 "), "\(writer.output)")
                let rows = try await cluster.rootSQL("s1", "SELECT COUNT(*) FROM appdb.inserted WHERE v = 1")
                #expect(rows.trimmingCharacters(in: .whitespacesAndNewlines) == "0", "sent twice? \(writer.output)")

                // The server crashes while another session's INSERT runs: no answer will come, so the client
                // loses its connection at once (2013, as it would directly), and the proxy carries on.
                let crashing = try LongSession.start(proxy, mode: "slow-insert", name: "crashing")
                defer { crashing.stop() }
                try await poll("\(crashing.log) is connected", deadline: .seconds(10)) { crashing.said("connected") }
                let sessions = try #require(proxy.controller.proxy).state.sessionCount
                crashing.go(1)
                try await poll("the other slow INSERT runs", deadline: .seconds(10)) {
                    !(try await cluster.rootSQL("s1", running).trimmingCharacters(in: .whitespacesAndNewlines).isEmpty)
                }
                let crashed = ContinuousClock.now
                #expect(ProcessControl.signal(s1.pid, SIGKILL, marker: s1.defaultsFile))
                try await crashing.waitForAnswer(1)
                #expect(crashing.said("error 1 2013"), "\(crashing.output)")
                #expect(ContinuousClock.now - crashed < .seconds(3), "the client waited for an answer that cannot come")
                try await poll("the crashed statement's session ended", deadline: .seconds(10)) {
                    try #require(proxy.controller.proxy).state.sessionCount == sessions - 1
                }
                try await poll("the proxy saw the connection go", deadline: .seconds(10)) {
                    try #require(proxy.controller.proxy).state.allSessions().allSatisfy { $0.backend == nil }
                }
                let started = ContinuousClock.now
                portable.go(1)
                try await portable.waitForAnswer(1, deadline: .seconds(15))
                let waited = ContinuousClock.now - started
                #expect(portable.said("error 1 1927"), "\(portable.output)")
                #expect(waited >= .milliseconds(900), "answered before the hold was over: \(waited)")
            }
        }
    }
}
