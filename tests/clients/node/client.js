'use strict';
// One CometQL operation through node's mysql2 (query() or execute()) or mysql, as a Node backend
// writes it. Input: one JSON object on stdin (see tests/clients/drivers.py); output: one JSON
// object on stdout. Errors are reported, not thrown, so the test sees the codes the library gives.

const INSERT_PIPE = 'INSERT INTO pipes_messages (name, event, message) VALUES (?, ?, ?)';
const INSERT_USER = 'INSERT INTO users_messages (id, event, message) VALUES (?, ?, ?)';

function connect(input) {
  const options = {
    host: input.host, port: input.port, user: input.user, password: input.password,
    database: input.database, charset: 'utf8mb4',
  };
  if (input.lib === 'mysql2') {
    return require('mysql2/promise').createConnection(options);
  }
  // mysql (the older library) has callbacks only: wrap the calls the tests use.
  const conn = require('mysql').createConnection(options);
  const call = (fn) => new Promise((resolve, reject) => fn((err, result) => (err ? reject(err) : resolve([result]))));
  return call((cb) => conn.connect(cb)).then(() => ({
    query: (sql, values) => call((cb) => conn.query(sql, values, cb)),
    end: () => call((cb) => conn.end(cb)),
  }));
}

async function run(input) {
  const conn = await connect(input);
  // query() escapes the values on the client; execute() (mysql2) sends COM_STMT_PREPARE/EXECUTE.
  const run = (sql, values) => (input.op.startsWith('prepared_') ? conn.execute(sql, values) : conn.query(sql, values));
  try {
    switch (input.op) {
      case 'publish':
      case 'prepared_publish': {
        const affected = [];
        for (const m of input.messages) {
          const [result] = await run(INSERT_PIPE, [input.pipe, input.event, m]);
          affected.push(result.affectedRows);
        }
        return { affected };
      }
      case 'personal': {
        const [result] = await run(INSERT_USER, [input.user_id, input.event, input.message]);
        return { affected: [result.affectedRows] };
      }
      case 'users_time': {
        const ids = input.ids.map(() => '?').join(', ');
        const [rows] = await run(`SELECT id, time FROM users_time WHERE id IN (${ids})`, input.ids);
        return { rows: rows.map((r) => [r.id, r.time]) };
      }
      case 'query': {
        const [rows] = await run(input.sql, []);
        return { rows: Array.isArray(rows) ? rows.map((r) => Object.values(r)) : null };
      }
      default:
        throw new Error(`unknown op ${input.op}`);
    }
  } finally {
    await conn.end();
  }
}

let text = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => { text += chunk; });
process.stdin.on('end', () => {
  const input = JSON.parse(text);
  run(input).then(
    (result) => process.stdout.write(JSON.stringify(result)),
    (err) => process.stdout.write(JSON.stringify({
      error: { name: err.name, code: err.code, errno: err.errno, sqlState: err.sqlState, message: err.sqlMessage || err.message },
    })),
  );
});
