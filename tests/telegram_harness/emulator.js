// Runs the telegram-test-api emulator as a standalone process for the Python test harness.
// The package ships no runnable server entry (its `npm start` script points at a bin/ folder
// that is not published), so this file is that entry.
// Usage: node emulator.js <port> [host]
'use strict';

const TelegramServer = require('telegram-test-api');

const port = Number(process.argv[2]);
const host = process.argv[3] || '127.0.0.1';
if (!Number.isInteger(port) || port <= 0) {
  process.stderr.write('usage: node emulator.js <port> [host]\n');
  process.exit(2);
}

// storeTimeout is in seconds; a long one keeps messages for the whole module run.
const server = new TelegramServer({ port, host, storeTimeout: 3600 });
let stopping = false;

async function stop(code) {
  if (stopping) return;
  stopping = true;
  try {
    await server.stop();
  } finally {
    process.exit(code);
  }
}

process.on('SIGTERM', () => stop(0));
process.on('SIGINT', () => stop(0));
// A closed stdin means the Python side is gone: do not outlive it.
process.stdin.on('end', () => stop(0));
process.stdin.resume();

server.start().then(
  () => process.stdout.write(`listening ${host}:${port}\n`),
  (err) => {
    process.stderr.write(`emulator failed to start: ${err && err.message}\n`);
    process.exit(1);
  },
);
