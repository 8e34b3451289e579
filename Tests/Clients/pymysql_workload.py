#!/usr/bin/python3
"""A realistic PyMySQL workload used to check Switchyard with a pure-Python
client (text protocol only, client-side parameter escaping).

Environment: SY_HOST, SY_PORT, SY_USER, SY_PASSWORD, SY_DB, SY_CA.
Usage: pymysql_workload.py [check ...]

Prints "ok <name>" or "FAIL <name>: <reason>" per check and exits with 1
when any check failed (2 on a usage error).
"""

import os
import sys
import traceback

import pymysql
import pymysql.cursors

HOST = os.environ.get("SY_HOST", "127.0.0.1")
PORT = int(os.environ.get("SY_PORT", "3306"))
USER = os.environ.get("SY_USER")
PASSWORD = os.environ.get("SY_PASSWORD", "")
DB = os.environ.get("SY_DB")
CA = os.environ.get("SY_CA")

SUFFIX = str(os.getpid())
ACCOUNTS = f"sy_py_accounts_{SUFFIX}"
EVENTS = f"sy_py_events_{SUFFIX}"


class CheckFailed(Exception):
    pass


def expect(condition, message):
    if not condition:
        raise CheckFailed(message)


def connect(password=None, **options):
    options.setdefault("autocommit", False)
    return pymysql.connect(
        host=HOST,
        port=PORT,
        user=USER,
        password=PASSWORD if password is None else password,
        database=DB,
        charset="utf8mb4",
        ssl={"ca": CA, "check_hostname": True},
        connect_timeout=10,
        read_timeout=120,
        write_timeout=120,
        **options,
    )


def scalar(conn, sql, args=None):
    with conn.cursor() as cur:
        cur.execute(sql, args)
        row = cur.fetchone()
        expect(row is not None, f"{sql}: no row")
        return row[0]


def count_rows(conn, table, where="1", args=None):
    return scalar(conn, f"SELECT COUNT(*) FROM {table} WHERE {where}", args)


# --- checks -----------------------------------------------------------------


def check_tls(conn):
    with conn.cursor() as cur:
        cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        name, cipher = cur.fetchone()
    expect(cipher, "Ssl_cipher is empty: the session is not encrypted")


def check_schema(conn):
    with conn.cursor() as cur:
        cur.execute(
            f"""CREATE TABLE {ACCOUNTS} (
                    id INT AUTO_INCREMENT PRIMARY KEY,
                    email VARCHAR(100) NOT NULL UNIQUE,
                    name VARCHAR(100) CHARACTER SET utf8mb4 NOT NULL,
                    balance DECIMAL(12, 2) NOT NULL DEFAULT 0,
                    note TEXT NULL
                ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"""
        )
        cur.execute(
            f"""CREATE TABLE {EVENTS} (
                    id BIGINT AUTO_INCREMENT PRIMARY KEY,
                    account_id INT NOT NULL,
                    kind VARCHAR(20) NOT NULL,
                    amount DECIMAL(12, 2) NOT NULL,
                    KEY (account_id)
                ) ENGINE=InnoDB"""
        )
    expect(scalar(conn, "SELECT COUNT(*) FROM information_schema.TABLES"
                        " WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN (%s, %s)",
                  (ACCOUNTS, EVENTS)) == 2, "tables not created")


def check_executemany(conn):
    rows = [(f"user{i}@example.com", f"User {i}", i * 10, None if i % 3 else f"note {i}")
            for i in range(1, 1001)]
    with conn.cursor() as cur:
        affected = cur.executemany(
            f"INSERT INTO {ACCOUNTS} (email, name, balance, note) VALUES (%s, %s, %s, %s)",
            rows)
    conn.commit()
    expect(affected == 1000, f"executemany affected {affected} rows, expected 1000")
    expect(count_rows(conn, ACCOUNTS) == 1000, "1000 rows not all present")
    total = scalar(conn, f"SELECT SUM(balance) FROM {ACCOUNTS}")
    expect(total == 5005000, f"SUM(balance) = {total}, expected 5005000")
    expect(count_rows(conn, ACCOUNTS, "note IS NULL") == 667, "NULL notes miscounted")


