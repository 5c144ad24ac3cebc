// kill -9 during writes leaves a consistent store, and nothing that was acknowledged is lost.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { sql } from 'kysely';
import type { DesiredState, Site } from '@aiedge/protocol';
import { createToken } from './auth.js';
import { resolveCoreConfig } from './config.js';
import { openCoreStore } from './server.js';

const main = new URL('./_test-core-main.ts', import.meta.url).pathname;
const digest = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}`;
const STATES = ['Pulling', 'Starting', 'Serving'] as const;

function startChild(
  data: string,
): Promise<{ child: ChildProcess; url: string; exited: Promise<number | null> }> {
  const child = spawn(process.execPath, ['--conditions=@aiedge/source', '--import', 'tsx', main, data], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening (\S+)/.exec(out);
      if (m) resolve({ child, url: m[1]!, exited });
    });
    void exited.then((code) => reject(new Error(`core exited (${code}) before listening: ${stderr}`)));
  });
}

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

test('kill -9 during writes: consistent store, no acknowledged write lost, clean restart', async () => {
  const data = await mkdtemp(join(tmpdir(), 'aiedge-durability-'));
  dirs.push(data);
  const config = resolveCoreConfig({ values: { data, logLevel: 'silent' } });
  let store = await openCoreStore(config);
  const admin = await createToken(store.db, { kind: 'admin' });
  const enrollment: string[] = [];
  for (let i = 0; i < 120; i++) enrollment.push((await createToken(store.db, { kind: 'enrollment' })).token);
  await store.close();

  const ackedSites = new Map<string, string>(); // site → site token
  const ackedStatus = new Map<string, number>(); // site → highest acknowledged counter
  const ackedDeployments = new Set<string>();
  let counter = 0;
  let next = 0;

  for (let round = 0; round < 3; round++) {
    const { child, url } = await startChild(data);
    const call = (path: string, token: string, method: string, body?: unknown) =>
      fetch(`${url}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
    let stop = false;
    const worker = async (w: number) => {
      while (!stop) {
        try {
          const sites = [...ackedSites.keys()];
          const roll = (counter + w) % 5;
          if (roll === 0 && next < enrollment.length) {
            const name = `site-${next}`;
            const token = enrollment[next++]!;
            const r = await call('/api/v1/sites/enroll', token, 'POST', {
              name,
              labels: { ring: String(next % 3) },
            });
            if (r.status === 201) ackedSites.set(name, ((await r.json()) as { token: string }).token);
          } else if (roll === 1 && w === 0) {
            const name = `model-${counter % 7}`;
            const r = await call('/api/v1/deployments', admin.token, 'POST', {
              name,
              image: `reg/m@${digest(counter)}`,
              model: { name, version: String(counter) },
              selector: { ring: String(counter % 3) },
            });
            if (r.status === 200 || r.status === 201) ackedDeployments.add(name);
          } else if (sites.some((_, k) => k % 8 === w)) {
            // Like a real agent, each site pushes one status at a time: a worker owns its sites.
            const own = sites.filter((_, k) => k % 8 === w);
            const site = own[counter % own.length]!;
            const n = ++counter;
            const r = await call(`/api/v1/sites/${site}/status`, ackedSites.get(site)!, 'PUT', {
              agentVersion: `v${n}`,
              appliedRevision: `r${n}`,
              deployments: [
                {
                  deployment: 'clf',
                  model: 'clf',
                  version: String(n),
                  imageDigest: digest(n),
                  state: STATES[n % 3],
                  since: new Date().toISOString(),
                },
              ],
            });
            if (r.status === 200) ackedStatus.set(site, Math.max(ackedStatus.get(site) ?? 0, n));
          } else counter++;
        } catch {
          // the core was killed mid-request: this write was not acknowledged
          return;
        }
      }
    };
    const workers = Array.from({ length: 8 }, (_, w) => worker(w));
    await new Promise((r) => setTimeout(r, 600 + round * 400));
    child.kill('SIGKILL');
    stop = true;
    await Promise.all(workers);

    store = await openCoreStore(config);
    try {
      const integrity = await sql<{ integrity_check: string }>`pragma integrity_check`.execute(store.db);
      assert.equal(integrity.rows[0]?.integrity_check, 'ok');
      const sites = await store.db.selectFrom('sites').selectAll().execute();
      const tokens = await store.db.selectFrom('tokens').selectAll().execute();
      for (const name of ackedSites.keys())
        assert.ok(
          sites.some((s) => s.name === name),
          `acknowledged site ${name} lost`,
        );
      // Enrollment is one transaction: every site has exactly one site token and consumed one enrollment token.
      for (const s of sites) {
        assert.equal(
          tokens.filter((t) => t.kind === 'site' && t.site === s.name).length,
          1,
          `site ${s.name} tokens`,
        );
      }
      assert.equal(tokens.filter((t) => t.kind === 'enrollment' && t.used_at !== null).length, sites.length);
      for (const [site, n] of ackedStatus) {
        const row = sites.find((s) => s.name === site)!;
        assert.ok(
          Number(row.agent_version.slice(1)) >= n,
          `site ${site}: status v${n} acknowledged, store has ${row.agent_version}`,
        );
      }
      // Status and its history are one transaction: the newest event matches the stored state.
      for (const s of sites.filter((x) => x.status !== null)) {
        const status = JSON.parse(s.status!) as { deployments: { state: string; version: string }[] };
        const last = await store.db
          .selectFrom('site_events')
          .select('detail')
          .where('site', '=', s.name)
          .where('type', '=', 'deployment.state')
          .orderBy('id', 'desc')
          .limit(1)
          .executeTakeFirst();
        assert.ok(last !== undefined, `site ${s.name} has status but no history`);
        const detail = JSON.parse(last.detail) as { to: string; version: string };
        assert.equal(detail.to, status.deployments[0]!.state);
        assert.equal(detail.version, status.deployments[0]!.version);
      }
      const deployments = await store.db.selectFrom('deployments').select('name').execute();
      for (const d of ackedDeployments)
        assert.ok(
          deployments.some((x) => x.name === d),
          `deployment ${d} lost`,
        );
    } finally {
      await store.close();
    }
  }
  assert.ok(ackedSites.size > 5 && ackedStatus.size > 0, `too little load: ${ackedSites.size} sites`);

  // A restart publishes whatever the crash left unpublished, and serves every site's desired state.
  const { child, url, exited } = await startChild(data);
  const admin200 = async <T>(path: string): Promise<T> => {
    const r = await fetch(`${url}${path}`, { headers: { authorization: `Bearer ${admin.token}` } });
    assert.equal(r.status, 200, await r.clone().text());
    return (await r.json()) as T;
  };
  const listed = await admin200<{ items: Site[] }>('/api/v1/sites?limit=1000');
  assert.equal(listed.items.length >= ackedSites.size, true);
  for (const name of ackedSites.keys()) {
    const desired = await admin200<DesiredState>(`/api/v1/sites/${name}/desired`);
    assert.notEqual(desired.revision, '', `site ${name} has no directory in the GitOps repository`);
  }
  child.kill('SIGTERM');
  assert.equal(await exited, 0, 'core exits 0 on SIGTERM');
});
