#!/usr/bin/perl
# A Perl DBI + DBD::MariaDB workload used to check Switchyard with a
# libmariadb-based client, once with client-side placeholders
# (mariadb_server_prepare=0, text protocol) and once with server-side
# prepared statements (mariadb_server_prepare=1, binary protocol).
#
# Environment: SY_HOST, SY_PORT, SY_USER, SY_PASSWORD, SY_DB, SY_CA.
# Prints "ok <check> (server_prepare=N)" or "FAIL <check> (...): <reason>"
# and exits with 1 when any check failed.

use strict;
use warnings;
use utf8;

use DBI qw(:sql_types);

binmode STDOUT, ':encoding(UTF-8)';

my %cfg = (
    host     => $ENV{SY_HOST} // '127.0.0.1',
    port     => $ENV{SY_PORT} // 3306,
    user     => $ENV{SY_USER},
    password => $ENV{SY_PASSWORD} // '',
    db       => $ENV{SY_DB},
    ca       => $ENV{SY_CA},
);
for my $required (qw(user db ca)) {
    next if defined $cfg{$required} && length $cfg{$required};
    print STDERR "SY_USER, SY_DB and SY_CA must be set\n";
    exit 2;
}

sub connect_db {
    my ($server_prepare) = @_;
    my $dsn = "DBI:MariaDB:database=$cfg{db};host=$cfg{host};port=$cfg{port}"
        . ";mariadb_ssl=1;mariadb_ssl_verify_server_cert=1"
        . ";mariadb_ssl_ca_file=$cfg{ca};mariadb_connect_timeout=10";
    return DBI->connect($dsn, $cfg{user}, $cfg{password}, {
        RaiseError             => 1,
        PrintError             => 0,
        AutoCommit             => 1,
        mariadb_server_prepare => $server_prepare,
        # Report a failed server-side prepare instead of silently falling
        # back to client-side placeholders.
        mariadb_server_prepare_disable_fallback => 1,
    });
}

sub expect {
    my ($condition, $message) = @_;
    die "$message\n" unless $condition;
}

