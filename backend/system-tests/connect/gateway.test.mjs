// The facade's gRPC API (msglog.v1.MessageLog) driven by a client no one on the project wrote:
// Connect for Node, over its gRPC (HTTP/2), gRPC-web (HTTP/1.1) and Connect transports (JSON
// and binary, HTTP/1.1 and HTTP/2, and GET for the side-effect-free List and Status), on the
// plain port and on the HTTPS port (TLS with a certificate from scripts/dev_cert.sh, trusted as
// the only CA), with stubs that protoc-gen-es generates from proto/msglog/v1/message_log.proto.
// Send, List, Watch, Status, and the errors, against the real binaries.
//
// Run by scripts/test.sh (which installs protoc, runs `npm ci` here and builds the binaries).
// Alone: cd backend/system-tests/connect && npm ci && node --test
// Settings: MSGLOG_BIN_DIR (target/debug), PROTOC (protoc on the PATH), CONNECT_REQUIRED=1 to
// fail rather than skip when protoc or a binary is missing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { startService, stopService } from '../../../frontend/e2e/services.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../../..');
const binDir = process.env.MSGLOG_BIN_DIR ?? path.join(root, 'target/debug');
const protoc = process.env.PROTOC ?? 'protoc';
const required = process.env.CONNECT_REQUIRED === '1';
const WAIT = 20_000;

function missingPrerequisite() {
  try {
    execFileSync(protoc, ['--version'], { stdio: 'ignore' });
  } catch {
    return `no protoc (${protoc}); scripts/test.sh installs Debian's protobuf-compiler`;
  }
  if (!existsSync(path.join(here, 'node_modules/.bin/protoc-gen-es'))) return 'run npm ci here first';
  for (const name of ['facade-service', 'logging-service']) {
    if (!existsSync(path.join(binDir, name))) return `${name} is not built in ${binDir} (cargo build)`;
  }
  return null;
}

/** Generates the stubs into gen/ (not committed) and imports them. */
async function generatedStubs() {
  const out = path.join(here, 'gen');
  mkdirSync(out, { recursive: true });
  execFileSync(protoc, [
    `--plugin=protoc-gen-es=${path.join(here, 'node_modules/.bin/protoc-gen-es')}`,
    `--es_out=${out}`,
    '--es_opt=target=js,import_extension=js',
    `-I${path.join(root, 'proto')}`,
    'msglog/v1/message_log.proto',
  ]);
  return import(path.join(out, 'msglog/v1/message_log_pb.js'));
}

/**
 * Reads a watch until `until(seen)` holds, collecting what came. Each read races the deadline,
 * so a watch that hangs fails the test rather than the run.
 */
async function readUntil(events, seen, until) {
  let deadline;
  const expired = new Promise((_, reject) => {
    deadline = setTimeout(
      () => reject(new Error(`not seen within ${WAIT} ms: ${JSON.stringify(seen, big)}`)),
      WAIT,
    );
  });
  try {
    while (!until(seen)) {
      const { value, done } = await Promise.race([events.next(), expired]);
      assert.ok(!done, 'the watch ended');
      const { case: kind, value: body } = value.event;
      if (kind === 'message') seen.messages.push(body);
      else if (kind === 'heartbeat') seen.heartbeats += 1;
      else if (kind === 'feed') seen.feed.push(body.live);
      else assert.fail(`an event of no known kind: ${kind}`);
      seen.kinds.push(kind);
    }
  } finally {
    clearTimeout(deadline);
  }
}

const big = (_, value) => (typeof value === 'bigint' ? value.toString() : value);

