// Service binaries as real processes, for the Node tests (the page's browser test and the
// Connect client test): start one on a free port and learn its address from its log; stop it
// with SIGTERM.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { createInterface } from 'node:readline';

/**
 * Starts a service binary and resolves once it logs the address it listens on (and, for a
 * facade serving HTTPS, `tlsAddr`).
 */
export async function startService(binDir, name, args) {
  const child = spawn(path.join(binDir, name), args, {
    env: { ...process.env, RUST_LOG: 'info', NO_COLOR: '1' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const log = [];
  let tlsAddr;
  const addr = await new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stderr });
    lines.on('line', (line) => {
      log.push(line);
      const found = line.match(/listening.* addr=(\S+)/);
      if (found) resolve(found[1]);
      // The facade's HTTPS port, in the same line.
      const secure = line.match(/listening.*tls_addr=(\S+)/);
      if (secure) tlsAddr = secure[1];
    });
    child.once('exit', (code) => reject(new Error(`${name} exited (${code}):\n${log.join('\n')}`)));
  });
  return { name, child, addr, tlsAddr, log };
}

export async function stopService(service) {
  if (service.child.exitCode !== null) return;
  const exited = once(service.child, 'exit');
  service.child.kill('SIGTERM');
  await exited;
}