def check_parameterized_select(conn):
    with conn.cursor(pymysql.cursors.DictCursor) as cur:
        cur.execute(f"SELECT id, email, balance FROM {ACCOUNTS}"
                    " WHERE balance BETWEEN %s AND %s ORDER BY id", (100, 200))
        rows = cur.fetchall()
        expect([r["balance"] for r in rows] == list(range(100, 201, 10)),
               f"range query returned {[r['balance'] for r in rows]}")
        cur.execute(f"SELECT name FROM {ACCOUNTS} WHERE email = %(email)s",
                    {"email": "user42@example.com"})
        expect(cur.fetchone() == {"name": "User 42"}, "named-parameter lookup failed")
        cur.execute(f"SELECT COUNT(*) AS n FROM {ACCOUNTS} WHERE id IN %s", ((1, 2, 3, 999),))
        expect(cur.fetchone()["n"] == 4, "IN-list query failed")
        tricky = "O'Brien \\ \"quoted\" ; -- not a comment"
        cur.execute("SELECT %s AS v, %s AS n, %s AS f", (tricky, None, 1.5))
        row = cur.fetchone()
        expect(row == {"v": tricky, "n": None, "f": 1.5}, f"escaping roundtrip gave {row!r}")


def check_transactions(conn):
    account = scalar(conn, f"SELECT id FROM {ACCOUNTS} WHERE email = 'user1@example.com'")
    observer = connect()
    try:
        # Commit: a transfer becomes visible to another session.
        with conn.cursor() as cur:
            cur.execute(f"UPDATE {ACCOUNTS} SET balance = balance - 5 WHERE id = %s", (account,))
            cur.execute(f"INSERT INTO {EVENTS} (account_id, kind, amount) VALUES (%s, 'debit', 5)",
                        (account,))
            expect(scalar(conn, "SELECT @@in_transaction") == 1, "@@in_transaction not 1")
            expect(count_rows(observer, EVENTS, "account_id = %s", (account,)) == 0,
                   "uncommitted insert visible to another session")
        conn.commit()
        observer.commit()  # end the observer's snapshot
        expect(scalar(conn, "SELECT @@in_transaction") == 0, "@@in_transaction not 0 after commit")
        expect(count_rows(observer, EVENTS, "account_id = %s", (account,)) == 1,
               "committed insert not visible to another session")

        # Rollback: everything since the last commit disappears.
        with conn.cursor() as cur:
            cur.execute(f"DELETE FROM {EVENTS} WHERE account_id = %s", (account,))
            cur.execute(f"UPDATE {ACCOUNTS} SET balance = 0 WHERE id = %s", (account,))
        conn.rollback()
        expect(count_rows(conn, EVENTS, "account_id = %s", (account,)) == 1,
               "rolled-back delete took effect")
        balance = scalar(conn, f"SELECT balance FROM {ACCOUNTS} WHERE id = %s", (account,))
        expect(balance == 5, f"balance after rollback is {balance}, expected 5")
        conn.commit()
    finally:
        observer.close()


