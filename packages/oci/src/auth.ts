/**
 * Registry authentication: credentials from the usual files (containers' auth.json, Docker's
 * config.json), `WWW-Authenticate` challenges, and the distribution token flow (Bearer tokens cached
 * per registry and scope). Credentials never appear in errors: messages name the registry and the
 * file the credentials came from, never the user name, password or token.
 */
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { request, type Dispatcher } from 'undici';
import {
  AiEdgeError,
  ForbiddenError,
  InputError,
  UnauthorizedError,
  UnavailableError,
} from '@aiedge/protocol';

/** Credentials for one registry: a user name and password, or an OAuth2 identity (refresh) token. */
export interface RegistryCredentials {
  readonly username?: string;
  readonly password?: string;
  /** Docker's `identitytoken`: exchanged for access tokens with an OAuth2 refresh_token grant. */
  readonly identityToken?: string;
}

/** Credentials and where they were found (`the credentials option` or a file path), for messages. */
export interface FoundCredentials {
  readonly credentials: RegistryCredentials;
  readonly source: string;
}

/** Where {@link findCredentials} looks. */
export interface CredentialLookupOptions {
  /** Used first, for every registry, when given. */
  readonly credentials?: RegistryCredentials;
  /** Environment to read `REGISTRY_AUTH_FILE`, `XDG_RUNTIME_DIR`, `DOCKER_CONFIG`, `HOME` from. Default process.env. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Repository, to match `registry/namespace` keys of containers' auth.json before the registry's own. */
  readonly repository?: string;
}

/** One `WWW-Authenticate` challenge: the scheme (lowercased) and its parameters (names lowercased). */
export interface AuthChallenge {
  readonly scheme: string;
  readonly params: Readonly<Record<string, string>>;
}

/** Actions on a repository a token can grant. */
export type RepositoryAction = 'pull' | 'push' | 'delete';

const DOCKER_HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);

/** The auth files to read, in order of precedence, for an environment. */
export function authFilePaths(env: Readonly<Record<string, string | undefined>> = process.env): string[] {
  const paths: string[] = [];
  const explicit = env['REGISTRY_AUTH_FILE'];
  if (explicit !== undefined && explicit !== '') paths.push(explicit);
  const runtime = env['XDG_RUNTIME_DIR'];
  if (runtime !== undefined && runtime !== '') paths.push(join(runtime, 'containers', 'auth.json'));
  const dockerConfig = env['DOCKER_CONFIG'];
  const home = env['HOME'] ?? (env === process.env ? homedir() : undefined);
  if (dockerConfig !== undefined && dockerConfig !== '') paths.push(join(dockerConfig, 'config.json'));
  else if (home !== undefined && home !== '') paths.push(join(home, '.docker', 'config.json'));
  return paths;
}

/** Normalizes an auth-file key (`https://index.docker.io/v1/`, `ghcr.io/org`) to `host[/path]`. */
function normalizeAuthKey(key: string): string {
  let k = key.trim();
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(k);
  if (scheme !== null) {
    // Docker-style keys with a scheme name a host; their path (`/v1/`) is not a namespace.
    k = k.slice(scheme[0].length);
    const slash = k.indexOf('/');
    if (slash >= 0) k = k.slice(0, slash);
  }
  k = k.replace(/\/+$/, '');
  const slash = k.indexOf('/');
  const host = slash >= 0 ? k.slice(0, slash) : k;
  if (DOCKER_HUB_ALIASES.has(host.toLowerCase())) k = `docker.io${slash >= 0 ? k.slice(slash) : ''}`;
  return k;
}

/** Keys to try for a registry and repository, most specific first. */
function lookupKeys(registry: string, repository: string | undefined): string[] {
  const host = DOCKER_HUB_ALIASES.has(registry.toLowerCase()) ? 'docker.io' : registry;
  const keys: string[] = [];
  if (repository !== undefined) {
    const parts = repository.split('/');
    for (let n = parts.length; n >= 1; n--) keys.push(`${host}/${parts.slice(0, n).join('/')}`);
  }
  keys.push(host);
  return keys;
}

