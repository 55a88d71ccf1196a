<?php
// One CometQL operation through PHP's mysqli or PDO (mysqlnd), as a PHP backend writes it.
// Input: one JSON object on stdin (see tests/clients/drivers.py); output: one JSON object on stdout.
// Errors are reported, not thrown, so the test sees the exception class and codes PHP gives.

$in = json_decode(stream_get_contents(STDIN), true, 512, JSON_THROW_ON_ERROR);

function out(array $result): void {
    echo json_encode($result, JSON_UNESCAPED_UNICODE | JSON_THROW_ON_ERROR | JSON_PRESERVE_ZERO_FRACTION);
}

function error_of(Throwable $e): array {
    $err = ['class' => get_class($e), 'code' => $e->getCode(), 'message' => $e->getMessage()];
    if ($e instanceof PDOException) {
        $err['errorInfo'] = $e->errorInfo;
    }
    if ($e instanceof mysqli_sql_exception) {
        $err['sqlstate'] = $e->getSqlState();
    }
    return $err;
}

const INSERT_PIPE = 'INSERT INTO pipes_messages (name, event, message) VALUES (%s, %s, %s)';
const INSERT_USER = 'INSERT INTO users_messages (id, event, message) VALUES (%s, %s, %s)';

function run_mysqli(array $in): array {
    // No mysqli_report() call: PHP 8.1+ throws mysqli_sql_exception by default, which is what we test.
    $db = mysqli_init();
    if (!empty($in['native_types'])) {
        $db->options(MYSQLI_OPT_INT_AND_FLOAT_NATIVE, true);
    }
    $db->real_connect($in['host'], $in['user'], $in['password'], $in['database'], $in['port']);
    $db->set_charset($in['charset'] ?? 'utf8mb4');
    $q = fn(string $s): string => "'" . $db->real_escape_string($s) . "'";
    switch ($in['op']) {
        case 'publish':
            $affected = [];
            foreach ($in['messages'] as $m) {
                $db->query(sprintf(INSERT_PIPE, $q($in['pipe']), $q($in['event']), $q($m)));
                $affected[] = $db->affected_rows;
            }
            return ['affected' => $affected];
        case 'prepared_publish':
            $st = $db->prepare(sprintf(INSERT_PIPE, '?', '?', '?'));
            $affected = [];
            foreach ($in['messages'] as $m) {
                $st->bind_param('sss', $in['pipe'], $in['event'], $m);
                $st->execute();
                $affected[] = $st->affected_rows;
            }
            $st->close();
            return ['affected' => $affected];
        case 'personal':
            $db->query(sprintf(INSERT_USER, (int)$in['user_id'], $q($in['event']), $q($in['message'])));
            return ['affected' => [$db->affected_rows]];
        case 'users_time':
            $ids = implode(', ', array_map('intval', $in['ids']));
            return ['rows' => $db->query("SELECT id, time FROM users_time WHERE id IN ($ids)")->fetch_all(MYSQLI_NUM)];
        case 'prepared_users_time':
            $st = $db->prepare('SELECT id, time FROM users_time WHERE id IN (' .
                               implode(', ', array_fill(0, count($in['ids']), '?')) . ')');
            $ids = array_map('intval', $in['ids']);
            $st->bind_param(str_repeat('i', count($ids)), ...$ids);
            $st->execute();
            return ['rows' => $st->get_result()->fetch_all(MYSQLI_NUM)];
        case 'query':
            $r = $db->query($in['sql']);
            return ['rows' => $r === true ? null : $r->fetch_all(MYSQLI_NUM)];
    }
    throw new InvalidArgumentException('unknown op ' . $in['op']);
}

function run_pdo(array $in): array {
    $dsn = sprintf('mysql:host=%s;port=%d;dbname=%s;charset=utf8mb4', $in['host'], $in['port'], $in['database']);
    $db = new PDO($dsn, $in['user'], $in['password'], [
        PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION,
        // 'pdo': real COM_STMT_PREPARE / EXECUTE; 'pdo-emulated' (PDO's default): escaped on the client
        PDO::ATTR_EMULATE_PREPARES => $in['api'] === 'pdo-emulated',
    ]);
    switch ($in['op']) {
        case 'publish':
            $affected = [];
            foreach ($in['messages'] as $m) {
                $affected[] = $db->exec(sprintf(INSERT_PIPE, $db->quote($in['pipe']), $db->quote($in['event']),
                                                $db->quote($m)));
            }
            return ['affected' => $affected];
        case 'prepared_publish':
            $st = $db->prepare(sprintf(INSERT_PIPE, '?', '?', '?'));
            $affected = [];
            foreach ($in['messages'] as $m) {
                $st->execute([$in['pipe'], $in['event'], $m]);
                $affected[] = $st->rowCount();
            }
            return ['affected' => $affected];
        case 'personal':
            $n = $db->exec(sprintf(INSERT_USER, (int)$in['user_id'], $db->quote($in['event']),
                                   $db->quote($in['message'])));
            return ['affected' => [$n]];
        case 'users_time':
            $ids = implode(', ', array_map('intval', $in['ids']));
            return ['rows' => $db->query("SELECT id, time FROM users_time WHERE id IN ($ids)")->fetchAll(PDO::FETCH_NUM)];
        case 'query':
            $st = $db->query($in['sql']);
            return ['rows' => $st->columnCount() ? $st->fetchAll(PDO::FETCH_NUM) : null];
    }
    throw new InvalidArgumentException('unknown op ' . $in['op']);
}

try {
    out($in['api'] === 'mysqli' ? run_mysqli($in) : run_pdo($in));
} catch (Throwable $e) {
    out(['error' => error_of($e)]);
}