test('Connect for Node drives Send, List, Watch and Status over gRPC, gRPC-web and Connect', async (t) => {
  const missing = missingPrerequisite();
  if (missing) {
    if (required) assert.fail(missing);
    t.skip(missing);
    return;
  }
  const { createClient, ConnectError, Code } = await import('@connectrpc/connect');
  const { createConnectTransport, createGrpcTransport, createGrpcWebTransport } = await import('@connectrpc/connect-node');
  const { MessageLog, SendStatus, Direction } = await generatedStubs();

  const services = [];
  const certDir = mkdtempSync(path.join(tmpdir(), 'msglog-connect-tls-'));
  try {
    execFileSync(path.join(root, 'scripts/dev_cert.sh'), [certDir]);
    const ca = readFileSync(path.join(certDir, 'cert.pem'));
    const logging = await startService(binDir, 'logging-service', ['--addr', '127.0.0.1:0', '--store', 'memory']);
    services.push(logging);
    const facade = await startService(binDir, 'facade-service', [
      '--addr', '127.0.0.1:0',
      '--logging-url', `http://${logging.addr}`,
      '--messages-url', 'http://127.0.0.1:9',
      '--tls-addr', '127.0.0.1:0',
      '--tls-cert', path.join(certDir, 'cert.pem'),
      '--tls-key', path.join(certDir, 'key.pem'),
    ]);
    services.push(facade);
    const baseUrl = `http://${facade.addr}`;
    assert.ok(facade.tlsAddr, 'the facade says where it serves HTTPS');
    const secureUrl = `https://localhost:${facade.tlsAddr.split(':').pop()}`;

    const transports = {
      grpc: createGrpcTransport({ baseUrl }),
      'grpc-web': createGrpcWebTransport({ baseUrl, httpVersion: '1.1' }),
      'grpc over TLS': createGrpcTransport({ baseUrl: secureUrl, nodeOptions: { ca } }),
      'grpc-web over TLS': createGrpcWebTransport({ baseUrl: secureUrl, httpVersion: '1.1', nodeOptions: { ca } }),
      'connect (JSON, HTTP/1.1)': createConnectTransport({ baseUrl, httpVersion: '1.1' }),
      'connect (binary, HTTP/2)': createConnectTransport({ baseUrl, httpVersion: '2', useBinaryFormat: true }),
      'connect with GET (JSON, HTTP/1.1)': createConnectTransport({ baseUrl, httpVersion: '1.1', useHttpGet: true }),
      'connect with GET (binary, HTTP/2)': createConnectTransport({
        baseUrl, httpVersion: '2', useBinaryFormat: true, useHttpGet: true,
      }),
      'connect over TLS (JSON, HTTP/2)': createConnectTransport({ baseUrl: secureUrl, httpVersion: '2', nodeOptions: { ca } }),
    };
    let stored = [];
    for (const [name, transport] of Object.entries(transports)) {
      const client = createClient(MessageLog, transport);

      // A watch from the newest seq: a heartbeat at once, then what is stored from now on.
      const abort = new AbortController();
      const newest = stored.length ? stored[stored.length - 1].seq : 0n;
      const events = client.watch({ afterSeq: newest }, { signal: abort.signal })[Symbol.asyncIterator]();
      const seen = { messages: [], feed: [], heartbeats: 0, kinds: [] };
      await readUntil(events, seen, (s) => s.heartbeats >= 1);
      assert.equal(seen.kinds[0], 'heartbeat', `${name}: the first frame comes at once`);

      const text = `from Connect over ${name}`;
      const sent = await client.send({ text });
      assert.equal(sent.status, SendStatus.STORED, name);
      assert.equal(sent.attempts, 1);
      assert.match(sent.id, /^[0-9a-f-]{36}$/);
      const again = await client.send({ text });
      assert.equal(again.status, SendStatus.DUPLICATE, `${name}: the same text is the same message`);
      assert.equal(again.id, sent.id);
      const keyed = await client.send({ text: `${text}, keyed`, idempotencyKey: `key-${name.replaceAll(' ', '-')}` });
      assert.equal(keyed.status, SendStatus.STORED);

      await readUntil(events, seen, (s) => s.messages.length >= 2);
      assert.deepEqual(seen.messages.map((m) => m.text), [text, `${text}, keyed`], `${name}: live, in order, once`);
      assert.equal(seen.messages[0].id, sent.id);
      assert.ok(seen.messages[0].seq < seen.messages[1].seq);
      abort.abort();

      // List forward and backward: the same messages as the watch, in seq order.
      const forward = await client.list({ cursor: 0n, limit: 100 });
      assert.equal(forward.nextCursor, undefined, 'one page holds all');
      const backward = await client.list({ cursor: 0n, limit: 1, direction: Direction.BACKWARD });
      assert.equal(backward.messages.length, 1);
      assert.equal(backward.messages[0].seq, forward.messages[forward.messages.length - 1].seq);
      assert.equal(typeof backward.nextCursor, 'bigint', 'more pages before the newest');
      stored = forward.messages;
      assert.deepEqual(stored.slice(-2).map((m) => m.text), [text, `${text}, keyed`]);

      // Errors arrive as the right codes with what was wrong.
      for (const [request, code, says] of [
        [{ text: '   ' }, Code.InvalidArgument, /empty/],
        [{ text: 'x', idempotencyKey: 'has space' }, Code.InvalidArgument, /Idempotency-Key/],
        [{ text: 'another text', idempotencyKey: `key-${name.replaceAll(' ', '-')}` }, Code.AlreadyExists, /already used/],
      ]) {
        await assert.rejects(client.send(request), (error) => {
          assert.ok(error instanceof ConnectError, String(error));
          assert.equal(error.code, code, `${name}: ${error.message}`);
          assert.match(error.rawMessage, says);
          return true;
        });
      }
      await assert.rejects(client.list({ limit: 1001 }), (error) => error.code === Code.InvalidArgument);

      const status = await client.status({});
      assert.equal(status.facade.up, true);
      assert.equal(status.logging.up, true);
      assert.equal(status.logging.detail, 'SERVING');
      assert.equal(status.messages.up, false, 'no messages service in this test');
      assert.equal(status.feed.live, true);
    }
    assert.equal(stored.length, 2 * Object.keys(transports).length, 'two messages per transport, nothing doubled');
    // The side-effect-free calls of the GET transports went as GETs (the facade counts its
    // requests by method and route), each answered 200.
    const metrics = await (await fetch(`${baseUrl}/metrics`)).text();
    for (const method of ['List', 'Status']) {
      const line = metrics.split('\n').find((l) => l.startsWith(
        `http_requests_total{method="GET",route="/msglog.v1.MessageLog/${method}",status="200"}`));
      assert.ok(line && Number(line.split(' ').pop()) >= 2, `GET ${method}: ${line}`);
    }

    // Logging down: each protocol says UNAVAILABLE (a resend is safe: it carries the same id).
    await stopService(logging);
    for (const name of ['grpc', 'grpc-web', 'connect (JSON, HTTP/1.1)', 'connect (binary, HTTP/2)']) {
      const client = createClient(MessageLog, transports[name]);
      await assert.rejects(client.send({ text: `while logging is down, over ${name}` }), (error) => {
        assert.equal(error.code, Code.Unavailable, `${name}: ${error.message}`);
        return true;
      });
    }

    // A client that trusts nobody here is refused at the handshake: the certificate matters.
    const untrusting = createClient(MessageLog, createGrpcTransport({ baseUrl: secureUrl }));
    await assert.rejects(untrusting.status({}), (error) => /certificate/i.test(String(error.cause ?? error.message)));
  } finally {
    await Promise.all(services.map(stopService));
    rmSync(certDir, { recursive: true, force: true });
  }
});