interface AuthFileEntry {
  auth?: unknown;
  username?: unknown;
  password?: unknown;
  identitytoken?: unknown;
}

/** Reads one auth file's entry for a registry; undefined when the file or the entry is absent. */
async function readAuthFile(
  path: string,
  registry: string,
  repository: string | undefined,
): Promise<RegistryCredentials | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw new InputError(`cannot read auth file ${path}: ${code ?? 'error'}`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    // The parser's message quotes the file's text, which holds secrets: never pass it on.
    throw new InputError(`auth file ${path} is not valid JSON`);
  }
  const auths = (doc as { auths?: unknown } | null)?.auths;
  if (typeof auths !== 'object' || auths === null) return undefined;
  const byKey = new Map<string, { key: string; entry: AuthFileEntry }>();
  for (const [key, entry] of Object.entries(auths as Record<string, unknown>)) {
    if (typeof entry !== 'object' || entry === null) continue;
    const normalized = normalizeAuthKey(key);
    if (!byKey.has(normalized)) byKey.set(normalized, { key, entry: entry as AuthFileEntry });
  }
  for (const candidate of lookupKeys(registry, repository)) {
    const found = byKey.get(candidate);
    if (found === undefined) continue;
    const credentials = entryCredentials(found.entry, `auths[${JSON.stringify(found.key)}] in ${path}`);
    if (credentials !== undefined) return credentials;
  }
  return undefined;
}

function entryCredentials(entry: AuthFileEntry, where: string): RegistryCredentials | undefined {
  let username: string | undefined;
  let password: string | undefined;
  if (typeof entry.auth === 'string' && entry.auth !== '') {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) throw new InputError(`${where}: "auth" is not base64 of user:password`);
    username = decoded.slice(0, colon);
    password = decoded.slice(colon + 1);
  } else if (typeof entry.username === 'string' && typeof entry.password === 'string') {
    username = entry.username;
    password = entry.password;
  }
  const identityToken =
    typeof entry.identitytoken === 'string' && entry.identitytoken !== '' ? entry.identitytoken : undefined;
  if (identityToken !== undefined) {
    return { identityToken, ...(username !== undefined && username !== '' ? { username } : {}) };
  }
  if (username === undefined || password === undefined) return undefined;
  return { username, password };
}

/**
 * Credentials for a registry, from the first source that has them: the explicit option,
 * `REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`, `$DOCKER_CONFIG/config.json` or
 * `~/.docker/config.json`; undefined when none has an entry. Credential helpers are not run.
 */
