// Test helper (left out of the build): a real core on 127.0.0.1, a free port and a temp data dir.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '@aiedge/telemetry';
import { createToken } from './auth.js';
import { resolveCoreConfig, type CoreConfigInput } from './config.js';
import type { PipelineExecutor } from './runs/routes.js';
import { startCore, type RunningCore } from './server.js';

/** A core started for a test. */
export interface TestCore {
  readonly url: string;
  /** An admin token. */
  readonly adminToken: string;
  readonly core: RunningCore;
  /** The data directory (removed by close unless `keepData`). */
  readonly data: string;
  /** Creates an enrollment token and enrolls `name`; returns the site token. */
  enrollSite(name: string, labels?: Record<string, string>): Promise<{ token: string }>;
  /** `fetch` against the core with the admin token (or `token`) as bearer. */
  api(path: string, init?: RequestInit & { token?: string | null; json?: unknown }): Promise<Response>;
  close(): Promise<void>;
}

/** Options of {@link startTestCore}. */
export interface TestCoreOptions {
  readonly pipelineExecutor?: PipelineExecutor;
  /** Extra config values (data, host, port and logLevel are set by the helper unless given). */
  readonly config?: CoreConfigInput;
  /** Reuse this data directory (and leave it on close). */
  readonly data?: string;
  readonly now?: () => Date;
}

/** Starts a core for a test; `close()` stops it and removes its data directory. */
export async function startTestCore(options: TestCoreOptions = {}): Promise<TestCore> {
  const data = options.data ?? (await mkdtemp(join(tmpdir(), 'aiedge-core-')));
  const config = resolveCoreConfig({
    values: { host: '127.0.0.1', port: 0, logLevel: 'silent', ...options.config, data },
  });
  const core = await startCore({
    config,
    logger: silentLogger,
    ...(options.pipelineExecutor !== undefined ? { pipelineExecutor: options.pipelineExecutor } : {}),
    ...(options.now !== undefined ? { now: options.now } : {}),
  });
  const admin = await createToken(core.context.store.db, { kind: 'admin', description: 'test' });
  const api: TestCore['api'] = (path, init = {}) => {
    const { token, json, ...rest } = init;
    const headers = new Headers(rest.headers);
    const bearer = token === undefined ? admin.token : token;
    if (bearer !== null) headers.set('authorization', `Bearer ${bearer}`);
    if (json !== undefined) headers.set('content-type', 'application/json');
    return fetch(`${core.url}${path}`, {
      ...rest,
      headers,
      ...(json !== undefined ? { body: JSON.stringify(json) } : {}),
    });
  };
  return {
    url: core.url,
    adminToken: admin.token,
    core,
    data,
    api,
    enrollSite: async (name, labels = {}) => {
      const enrollment = await createToken(core.context.store.db, { kind: 'enrollment', ttlSeconds: 600 });
      const response = await api('/api/v1/sites/enroll', {
        method: 'POST',
        token: enrollment.token,
        json: { name, labels, kind: 'device', agentVersion: 'test' },
      });
      if (response.status !== 201)
        throw new Error(`enroll ${name}: ${response.status} ${await response.text()}`);
      const body = (await response.json()) as { token: string };
      return { token: body.token };
    },
    close: async () => {
      await core.close();
      if (options.data === undefined) await rm(data, { recursive: true, force: true });
    },
  };
}