# Runs $code, which must die with MariaDB error $errno; returns the message.
sub expect_error {
    my ($dbh, $errno, $what, $code) = @_;
    my $ok = eval { $code->(); 1 };
    expect(!$ok, "$what succeeded, expected error $errno");
    my $err = $dbh->err // 0;
    expect($err == $errno, "$what failed with $err (" . ($dbh->errstr // $@) . "), expected $errno");
    return $dbh->errstr;
}

sub row_count {
    my ($dbh, $table, $where, @binds) = @_;
    $where //= '1';
    my ($n) = $dbh->selectrow_array("SELECT COUNT(*) FROM $table WHERE $where", undef, @binds);
    return $n;
}

# --- checks -----------------------------------------------------------------

sub check_tls {
    my ($dbh) = @_;
    my $client_cipher = $dbh->{mariadb_ssl_cipher};
    expect($client_cipher, 'mariadb_ssl_cipher is empty: the connection is not encrypted');
    my (undef, $server_cipher) = $dbh->selectrow_array("SHOW SESSION STATUS LIKE 'Ssl_cipher'");
    # Through a proxy the server reports the cipher of the proxy's own hop, which may differ.
    expect($server_cipher, "the server reports no Ssl_cipher: the server hop is not encrypted");
}

sub check_schema {
    my ($dbh, $table) = @_;
    $dbh->do("DROP TABLE IF EXISTS $table");
    $dbh->do(<<"SQL");
CREATE TABLE $table (
    id INT AUTO_INCREMENT PRIMARY KEY,
    code VARCHAR(32) NOT NULL UNIQUE,
    amount DECIMAL(10, 2) NOT NULL,
    note VARCHAR(100) CHARACTER SET utf8mb4 NULL,
    payload BLOB NULL
) ENGINE=InnoDB
SQL
}

sub check_insert_loop {
    my ($dbh, $table) = @_;
    my $sth = $dbh->prepare("INSERT INTO $table (code, amount, note) VALUES (?, ?, ?)");
    my $previous;
    for my $i (1 .. 200) {
        my $affected = $sth->execute("code-$i", $i * 1.25, $i % 2 ? "odd $i" : undef);
        expect($affected == 1, "insert $i affected $affected rows");
        my $id = $dbh->last_insert_id(undef, undef, $table, 'id');
        expect(defined $id && $id > 0, "no last_insert_id after insert $i");
        expect($sth->{mariadb_insertid} == $id, "statement and handle insert ids differ");
        expect(!defined $previous || $id == $previous + 1,
            "insert ids not consecutive: " . ($previous // "none") . " then $id");
        $previous = $id;
    }
    my ($server_id) = $dbh->selectrow_array('SELECT LAST_INSERT_ID()');
    expect($server_id == $previous, "LAST_INSERT_ID() is $server_id, last_insert_id was $previous");
    expect(row_count($dbh, $table) == 200, 'not all 200 rows inserted');
}

sub check_selectall {
    my ($dbh, $table) = @_;
    my $rows = $dbh->selectall_arrayref(
        "SELECT id, code, amount, note FROM $table WHERE amount >= ? AND amount < ? ORDER BY id",
        { Slice => {} }, 100, 110);
    expect(@$rows == 8, 'expected 8 rows with 100 <= amount < 110, got ' . @$rows);
    expect($rows->[0]{code} eq 'code-80' && $rows->[0]{amount} == 100,
        "first row is $rows->[0]{code} / $rows->[0]{amount}");
    expect(!defined $rows->[0]{note} && $rows->[1]{note} eq 'odd 81',
        'NULL / non-NULL notes came back wrong');

    my $codes = $dbh->selectcol_arrayref(
        "SELECT code FROM $table WHERE id IN (SELECT MIN(id) FROM $table UNION SELECT MAX(id) FROM $table) ORDER BY id");
    expect("@$codes" eq 'code-1 code-200', "selectcol_arrayref returned @$codes");

    my $by_code = $dbh->selectall_hashref("SELECT code, amount FROM $table WHERE code LIKE ?",
        'code', undef, 'code-1_');
    expect(keys %$by_code == 10 && $by_code->{'code-15'}{amount} == 18.75,
        'selectall_hashref returned the wrong rows');

    # The same statement handle, executed again with other values.
    my $sth = $dbh->prepare("SELECT COUNT(*), SUM(amount) FROM $table WHERE id <= ?");
    for my $limit (10, 100, 1000) {
        $sth->execute($limit);
        my ($n) = $sth->fetchrow_array;
        $sth->finish;
        my $want = $limit > 200 ? 200 : $limit;
        expect($n == $want, "COUNT with id <= $limit is $n, expected $want");
    }
}

sub check_null_and_binary {
    my ($dbh, $table) = @_;
    my $binary = join('', map { chr } 0 .. 255) x 64;    # 16 KiB, all byte values
    my $with_nuls = "a\0b\0\0c\x{ff}\n'\"\\";

    my $sth = $dbh->prepare("INSERT INTO $table (code, amount, note, payload) VALUES (?, ?, ?, ?)");
    for my $case (['bin-1', $binary], ['bin-2', $with_nuls], ['bin-null', undef]) {
        my ($code, $payload) = @$case;
        $sth->bind_param(1, $code);
        $sth->bind_param(2, 0);
        $sth->bind_param(3, undef);
        $sth->bind_param(4, $payload, SQL_BLOB);
        $sth->execute;
    }
    my $read = $dbh->prepare("SELECT payload, note, LENGTH(payload), HEX(payload) FROM $table WHERE code = ?");
    for my $case (['bin-1', $binary], ['bin-2', $with_nuls]) {
        my ($code, $want) = @$case;
        $read->execute($code);
        my ($got, $note, $length, $hex) = $read->fetchrow_array;
        $read->finish;
        expect(defined $got && $got eq $want,
            "$code payload differs (" . length($got // '') . ' bytes, expected ' . length($want) . ')');
        expect($length == length($want), "$code LENGTH() is $length");
        expect($hex eq uc unpack('H*', $want), "$code HEX() differs from the bytes sent");
        expect(!defined $note, "$code note is not NULL");
    }
    $read->execute('bin-null');
    my ($payload) = $read->fetchrow_array;
    $read->finish;
    expect(!defined $payload, 'NULL payload came back defined');
    expect(row_count($dbh, $table, 'code LIKE ? AND note IS NULL', 'bin-%') == 3,
        'NULL bind did not store NULL');

    my ($is_null) = $dbh->selectrow_array('SELECT ? IS NULL', undef, undef);
    expect($is_null == 1, 'undef placeholder was not NULL');

    my $text = "Grüße 🐬 日本";
    $dbh->do("UPDATE $table SET note = ? WHERE code = 'bin-null'", undef, $text);
    my ($note, $chars) = $dbh->selectrow_array(
        "SELECT note, CHAR_LENGTH(note) FROM $table WHERE code = 'bin-null'");
    expect($note eq $text && $chars == length $text, "unicode note came back as '$note'");
}

sub check_transactions {
    my ($dbh, $table) = @_;
    my $before = row_count($dbh, $table);

    $dbh->begin_work;
    expect(!$dbh->{AutoCommit}, 'AutoCommit still on inside begin_work');
    $dbh->do("INSERT INTO $table (code, amount) VALUES ('txn-rollback', 1)");
    my ($in_txn) = $dbh->selectrow_array('SELECT @@in_transaction');
    expect($in_txn == 1, '@@in_transaction is not 1 after begin_work');
    $dbh->rollback;
    expect($dbh->{AutoCommit}, 'AutoCommit not restored after rollback');
    expect(row_count($dbh, $table) == $before, 'rolled-back insert is present');

    $dbh->begin_work;
    $dbh->do("INSERT INTO $table (code, amount) VALUES ('txn-commit', 2)");
    $dbh->do("UPDATE $table SET amount = amount + 1 WHERE code = 'txn-commit'");
    $dbh->commit;
    expect(row_count($dbh, $table, 'code = ? AND amount = 3', 'txn-commit') == 1,
        'committed transaction missing');
    my ($after) = $dbh->selectrow_array('SELECT @@in_transaction');
    expect($after == 0, '@@in_transaction is not 0 after commit');

    # A failing statement inside a transaction does not end it.
    $dbh->begin_work;
    $dbh->do("INSERT INTO $table (code, amount) VALUES ('txn-partial', 4)");
    eval { $dbh->do("INSERT INTO $table (code, amount) VALUES ('txn-partial', 5)") };
    $dbh->commit;
    expect(row_count($dbh, $table, 'code = ?', 'txn-partial') == 1,
        'statement before the failing one was lost');
}

sub check_errors {
    my ($dbh, $table) = @_;
    my $sth = $dbh->prepare("INSERT INTO $table (code, amount) VALUES (?, ?)");
    expect_error($dbh, 1062, 'duplicate insert', sub { $sth->execute('code-1', 1) });
    expect($dbh->state eq '23000', 'SQLSTATE for a duplicate is ' . $dbh->state);
    $sth->execute('after-duplicate', 1);    # the statement handle still works
    my ($one) = $dbh->selectrow_array('SELECT 1');
    expect($one == 1, 'handle unusable after a duplicate-key error');

    expect_error($dbh, 1064, 'syntax error', sub { $dbh->do('SELEKT 1') });
    expect_error($dbh, 1064, 'syntax error with placeholder',
        sub { $dbh->prepare('SELECT FROM WHERE ?')->execute(1) });
    expect_error($dbh, 1146, 'missing table', sub { $dbh->selectall_arrayref('SELECT * FROM sy_no_such_table') });
    my ($two) = $dbh->selectrow_array('SELECT ? + 1', undef, 1);
    expect($two == 2, 'handle unusable after syntax errors');
    expect($dbh->ping, 'ping failed after errors');
}

my @checks = (
    [tls              => \&check_tls],
    [schema           => \&check_schema],
    [insert_loop      => \&check_insert_loop],
    [selectall        => \&check_selectall],
    [null_and_binary  => \&check_null_and_binary],
    [transactions     => \&check_transactions],
    [errors           => \&check_errors],
);

my $failed = 0;
for my $server_prepare (0, 1) {
    my $mode = "(server_prepare=$server_prepare)";
    my $table = "sy_pl_$$\_$server_prepare";
    my $dbh = eval { connect_db($server_prepare) };
    if (!$dbh) {
        chomp(my $reason = $DBI::errstr // $@);
        print "FAIL connect $mode: $reason (errno " . ($DBI::err // 0) . ")\n";
        $failed++;
        next;
    }
    for my $check (@checks) {
        my ($name, $code) = @$check;
        if (eval { $code->($dbh, $table); 1 }) {
            print "ok $name $mode\n";
        } else {
            chomp(my $reason = $@);
            print "FAIL $name $mode: $reason\n";
            $failed++;
            eval { $dbh->rollback unless $dbh->{AutoCommit} };
        }
    }
    eval { $dbh->do("DROP TABLE IF EXISTS $table") }
        or print STDERR "cleanup: $@";
    $dbh->disconnect;
}
exit($failed ? 1 : 0);
