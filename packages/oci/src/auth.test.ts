import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent } from 'undici';
import { InputError, UnauthorizedError } from '@aiedge/protocol';
import {
  RegistryAuth,
  authFilePaths,
  findCredentials,
  parseWwwAuthenticate,
  repositoryScope,
  type FoundCredentials,
} from './auth.js';

const b64 = (s: string): string => Buffer.from(s).toString('base64');

describe('auth files', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'aiedge-auth-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function writeJson(path: string, doc: unknown): Promise<string> {
    await mkdir(join(path, '..'), { recursive: true });
    await writeFile(path, JSON.stringify(doc));
    return path;
  }

  test('authFilePaths lists REGISTRY_AUTH_FILE, XDG auth.json, then Docker config', () => {
    assert.deepEqual(
      authFilePaths({ REGISTRY_AUTH_FILE: '/a.json', XDG_RUNTIME_DIR: '/run/u', HOME: '/home/u' }),
      ['/a.json', '/run/u/containers/auth.json', '/home/u/.docker/config.json'],
    );
    assert.deepEqual(authFilePaths({ DOCKER_CONFIG: '/etc/dc', HOME: '/home/u' }), ['/etc/dc/config.json']);
    assert.deepEqual(authFilePaths({}), []);
  });

  test('the first source with an entry wins: option, REGISTRY_AUTH_FILE, XDG, Docker', async () => {
    const home = join(dir, 'home');
    const runtime = join(dir, 'run');
    const explicitFile = join(dir, 'explicit.json');
    await writeJson(explicitFile, { auths: { 'r.example': { auth: b64('fileuser:filepass') } } });
    await writeJson(join(runtime, 'containers', 'auth.json'), {
      auths: { 'r.example': { auth: b64('xdguser:xdgpass') }, 'only-xdg.example': { auth: b64('x:y') } },
    });
    await writeJson(join(home, '.docker', 'config.json'), {
      auths: {
        'r.example': { username: 'dockeruser', password: 'dockerpass' },
        'https://index.docker.io/v1/': { auth: b64('hubuser:hub:pass:with:colons') },
        'tok.example': { auth: b64('<token>:'), identitytoken: 'refresh-123' },
        'empty.example': {},
      },
    });
    const env = { REGISTRY_AUTH_FILE: explicitFile, XDG_RUNTIME_DIR: runtime, HOME: home };

    const explicit = await findCredentials('r.example', {
      env,
      credentials: { username: 'u', password: 'p' },
    });
    assert.deepEqual(explicit, {
      credentials: { username: 'u', password: 'p' },
      source: 'the credentials option',
    });

    assert.deepEqual(await findCredentials('r.example', { env }), {
      credentials: { username: 'fileuser', password: 'filepass' },
      source: explicitFile,
    });
    const { REGISTRY_AUTH_FILE: _drop, ...noExplicit } = env;
    assert.deepEqual((await findCredentials('r.example', { env: noExplicit }))?.credentials, {
      username: 'xdguser',
      password: 'xdgpass',
    });
    assert.deepEqual((await findCredentials('r.example', { env: { HOME: home } }))?.credentials, {
      username: 'dockeruser',
      password: 'dockerpass',
    });
    // Files without an entry for the registry are passed over.
    assert.equal(
      (await findCredentials('only-xdg.example', { env }))?.source,
      join(runtime, 'containers', 'auth.json'),
    );
    // Docker Hub's historic key, and passwords with colons.
    assert.deepEqual((await findCredentials('docker.io', { env }))?.credentials, {
      username: 'hubuser',
      password: 'hub:pass:with:colons',
    });
    assert.deepEqual((await findCredentials('tok.example', { env }))?.credentials, {
      identityToken: 'refresh-123',
      username: '<token>',
    });
    assert.equal(await findCredentials('empty.example', { env }), undefined);
    assert.equal(await findCredentials('nowhere.example', { env }), undefined);
  });

  test('repository-scoped keys of auth.json match before the registry key', async () => {
    const file = await writeJson(join(dir, 'scoped.json'), {
      auths: {
        'r.example': { auth: b64('all:one') },
        'r.example/team': { auth: b64('team:two') },
        'r.example/team/app': { auth: b64('app:three') },
      },
    });
    const env = { REGISTRY_AUTH_FILE: file };
    const user = async (repository: string): Promise<string | undefined> =>
      (await findCredentials('r.example', { env, repository }))?.credentials.username;
    assert.equal(await user('team/app'), 'app');
    assert.equal(await user('team/other'), 'team');
    assert.equal(await user('elsewhere'), 'all');
  });

  test('a broken auth file is an error that does not quote the file', async () => {
    const file = join(dir, 'broken.json');
    await writeFile(file, '{"auths": {"r.example": {"auth": "c2VjcmV0OnMzY3IzdA=="}} oops');
    await assert.rejects(
      findCredentials('r.example', { env: { REGISTRY_AUTH_FILE: file } }),
      (error: unknown) => {
        assert.ok(error instanceof InputError);
        assert.match(error.message, /is not valid JSON/);
        assert.ok(!error.message.includes('c2VjcmV0'), error.message);
        assert.equal(error.cause, undefined);
        return true;
      },
    );
    const bad = await writeJson(join(dir, 'bad-auth.json'), {
      auths: { 'r.example': { auth: b64('nocolon') } },
    });
    await assert.rejects(
      findCredentials('r.example', { env: { REGISTRY_AUTH_FILE: bad } }),
      (error: unknown) => {
        assert.ok(error instanceof InputError);
        assert.match(
          error.message,
          /auths\["r.example"\] in .*bad-auth.json: "auth" is not base64 of user:password/,
        );
        assert.ok(!error.message.includes(b64('nocolon')));
        return true;
      },
    );
  });
});