def check_streaming(conn):
    stream = connect(cursorclass=pymysql.cursors.SSCursor)
    try:
        with stream.cursor() as cur:
            cur.execute("SELECT seq, CONCAT('row-', seq), REPEAT('p', 100)"
                        " FROM seq_1_to_50000 ORDER BY seq")
            count = total = 0
            for seq, label, padding in cur:
                count += 1
                total += seq
                if seq != count or label != f"row-{seq}" or len(padding) != 100:
                    raise CheckFailed(f"row {count} came back as ({seq}, {label!r})")
        expect(count == 50000, f"streamed {count} rows, expected 50000")
        expect(total == 50000 * 50001 // 2, "streamed rows have the wrong sum")

        # Abandoning a stream part-way: closing the cursor drains the rest,
        # after which the connection is usable again.
        with stream.cursor() as cur:
            cur.execute("SELECT seq FROM seq_1_to_50000")
            first = [cur.fetchone()[0] for _ in range(100)]
            expect(first[0] == 1 and len(first) == 100, "partial stream started wrong")
        expect(scalar(stream, "SELECT 17") == 17, "connection unusable after abandoned stream")
    finally:
        stream.close()


def check_unicode(conn):
    samples = [
        "emoji \U0001F600\U0001F42C\U0001F680",
        "\u00e4\u00f6\u00fc\u00df \u20ac \u65e5\u672c\u8a9e \u0645\u0631\u062d\u0628\u0627",
        "family \U0001F468\u200D\U0001F469\u200D\U0001F467",
    ]
    with conn.cursor() as cur:
        for i, text in enumerate(samples):
            cur.execute(f"INSERT INTO {ACCOUNTS} (email, name) VALUES (%s, %s)",
                        (f"unicode{i}@example.com", text))
    conn.commit()
    with conn.cursor() as cur:
        for i, text in enumerate(samples):
            cur.execute(f"SELECT name, CHAR_LENGTH(name) FROM {ACCOUNTS} WHERE email = %s",
                        (f"unicode{i}@example.com",))
            name, length = cur.fetchone()
            expect(name == text, f"unicode roundtrip: got {name!r}, expected {text!r}")
            expect(length == len(text), f"CHAR_LENGTH {length}, expected {len(text)}")
        cur.execute("SELECT %s = '\U0001F600', HEX(%s)", ("\U0001F600", "\U0001F600"))
        equal, hexed = cur.fetchone()
        expect(equal == 1 and hexed == "F09F9880", f"emoji literal compared as {equal}/{hexed}")


def check_duplicate_key(conn):
    try:
        with conn.cursor() as cur:
            cur.execute(f"INSERT INTO {ACCOUNTS} (email, name) VALUES (%s, %s)",
                        ("user7@example.com", "duplicate"))
    except pymysql.err.IntegrityError as error:
        expect(error.args[0] == 1062, f"IntegrityError {error.args}, expected errno 1062")
    else:
        raise CheckFailed("duplicate insert did not raise IntegrityError")
    conn.rollback()
    expect(scalar(conn, "SELECT 1") == 1, "connection unusable after IntegrityError")
    expect(count_rows(conn, ACCOUNTS, "email = %s", ("user7@example.com",)) == 1,
           "duplicate row present")


def check_wrong_password(conn):
    try:
        bad = connect(password=PASSWORD + "-wrong")
    except pymysql.err.OperationalError as error:
        expect(error.args[0] == 1045, f"OperationalError {error.args}, expected errno 1045")
    else:
        bad.close()
        raise CheckFailed("login with a wrong password succeeded")
    expect(scalar(conn, "SELECT 1") == 1, "existing connection unusable")


def check_autocommit(conn):
    observer = connect(autocommit=True)
    try:
        conn.autocommit(True)
        expect(scalar(conn, "SELECT @@autocommit") == 1, "@@autocommit not 1")
        with conn.cursor() as cur:
            cur.execute(f"INSERT INTO {EVENTS} (account_id, kind, amount) VALUES (0, 'auto', 1)")
        expect(scalar(conn, "SELECT @@in_transaction") == 0, "in a transaction with autocommit on")
        expect(count_rows(observer, EVENTS, "kind = 'auto'") == 1,
               "autocommitted insert not visible")

        conn.autocommit(False)
        expect(scalar(conn, "SELECT @@autocommit") == 0, "@@autocommit not 0")
        with conn.cursor() as cur:
            cur.execute(f"INSERT INTO {EVENTS} (account_id, kind, amount) VALUES (0, 'manual', 1)")
        expect(scalar(conn, "SELECT @@in_transaction") == 1, "@@in_transaction not 1")
        expect(count_rows(observer, EVENTS, "kind = 'manual'") == 0,
               "uncommitted insert visible with autocommit off")
        conn.commit()
        expect(count_rows(observer, EVENTS, "kind = 'manual'") == 1,
               "committed insert not visible")

        # begin() starts an explicit transaction regardless of autocommit.
        conn.autocommit(True)
        conn.begin()
        expect(scalar(conn, "SELECT @@in_transaction") == 1, "begin() did not start a transaction")
        with conn.cursor() as cur:
            cur.execute(f"DELETE FROM {EVENTS} WHERE kind IN ('auto', 'manual')")
        conn.rollback()
        expect(count_rows(conn, EVENTS, "kind IN ('auto', 'manual')") == 2,
               "rollback after begin() did not undo the delete")
    finally:
        conn.autocommit(False)
        observer.close()


def check_multi_statements(conn):
    multi = connect(client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS)
    try:
        with multi.cursor() as cur:
            cur.execute("SELECT 1; SELECT 2, 3; DO 0; SELECT 'last'")
            results = [cur.fetchall()]
            while cur.nextset():
                results.append(cur.fetchall())
        expect(results == [((1,),), ((2, 3),), (), (("last",),)],
               f"multi-statement results {results!r}")
        expect(scalar(multi, "SELECT 4") == 4, "connection unusable after multi-statement")
    finally:
        multi.close()


def check_ping_and_select_db(conn):
    conn.ping(reconnect=False)
    conn.select_db("information_schema")
    expect(scalar(conn, "SELECT DATABASE()") == "information_schema", "select_db had no effect")
    conn.select_db(DB)
    expect(scalar(conn, "SELECT DATABASE()") == DB, "select_db back had no effect")


CHECKS = [
    ("tls", check_tls),
    ("schema", check_schema),
    ("executemany", check_executemany),
    ("parameterized_select", check_parameterized_select),
    ("transactions", check_transactions),
    ("streaming", check_streaming),
    ("unicode", check_unicode),
    ("duplicate_key", check_duplicate_key),
    ("wrong_password", check_wrong_password),
    ("autocommit", check_autocommit),
    ("multi_statements", check_multi_statements),
    ("ping_select_db", check_ping_and_select_db),
]


def describe(error):
    if isinstance(error, CheckFailed):
        return str(error)
    if isinstance(error, pymysql.err.MySQLError) and error.args:
        return f"{type(error).__name__} {error.args!r}"
    frame = traceback.extract_tb(error.__traceback__)[-1]
    return f"{type(error).__name__}: {error} (line {frame.lineno})"


def drop_tables():
    try:
        conn = connect()
        with conn.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {ACCOUNTS}, {EVENTS}")
        conn.close()
    except pymysql.err.MySQLError as error:
        print(f"cleanup: {describe(error)}", file=sys.stderr)


def main(argv):
    if not (USER and DB and CA):
        print("SY_USER, SY_DB and SY_CA must be set", file=sys.stderr)
        return 2
    names = [name for name, _ in CHECKS]
    unknown = [name for name in argv if name not in names]
    if unknown:
        print(f"unknown check(s) {unknown}; checks are: {' '.join(names)}", file=sys.stderr)
        return 2
    # Later checks depend on the schema and rows of earlier ones, so a
    # selection always runs the setup checks too.
    selected = (set(argv) | {"schema", "executemany"}) if argv else set(names)

    failed = 0
    try:
        conn = connect()
    except pymysql.err.MySQLError as error:
        print(f"FAIL connect: {describe(error)}")
        return 1
    try:
        for name, check in CHECKS:
            if name not in selected:
                continue
            try:
                check(conn)
                print(f"ok {name}", flush=True)
            except Exception as error:  # report and carry on with the next check
                failed += 1
                print(f"FAIL {name}: {describe(error)}", flush=True)
                try:
                    conn.rollback()
                except pymysql.err.MySQLError:
                    conn.close()
                    conn = connect()
    finally:
        conn.close()
        drop_tables()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
