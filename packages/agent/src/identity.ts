/**
 * The site's identity: enrollment at the core (an enrollment token exchanged for the site token)
 * and `<data>/identity.json` (mode 0600) holding the core URL, the site name, the site token and
 * the CA to trust. The token is never logged nor printed.
 */
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import {
  InputError,
  LabelsSchema,
  NAME_PATTERN,
  SiteKinds,
  UnavailableError,
  UnauthorizedError,
  describeValue,
  validateWith,
  type EnrollRequest,
} from '@aiedge/protocol';
import { CoreClient, checkCoreUrl, errorMessageOf } from './_core-client.js';
import { readJsonFile, writeJsonFile } from './state-file.js';

/** Data directory used when neither `--data` nor `AIEDGE_AGENT_DATA` says otherwise. */
export const DEFAULT_AGENT_DATA_DIR = '.aiedge/agent';
/** File name of the identity in the data directory. */
export const IDENTITY_FILE = 'identity.json';

/** Version the agent reports to the core. */
export const AGENT_VERSION = '0.1.0';

/** The site's identity. */
export interface SiteIdentity {
  readonly core: string;
  readonly site: string;
  readonly token: string;
  readonly ca?: string;
}

/** The data directory: the flag, else `AIEDGE_AGENT_DATA`, else {@link DEFAULT_AGENT_DATA_DIR}; absolute. */
export function agentDataDir(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const dir = flag ?? env['AIEDGE_AGENT_DATA'] ?? DEFAULT_AGENT_DATA_DIR;
  if (dir === '') throw new InputError('--data (or AIEDGE_AGENT_DATA) must not be empty');
  return resolve(dir);
}

/** Parses `k=v` label flags; InputError naming `what` and the bad entry. */
export function parseLabels(entries: readonly string[], what = '--label'): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const entry of entries) {
    const at = entry.indexOf('=');
    if (at <= 0) throw new InputError(`${what} ${describeValue(entry)}: expected key=value`);
    const key = entry.slice(0, at);
    if (key in labels) throw new InputError(`${what} ${describeValue(key)} is given twice`);
    labels[key] = entry.slice(at + 1);
  }
  validateWith(LabelsSchema, labels, what);
  return labels;
}

/** Options of {@link enrollSite}. */
export interface EnrollOptions {
  /** Base URL of the core. */
  readonly core: string;
  /** The one-time enrollment token (never logged). */
  readonly enrollmentToken: string;
  readonly site: string;
  readonly labels?: Record<string, string>;
  readonly kind?: (typeof SiteKinds)[number];
  /** Where the identity is written. */
  readonly dataDir: string;
  /** PEM CA certificate(s) to trust for the core. */
  readonly ca?: string;
  readonly agentVersion?: string;
  readonly signal?: AbortSignal;
}

/** Enrolls the site at the core and writes `<dataDir>/identity.json` (0600); returns the identity. */
export async function enrollSite(options: EnrollOptions): Promise<SiteIdentity> {
  const core = checkCoreUrl(options.core, '--core');
  if (options.enrollmentToken === '') throw new InputError('--token must not be empty');
  const body: EnrollRequest = {
    name: options.site,
    labels: options.labels ?? {},
    ...(options.kind !== undefined ? { kind: options.kind } : {}),
    agentVersion: options.agentVersion ?? AGENT_VERSION,
  };
  if (!new RegExp(NAME_PATTERN).test(options.site) || options.site.length > 63) {
    throw new InputError(`--site ${describeValue(options.site)} must be a DNS-1123 label (a-z, 0-9, -)`);
  }
  if (options.kind !== undefined && !SiteKinds.includes(options.kind)) {
    throw new InputError(`--kind ${describeValue(options.kind)} must be one of ${SiteKinds.join(', ')}`);
  }
  const token = options.enrollmentToken;
  const client = new CoreClient({
    url: core,
    token: () => token,
    ...(options.ca !== undefined ? { ca: options.ca } : {}),
  });
  let response;
  try {
    response = await client.request('POST', '/api/v1/sites/enroll', {
      body,
      ...(options.signal !== undefined ? { signal: options.signal } : {}),
    });
  } catch (error) {
    throw new UnavailableError(`core at ${core} is unreachable: ${(error as Error).message}`, {
      cause: error,
    });
  } finally {
    client.close();
  }
  if (response.status === 401) throw new UnauthorizedError(`enrollment refused: ${errorMessageOf(response)}`);
  if (response.status >= 500) throw new UnavailableError(`enrollment failed: ${errorMessageOf(response)}`);
  if (response.status !== 201 && response.status !== 200) {
    throw new InputError(`enrollment of site ${options.site} refused: ${errorMessageOf(response)}`);
  }
  const answer = JSON.parse(response.body) as { token?: unknown };
  if (typeof answer.token !== 'string' || answer.token === '') {
    throw new UnavailableError('enrollment answer carries no site token');
  }
  const identity: SiteIdentity = {
    core,
    site: options.site,
    token: answer.token,
    ...(options.ca !== undefined ? { ca: options.ca } : {}),
  };
  await writeJsonFile(join(options.dataDir, IDENTITY_FILE), identity, { mode: 0o600 });
  return identity;
}

/** Reads `<dataDir>/identity.json`; InputError when the site is not enrolled or the file is invalid. */
export async function loadIdentity(dataDir: string): Promise<SiteIdentity> {
  const path = join(dataDir, IDENTITY_FILE);
  const value = await readJsonFile(path);
  if (value === undefined) {
    throw new InputError(
      `${path} does not exist: enroll first (aiedge agent enroll --core URL --token T --site NAME)`,
    );
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InputError(`${path} is ${describeValue(value)}: must be an object`);
  }
  const v = value as Record<string, unknown>;
  for (const key of Object.keys(v)) {
    if (!['core', 'site', 'token', 'ca'].includes(key)) throw new InputError(`${path}: unknown key '${key}'`);
  }
  for (const key of ['core', 'site', 'token'] as const) {
    if (typeof v[key] !== 'string' || v[key] === '') {
      throw new InputError(`${path} ${key} must be a non-empty string`);
    }
  }
  if (v['ca'] !== undefined && typeof v['ca'] !== 'string')
    throw new InputError(`${path} ca must be a string`);
  const site = v['site'] as string;
  if (!new RegExp(NAME_PATTERN).test(site)) {
    throw new InputError(`${path} site ${describeValue(site)} must be a DNS-1123 label`);
  }
  return {
    core: checkCoreUrl(v['core'] as string, `${path} core`),
    site,
    token: v['token'] as string,
    ...(typeof v['ca'] === 'string' ? { ca: v['ca'] } : {}),
  };
}

/** Reads a PEM CA file given by `flag` (e.g. `--ca`). */
export async function readCaFile(path: string, flag = '--ca'): Promise<string> {
  try {
    const pem = await readFile(path, 'utf8');
    if (!pem.includes('-----BEGIN CERTIFICATE-----')) {
      throw new InputError(`${flag} ${path}: not a PEM certificate`);
    }
    return pem;
  } catch (error) {
    if (error instanceof InputError) throw error;
    throw new InputError(`${flag} ${path}: ${(error as Error).message}`, { cause: error });
  }
}