describe('parseWwwAuthenticate', () => {
  const cases: Array<[string, Array<{ scheme: string; params: Record<string, string> }>]> = [
    [
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:samalba/my-app:pull,push"',
      [
        {
          scheme: 'bearer',
          params: {
            realm: 'https://auth.docker.io/token',
            service: 'registry.docker.io',
            scope: 'repository:samalba/my-app:pull,push',
          },
        },
      ],
    ],
    ['Basic realm="Registry Realm"', [{ scheme: 'basic', params: { realm: 'Registry Realm' } }]],
    [
      'Basic realm="a", Bearer realm="https://t/token", service=reg , error="insufficient_scope"',
      [
        { scheme: 'basic', params: { realm: 'a' } },
        {
          scheme: 'bearer',
          params: { realm: 'https://t/token', service: 'reg', error: 'insufficient_scope' },
        },
      ],
    ],
    ['BEARER Realm="x\\"y\\\\z"', [{ scheme: 'bearer', params: { realm: 'x"y\\z' } }]],
    [
      'Negotiate abc123==, Basic realm=r',
      [
        { scheme: 'negotiate', params: { token68: 'abc123==' } },
        { scheme: 'basic', params: { realm: 'r' } },
      ],
    ],
    ['Basic', [{ scheme: 'basic', params: {} }]],
    ['', []],
  ];
  for (const [header, expected] of cases) {
    test(`parses ${JSON.stringify(header.slice(0, 50))}`, () => {
      assert.deepEqual(parseWwwAuthenticate(header), expected);
    });
  }
});

interface TokenRequest {
  readonly method: string;
  readonly url: URL;
  readonly authorization: string | undefined;
  readonly body: string;
}

