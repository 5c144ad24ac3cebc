// Test helper (not in the build): a Git smart-HTTP server that runs `git http-backend` as CGI.
import { execFile, spawn } from 'node:child_process';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** A running test Git server. */
export interface TestGitServer {
  /** Base URL, e.g. `http://127.0.0.1:PORT`; repositories are at `${url}/<name>.git`. */
  readonly url: string;
  /** Stops the server. */
  close(): Promise<void>;
}

/** Creates a bare repository `<root>/<name>` (branch main) that accepts pushes over HTTP. */
export async function createBareRepo(root: string, name: string): Promise<string> {
  const path = join(root, name);
  await run('git', ['init', '--quiet', '--bare', '-b', 'main', path]);
  await run('git', ['-C', path, 'config', 'http.receivepack', 'true']);
  return path;
}

function authorized(req: IncomingMessage, token: string): boolean {
  const header = req.headers.authorization ?? '';
  if (header.startsWith('Bearer ')) return header.slice(7) === token;
  if (header.startsWith('Basic ')) {
    const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    return colon >= 0 && decoded.slice(colon + 1) === token;
  }
  return false;
}

async function gitExecPath(): Promise<string> {
  const { stdout } = await run('git', ['--exec-path']);
  return stdout.trim();
}

function serveCgi(backend: string, root: string, req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const env: NodeJS.ProcessEnv = {
    PATH: process.env['PATH'],
    GIT_PROJECT_ROOT: root,
    GIT_HTTP_EXPORT_ALL: '1',
    REQUEST_METHOD: req.method ?? 'GET',
    PATH_INFO: decodeURIComponent(url.pathname),
    QUERY_STRING: url.search.replace(/^\?/, ''),
    CONTENT_TYPE: req.headers['content-type'] ?? '',
    REMOTE_USER: req.headers.authorization ? 'user' : '',
    REMOTE_ADDR: req.socket.remoteAddress ?? '127.0.0.1',
  };
  const length = req.headers['content-length'];
  if (length !== undefined && req.headers['transfer-encoding'] === undefined) {
    env['CONTENT_LENGTH'] = length;
  }
  const encoding = req.headers['content-encoding'];
  if (encoding !== undefined) env['HTTP_CONTENT_ENCODING'] = encoding;
  const protocol = req.headers['git-protocol'];
  if (typeof protocol === 'string') env['GIT_PROTOCOL'] = protocol;

  const child = spawn(backend, [], { env, stdio: ['pipe', 'pipe', 'ignore'] });
  req.pipe(child.stdin);
  child.stdin.on('error', () => undefined);
  let head = Buffer.alloc(0);
  let headersDone = false;
  child.stdout.on('data', (chunk: Buffer) => {
    if (headersDone) {
      res.write(chunk);
      return;
    }
    head = Buffer.concat([head, chunk]);
    const text = head.toString('latin1');
    let end = text.indexOf('\r\n\r\n');
    let sep = 4;
    if (end < 0) {
      end = text.indexOf('\n\n');
      sep = 2;
    }
    if (end < 0) return;
    headersDone = true;
    let status = 200;
    for (const line of text.slice(0, end).split(/\r?\n/)) {
      const colon = line.indexOf(':');
      if (colon < 0) continue;
      const name = line.slice(0, colon).trim();
      const value = line.slice(colon + 1).trim();
      if (name.toLowerCase() === 'status') status = Number.parseInt(value, 10);
      else res.setHeader(name, value);
    }
    res.statusCode = status;
    res.write(head.subarray(end + sep));
  });
  child.stdout.on('end', () => res.end());
  child.on('error', () => {
    res.statusCode = 500;
    res.end();
  });
}

/** Starts a smart-HTTP Git server on 127.0.0.1 serving the bare repositories under `root`. */
export async function startGitServer(options: { root: string; token?: string }): Promise<TestGitServer> {
  const backend = join(await gitExecPath(), 'git-http-backend');
  const server = createServer((req, res) => {
    if (options.token !== undefined && !authorized(req, options.token)) {
      req.resume();
      res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="git"' });
      res.end('authentication required\n');
      return;
    }
    serveCgi(backend, options.root, req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}