export async function findCredentials(
  registry: string,
  options: CredentialLookupOptions = {},
): Promise<FoundCredentials | undefined> {
  if (options.credentials !== undefined) {
    return { credentials: options.credentials, source: 'the credentials option' };
  }
  for (const path of authFilePaths(options.env ?? process.env)) {
    const credentials = await readAuthFile(path, registry, options.repository);
    if (credentials !== undefined) return { credentials, source: path };
  }
  return undefined;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+/;

/**
 * Parses a `WWW-Authenticate` header into its challenges (RFC 9110 §11.6.1): quoted values may hold
 * commas (`scope="repository:a:pull,push"`); several challenges may share one header.
 */
export function parseWwwAuthenticate(header: string): AuthChallenge[] {
  const challenges: AuthChallenge[] = [];
  let pos = 0;
  const skipSpace = (): void => {
    while (pos < header.length && (header[pos] === ' ' || header[pos] === '\t')) pos++;
  };
  const readToken = (): string | undefined => {
    const m = TOKEN.exec(header.slice(pos));
    if (m === null) return undefined;
    pos += m[0].length;
    return m[0];
  };
  const readQuoted = (): string => {
    pos++; // opening quote
    let value = '';
    while (pos < header.length && header[pos] !== '"') {
      if (header[pos] === '\\' && pos + 1 < header.length) pos++;
      value += header[pos];
      pos++;
    }
    pos++; // closing quote (or end)
    return value;
  };

  while (pos < header.length) {
    while (pos < header.length && /[\s,]/.test(header[pos] ?? '')) pos++;
    const scheme = readToken();
    if (scheme === undefined) {
      pos++;
      continue;
    }
    const params: Record<string, string> = {};
    skipSpace();
    // `Negotiate abc==`: a token68 instead of parameters.
    const token68 = /^([A-Za-z0-9._~+/-]+=*)[ \t]*(?:,|$)/.exec(header.slice(pos));
    if (token68?.[1] !== undefined) {
      params['token68'] = token68[1];
      pos += token68[1].length;
    }
    while (params['token68'] === undefined) {
      while (pos < header.length && /[\s,]/.test(header[pos] ?? '')) pos++;
      const start = pos;
      const name = readToken();
      if (name === undefined) break;
      skipSpace();
      if (header[pos] !== '=') {
        // The next challenge's scheme.
        pos = start;
        break;
      }
      pos++;
      skipSpace();
      params[name.toLowerCase()] = header[pos] === '"' ? readQuoted() : (readToken() ?? '');
    }
    challenges.push({ scheme: scheme.toLowerCase(), params });
  }
  return challenges;
}

/** The scope string for repository actions: `repository:team/app:pull,push`. */
export function repositoryScope(repository: string, actions: readonly RepositoryAction[]): string {
  return `repository:${repository}:${[...new Set(actions)].join(',')}`;
}

/** Where the registry auth gets credentials for a registry (cached per registry by the caller). */
export type CredentialProvider = (registry: string) => Promise<FoundCredentials | undefined>;

/** Options of {@link RegistryAuth}. */
export interface RegistryAuthOptions {
  /** Dispatcher for token requests (the client's, so a custom CA applies). */
  readonly dispatcher: Dispatcher;
  /** Credentials for a registry, or undefined for anonymous access. */
  readonly credentials: CredentialProvider;
  /** Sent with token requests. */
  readonly userAgent?: string;
  /** Whether credentials may go to this plain-http token realm (default: loopback hosts only). */
  readonly allowPlainHttp?: (url: URL) => boolean;
  /** Clock for token expiry, ms since the epoch. Default Date.now. */
  readonly now?: () => number;
}

interface CachedToken {
  readonly header: string;
  readonly expiresAtMs: number;
}

/** Token lifetime when the token service does not say (distribution's spec: 60 s). */
const DEFAULT_TOKEN_LIFETIME_S = 60;
const MAX_TOKEN_RESPONSE_BYTES = 1024 * 1024;

function basicHeader(credentials: RegistryCredentials): string | undefined {
  if (credentials.username === undefined || credentials.password === undefined) return undefined;
  return `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`, 'utf8').toString('base64')}`;
}

/** True for hosts on this machine (`localhost`, `127.0.0.0/8`, `::1`). */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h);
}

async function readLimited(body: Dispatcher.ResponseData['body'], limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    const buf = chunk as Buffer;
    size += buf.length;
    if (size > limit) {
      body.destroy();
      throw new UnavailableError(`response larger than ${limit} bytes`);
    }
    chunks.push(buf);
  }
  return Buffer.concat(chunks);
}

/**
 * Answers registry challenges: remembers each registry's scheme (Basic or a Bearer realm), fetches
 * Bearer tokens for (registry, scopes) and caches them until shortly before they expire, so later
 * requests carry a valid `Authorization` up front (streamed bodies are then rarely sent twice).
 */
export class RegistryAuth {
  readonly #options: RegistryAuthOptions;
  readonly #now: () => number;
  readonly #challenges = new Map<string, AuthChallenge>();
  readonly #tokens = new Map<string, CachedToken>();
  readonly #inflight = new Map<string, Promise<CachedToken>>();

  constructor(options: RegistryAuthOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  /** The `Authorization` to send up front, from what earlier challenges taught; undefined when none is known. */
  async authorization(
    registry: string,
    scopes: readonly string[],
    signal?: AbortSignal,
  ): Promise<string | undefined> {
    const challenge = this.#challenges.get(registry);
    if (challenge === undefined) return undefined;
    if (challenge.scheme === 'basic') {
      const found = await this.#options.credentials(registry);
      return found === undefined ? undefined : basicHeader(found.credentials);
    }
    const key = this.#key(registry, scopes);
    const cached = this.#tokens.get(key);
    if (cached !== undefined && cached.expiresAtMs > this.#now()) return cached.header;
    return (await this.#fetchToken(registry, challenge, scopes, signal)).header;
  }

  /**
   * Answers a 401: parses `wwwAuthenticate`, fetches a fresh token (Bearer) or picks the
   * credentials (Basic) and returns the `Authorization` to retry with. Throws UnauthorizedError when
   * a retry cannot help (no usable challenge, no credentials for Basic, the same credentials refused).
   */
  async challenge(
    registry: string,
    scopes: readonly string[],
    wwwAuthenticate: string | undefined,
    sent: string | undefined,
    signal?: AbortSignal,
  ): Promise<string> {
    const challenges = parseWwwAuthenticate(wwwAuthenticate ?? '');
    const challenge =
      challenges.find((c) => c.scheme === 'bearer' && c.params['realm'] !== undefined) ??
      challenges.find((c) => c.scheme === 'basic');
    if (challenge === undefined) {
      throw new UnauthorizedError(
        `registry ${registry} requires authentication but sent no Bearer or Basic challenge`,
      );
    }
    this.#challenges.set(registry, challenge);
    if (challenge.scheme === 'basic') {
      const found = await this.#options.credentials(registry);
      const header = found === undefined ? undefined : basicHeader(found.credentials);
      if (found === undefined || header === undefined) {
        throw new UnauthorizedError(
          `registry ${registry} requires a user name and password and none were found ` +
            `(credentials option, REGISTRY_AUTH_FILE, containers auth.json, Docker config.json)`,
        );
      }
      if (sent === header) {
        throw new UnauthorizedError(`registry ${registry} rejected the credentials from ${found.source}`);
      }
      return header;
    }
    const extra = challenge.params['scope'];
    const all = extra === undefined ? scopes : [...scopes, ...extra.split(' ').filter((s) => s !== '')];
    // Requests sent in parallel before the first token arrived all come back 401: the ones that
    // did not carry the current token reuse it (or the fetch in flight) instead of fetching again.
    const current =
      this.#tokens.get(this.#key(registry, all)) ?? this.#tokens.get(this.#key(registry, scopes));
    if (current !== undefined && current.header !== sent && current.expiresAtMs > this.#now())
      return current.header;
    const inflight = this.#inflight.get(this.#key(registry, all));
    if (inflight !== undefined) return (await inflight).header;
    this.#tokens.delete(this.#key(registry, scopes));
    this.#tokens.delete(this.#key(registry, all));
    const token = await this.#fetchToken(registry, challenge, all, signal);
    // Later requests with the caller's scopes reuse this token too.
    this.#tokens.set(this.#key(registry, scopes), token);
    return token.header;
  }

  /** Forgets every cached token and challenge (after credentials change). */
  clear(): void {
    this.#tokens.clear();
    this.#challenges.clear();
  }

  #key(registry: string, scopes: readonly string[]): string {
    return `${registry} ${[...new Set(scopes)].sort().join(' ')}`;
  }

  #fetchToken(
    registry: string,
    challenge: AuthChallenge,
    scopes: readonly string[],
    signal: AbortSignal | undefined,
  ): Promise<CachedToken> {
    const key = this.#key(registry, scopes);
    let pending = this.#inflight.get(key);
    if (pending === undefined) {
      pending = this.#requestToken(registry, challenge, scopes, signal).then((token) => {
        this.#tokens.set(key, token);
        return token;
      });
      const cleanup = (): void => {
        this.#inflight.delete(key);
      };
      pending.then(cleanup, cleanup);
      this.#inflight.set(key, pending);
    }
    return pending;
  }

  async #requestToken(
    registry: string,
    challenge: AuthChallenge,
    scopes: readonly string[],
    signal: AbortSignal | undefined,
  ): Promise<CachedToken> {
    const realmText = challenge.params['realm'] ?? '';
    let realm: URL;
    try {
      realm = new URL(realmText);
    } catch {
      throw new UnauthorizedError(`registry ${registry} sent a Bearer challenge with an invalid realm URL`);
    }
    if (realm.protocol !== 'https:' && realm.protocol !== 'http:') {
      throw new UnauthorizedError(`registry ${registry} sent a token realm that is not http(s)`);
    }
    const where = `${realm.origin}${realm.pathname}`;
    const found = await this.#options.credentials(registry);
    const plainOk = this.#options.allowPlainHttp ?? ((u: URL) => isLoopbackHost(u.hostname));
    if (found !== undefined && realm.protocol === 'http:' && !plainOk(realm)) {
      throw new UnauthorizedError(
        `registry ${registry} asks for credentials at plain-http ${where}; refusing to send them (use insecure for this registry)`,
      );
    }
    const service = challenge.params['service'];
    const started = this.#now();
    const baseHeaders: Record<string, string> = { accept: 'application/json' };
    if (this.#options.userAgent !== undefined) baseHeaders['user-agent'] = this.#options.userAgent;

    let res: Dispatcher.ResponseData | undefined;
    const identityToken = found?.credentials.identityToken;
    try {
      if (identityToken !== undefined) {
        const form = new URLSearchParams({
          grant_type: 'refresh_token',
          refresh_token: identityToken,
          client_id: 'aiedge',
        });
        if (service !== undefined) form.set('service', service);
        if (scopes.length > 0) form.set('scope', scopes.join(' '));
        res = await request(realm, {
          method: 'POST',
          dispatcher: this.#options.dispatcher,
          headers: { ...baseHeaders, 'content-type': 'application/x-www-form-urlencoded' },
          body: form.toString(),
          signal: signal ?? null,
        });
        if (res.statusCode === 404 || res.statusCode === 405) {
          await res.body.dump();
          res = undefined;
        }
      }
      if (res === undefined) {
        const url = new URL(realm);
        if (service !== undefined) url.searchParams.set('service', service);
        for (const scope of scopes) url.searchParams.append('scope', scope);
        const headers = { ...baseHeaders };
        const basic = found === undefined ? undefined : basicHeader(found.credentials);
        if (basic !== undefined) headers['authorization'] = basic;
        res = await request(url, {
          method: 'GET',
          dispatcher: this.#options.dispatcher,
          headers,
          signal: signal ?? null,
        });
      }
    } catch (error) {
      if (error instanceof AiEdgeError) throw error;
      throw new UnavailableError(
        `token service ${where} for registry ${registry} is unreachable: ${(error as Error).message}`,
        {
          cause: error,
        },
      );
    }

    if (res.statusCode === 401 || res.statusCode === 403) {
      await res.body.dump();
      const Err = res.statusCode === 401 ? UnauthorizedError : ForbiddenError;
      throw new Err(
        found === undefined
          ? `token service ${where} for registry ${registry} refused anonymous access (HTTP ${res.statusCode}); no credentials were found`
          : `token service ${where} for registry ${registry} rejected the credentials from ${found.source} (HTTP ${res.statusCode})`,
      );
    }
    if (res.statusCode !== 200) {
      await res.body.dump();
      throw new UnavailableError(
        `token service ${where} for registry ${registry} answered HTTP ${res.statusCode}`,
      );
    }
    let doc: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      doc = JSON.parse(
        (await readLimited(res.body, MAX_TOKEN_RESPONSE_BYTES)).toString('utf8'),
      ) as typeof doc;
    } catch {
      throw new UnavailableError(`token service ${where} for registry ${registry} did not answer JSON`);
    }
    const token =
      typeof doc.token === 'string' && doc.token !== ''
        ? doc.token
        : typeof doc.access_token === 'string' && doc.access_token !== ''
          ? doc.access_token
          : undefined;
    if (token === undefined) {
      throw new UnavailableError(`token service ${where} for registry ${registry} answered without a token`);
    }
    const lifetimeS =
      typeof doc.expires_in === 'number' && doc.expires_in > 0 ? doc.expires_in : DEFAULT_TOKEN_LIFETIME_S;
    // Renew a little early so a token does not expire between the check and the request.
    const marginMs = Math.min(lifetimeS * 100, 10_000);
    return { header: `Bearer ${token}`, expiresAtMs: started + lifetimeS * 1000 - marginMs };
  }
}