describe('RegistryAuth', () => {
  let server: Server;
  let realm: string;
  const requests: TokenRequest[] = [];
  let answer: (req: TokenRequest) => { status: number; body: unknown } = () => ({ status: 200, body: {} });
  const agent = new Agent();

  before(async () => {
    server = createServer((req: IncomingMessage, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const entry: TokenRequest = {
          method: req.method ?? '',
          url: new URL(req.url ?? '/', 'http://x'),
          authorization: req.headers.authorization,
          body: Buffer.concat(chunks).toString(),
        };
        requests.push(entry);
        const { status, body } = answer(entry);
        res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    realm = `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`;
  });
  after(async () => {
    await agent.close();
    await new Promise((resolve) => server.close(resolve));
  });

  const creds = (found: FoundCredentials | undefined) => () => Promise.resolve(found);
  const userPass: FoundCredentials = {
    credentials: { username: 'alice', password: 's3cret!' },
    source: 'test',
  };

  test('Bearer: fetches a token with Basic credentials, service and scopes, and caches it until it expires', async () => {
    requests.length = 0;
    let n = 0;
    answer = () => ({ status: 200, body: { token: `tok-${++n}`, expires_in: 300 } });
    let now = 1_000_000;
    const auth = new RegistryAuth({ dispatcher: agent, credentials: creds(userPass), now: () => now });
    const scopes = [repositoryScope('team/app', ['pull', 'push'])];
    assert.equal(await auth.authorization('reg', scopes), undefined, 'nothing known before a challenge');

    const header = await auth.challenge(
      'reg',
      scopes,
      `Bearer realm="${realm}",service="reg.svc",scope="repository:team/app:pull"`,
      undefined,
    );
    assert.equal(header, 'Bearer tok-1');
    assert.equal(requests.length, 1);
    const first = requests[0]!;
    assert.equal(first.method, 'GET');
    assert.equal(first.url.searchParams.get('service'), 'reg.svc');
    assert.deepEqual(first.url.searchParams.getAll('scope'), [
      'repository:team/app:pull,push',
      'repository:team/app:pull',
    ]);
    assert.equal(first.authorization, `Basic ${b64('alice:s3cret!')}`);

    assert.equal(await auth.authorization('reg', scopes), 'Bearer tok-1', 'cached');
    assert.equal(requests.length, 1);
    // Another scope on the same registry: fetched up front from the known realm.
    assert.equal(await auth.authorization('reg', [repositoryScope('other', ['pull'])]), 'Bearer tok-2');
    assert.equal(requests.length, 2);

    now += 300_000;
    assert.equal(await auth.authorization('reg', scopes), 'Bearer tok-3', 'renewed after expiry');
    assert.equal(requests.length, 3);
  });

  test('Bearer: anonymous without credentials, access_token accepted, concurrent fetches shared', async () => {
    requests.length = 0;
    answer = () => ({ status: 200, body: { access_token: 'anon' } });
    const auth = new RegistryAuth({ dispatcher: agent, credentials: creds(undefined) });
    await auth.challenge('reg', ['repository:a:pull'], `Bearer realm="${realm}"`, undefined);
    assert.equal(requests[0]?.authorization, undefined);
    requests.length = 0;
    const scopes = ['repository:b:pull'];
    const [x, y] = await Promise.all([auth.authorization('reg', scopes), auth.authorization('reg', scopes)]);
    assert.equal(x, 'Bearer anon');
    assert.equal(y, 'Bearer anon');
    assert.equal(requests.length, 1);
  });

  test('Bearer: an identity token is exchanged with a refresh_token grant', async () => {
    requests.length = 0;
    answer = (req) => ({ status: req.method === 'POST' ? 200 : 500, body: { access_token: 'from-refresh' } });
    const auth = new RegistryAuth({
      dispatcher: agent,
      credentials: creds({ credentials: { identityToken: 'refresh-xyz' }, source: 'test' }),
    });
    assert.equal(
      await auth.challenge('reg', ['repository:a:pull'], `Bearer realm="${realm}",service=s`, undefined),
      'Bearer from-refresh',
    );
    const form = new URLSearchParams(requests[0]?.body);
    assert.equal(form.get('grant_type'), 'refresh_token');
    assert.equal(form.get('refresh_token'), 'refresh-xyz');
    assert.equal(form.get('service'), 's');
    assert.equal(form.get('scope'), 'repository:a:pull');
  });

  test('Bearer: a refused password is an UnauthorizedError that does not contain it', async () => {
    answer = () => ({ status: 401, body: { details: 'bad' } });
    const auth = new RegistryAuth({ dispatcher: agent, credentials: creds(userPass) });
    await assert.rejects(
      auth.challenge('reg', ['repository:a:pull'], `Bearer realm="${realm}"`, undefined),
      (error: unknown) => {
        assert.ok(error instanceof UnauthorizedError);
        assert.match(error.message, /rejected the credentials from test/);
        assert.ok(!error.message.includes('s3cret'));
        assert.ok(!error.message.includes('alice'));
        return true;
      },
    );
  });

  test('Bearer: credentials are not sent to a plain-http realm off this machine', async () => {
    requests.length = 0;
    const auth = new RegistryAuth({ dispatcher: agent, credentials: creds(userPass) });
    await assert.rejects(
      auth.challenge('reg', [], 'Bearer realm="http://auth.example.invalid/token"', undefined),
      /refusing to send them/,
    );
    assert.equal(requests.length, 0);
  });

  test('Basic: answers with the credentials, then refuses when the same ones were rejected', async () => {
    const auth = new RegistryAuth({ dispatcher: agent, credentials: creds(userPass) });
    const header = await auth.challenge('reg', [], 'Basic realm="Registry"', undefined);
    assert.equal(header, `Basic ${b64('alice:s3cret!')}`);
    assert.equal(await auth.authorization('reg', ['repository:x:pull']), header, 'sent up front afterwards');
    await assert.rejects(auth.challenge('reg', [], 'Basic realm="Registry"', header), (error: unknown) => {
      assert.ok(error instanceof UnauthorizedError);
      assert.match(error.message, /rejected the credentials from test/);
      assert.ok(!error.message.includes('s3cret'));
      return true;
    });
    const anonymous = new RegistryAuth({ dispatcher: agent, credentials: creds(undefined) });
    await assert.rejects(anonymous.challenge('reg', [], 'Basic realm="R"', undefined), /none were found/);
    await assert.rejects(
      anonymous.challenge('reg', [], undefined, undefined),
      /sent no Bearer or Basic challenge/,
    );
  });
});
