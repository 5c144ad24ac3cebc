/**
 * `npm run bench:core`: N simulated sites (default 10,000) against one core on this machine.
 *
 * Each simulated site is what an agent does: enroll through the API, fetch its desired state,
 * then hold a desired-state long-poll (`known=REV&waitSeconds=300`) and push a status heartbeat
 * every 30 s (staggered). Two delivery modes run side by side in the same run:
 *  - long-poll (ours): agents hold requests; a GitOps revision change wakes the affected ones;
 *  - polling (the reference: what Argo CD's and most agents' periodic refresh does): every agent
 *    asks `desired?known=REV` (answered at once, 304 when unchanged) every 30 s, staggered.
 * For each mode: the core's CPU (user+system, from /proc) and RSS during a steady window, then a
 * deployment selecting every site is created (one GitOps commit changing every site's directory)
 * and the time until every one of the N agents has seen the new revision is measured.
 * The core runs in its own process (from the TypeScript sources); the agents run in this process.
 *
 * Usage: npm run bench:core -- [--sites N] [--steady-seconds S] [--poll-seconds P]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Agent, request } from 'undici';
import { createToken, openCoreStore, resolveCoreConfig } from '@aiedge/core';

const { values: args } = parseArgs({
  options: {
    sites: { type: 'string', default: process.env['BENCH_SITES'] ?? '10000' },
    'steady-seconds': { type: 'string', default: process.env['BENCH_STEADY_SECONDS'] ?? '60' },
    'poll-seconds': { type: 'string', default: '30' },
  },
});
const N = Number(args.sites);
const STEADY_S = Number(args['steady-seconds']);
const PERIOD_S = Number(args['poll-seconds']);
const HEARTBEAT_S = 30;
const root = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
const main = join(root, 'packages/core/src/_test-core-main.ts');
const CLK_TCK = 100;

function procStats(pid: number): { cpuSeconds: number; rssBytes: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const cpuSeconds = (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return { cpuSeconds, rssBytes: Number(rss?.[1] ?? 0) * 1024 };
}

async function startCoreProcess(data: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, ['--conditions=@aiedge/source', '--import', 'tsx', main, data], {
    cwd: root,
    env: { ...process.env, AIEDGE_TEST_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolveStart, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening (\S+)/.exec(out);
      if (m) resolveStart({ child, url: m[1]! });
    });
    child.on('exit', (code) => reject(new Error(`core exited ${code}`)));
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mb = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
function percentile(sorted: number[], p: number): number {
  return sorted.length === 0
    ? NaN
    : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function main_(): Promise<void> {
  const data = await mkdtemp(join(tmpdir(), 'aiedge-bench-core-'));
  const config = resolveCoreConfig({ values: { data, logLevel: 'silent' } });
  const store = await openCoreStore(config);
  const admin = await createToken(store.db, { kind: 'admin' });
  const enrollTokens: string[] = [];
  await store.transaction(async (tx) => {
    for (let i = 0; i < N; i++) enrollTokens.push((await createToken(tx, { kind: 'enrollment' })).token);
  });
  await store.close();
  const { child, url } = await startCoreProcess(data);
  const pid = child.pid!;
  // Never leave the core running, whatever happens to the benchmark.
  process.on('exit', () => child.kill('SIGKILL'));
  const agent = new Agent({
    // Heartbeats and setup calls: a bounded pool (requests queue rather than open more sockets).
    connections: 256,
    keepAliveTimeout: 600_000,
    keepAliveMaxTimeout: 600_000,
    headersTimeout: 0,
    bodyTimeout: 0,
  });
  const call = async (method: 'GET' | 'PUT' | 'POST', path: string, token: string, body?: unknown) => {
    const r = await request(`${url}${path}`, {
      method,
      dispatcher: agent,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await r.body.text();
    return { status: r.statusCode, json: () => JSON.parse(text) as Record<string, unknown>, text };
  };
  console.log(`bench:core: ${N} sites, ${cpus().length} CPUs, core pid ${pid} at ${url}`);

  // Enrollment, as agents do it (64 at a time).
  const siteTokens: string[] = new Array<string>(N);
  let t = performance.now();
  let nextIndex = 0;
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      for (let i = nextIndex++; i < N; i = nextIndex++) {
        const r = await call('POST', '/api/v1/sites/enroll', enrollTokens[i]!, {
          name: `site-${i}`,
          labels: { ring: String(i % 4) },
          kind: 'device',
        });
        if (r.status !== 201) throw new Error(`enroll site-${i}: ${r.status} ${r.text}`);
        siteTokens[i] = r.json()['token'] as string;
      }
    }),
  );
  const enrollSeconds = (performance.now() - t) / 1000;
  console.log(`enrolled ${N} sites in ${enrollSeconds.toFixed(1)} s (${(N / enrollSeconds).toFixed(0)}/s)`);

  // Wait until every site has its directory in the GitOps repository.
  t = performance.now();
  const revisions: string[] = new Array<string>(N);
  for (;;) {
    const last = await call('GET', `/api/v1/sites/site-${N - 1}/desired`, siteTokens[N - 1]!);
    if (last.status === 200 && last.json()['revision'] !== '') break;
    await sleep(200);
  }
  nextIndex = 0;
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      for (let i = nextIndex++; i < N; i = nextIndex++) {
        const r = await call('GET', `/api/v1/sites/site-${i}/desired`, siteTokens[i]!);
        revisions[i] = r.json()['revision'] as string;
      }
    }),
  );
  console.log(`GitOps repository settled after ${((performance.now() - t) / 1000).toFixed(1)} s`);

  // Heartbeats: every site every 30 s, staggered.
  const heartbeatLatency: number[] = [];
  let heartbeatErrors = 0;
  let heartbeating = true;
  const heartbeats = (async () => {
    const perTick = N / (HEARTBEAT_S * 10);
    let carry = 0;
    let i = 0;
    while (heartbeating) {
      carry += perTick;
      const batch = Math.floor(carry);
      carry -= batch;
      for (let k = 0; k < batch; k++, i = (i + 1) % N) {
        const site = i;
        const start = performance.now();
        void call('PUT', `/api/v1/sites/site-${site}/status`, siteTokens[site]!, {
          agentVersion: 'bench',
          appliedRevision: revisions[site],
          deployments: [],
        }).then(
          (r) => (r.status === 200 ? heartbeatLatency.push(performance.now() - start) : heartbeatErrors++),
          () => heartbeatErrors++,
        );
      }
      await sleep(100);
    }
  })();

  const idleRssBytes = procStats(pid).rssBytes;
  console.log(`core RSS with ${N} enrolled sites and no agent connected: ${mb(idleRssBytes)}`);
  const results: Record<string, unknown>[] = [];
  let round = 0;
  for (const mode of ['long-poll', 'polling'] as const) {
    round++;
    // Each mode's agents get their own connection pool, destroyed at the end of the mode.
    const pollAgent = new Agent({
      // One connection per agent: a re-poll waits for its own socket instead of opening another.
      connections: N,
      keepAliveTimeout: 600_000,
      keepAliveMaxTimeout: 600_000,
      headersTimeout: 0,
      bodyTimeout: 0,
    });
    let running = true;
    let changedAt = 0;
    const seen: number[] = new Array<number>(N).fill(0);
    let errors = 0;
    const errorKinds = new Map<string, number>();
    const agents = Array.from({ length: N }, async (_, i) => {
      if (mode === 'polling') await sleep((i / N) * PERIOD_S * 1000);
      while (running) {
        try {
          const wait = mode === 'long-poll' ? 300 : 0;
          const r = await request(
            `${url}/api/v1/sites/site-${i}/desired?known=${revisions[i]}&waitSeconds=${wait}`,
            {
              dispatcher: pollAgent,
              headers: { authorization: `Bearer ${siteTokens[i]}` },
            },
          );
          const text = await r.body.text();
          if (r.statusCode === 200) {
            const revision = (JSON.parse(text) as { revision: string }).revision;
            if (changedAt > 0 && seen[i] === 0 && revision !== revisions[i]) seen[i] = performance.now();
            revisions[i] = revision;
          } else if (r.statusCode !== 304) errors++;
        } catch (error) {
          if (!running) return;
          // A real agent retries after a failed request.
          errors++;
          const kind = (error as { code?: string }).code ?? (error as Error).message;
          errorKinds.set(kind, (errorKinds.get(kind) ?? 0) + 1);
          await sleep(1000);
          continue;
        }
        if (mode === 'polling' && running) await sleep(PERIOD_S * 1000);
      }
    });
    await sleep(mode === 'long-poll' ? 5000 : PERIOD_S * 1000); // every agent has made its first request
    const before = procStats(pid);
    let maxRss = before.rssBytes;
    const windowStart = performance.now();
    while (performance.now() - windowStart < STEADY_S * 1000) {
      await sleep(1000);
      maxRss = Math.max(maxRss, procStats(pid).rssBytes);
    }
    const after = procStats(pid);
    const cpuPercent =
      ((after.cpuSeconds - before.cpuSeconds) / ((performance.now() - windowStart) / 1000)) * 100;

    // A GitOps revision change for every site: one deployment selecting all of them.
    changedAt = performance.now();
    const created = await call('POST', '/api/v1/deployments', admin.token, {
      name: 'bench',
      image: `registry.example/bench@sha256:${round.toString(16).padStart(64, '0')}`,
      model: { name: 'bench', version: String(round) },
      selector: {},
    });
    const committedAt = performance.now();
    if (created.status !== 201 && created.status !== 200)
      throw new Error(`deployment: ${created.status} ${created.text}`);
    const deadline = performance.now() + (mode === 'long-poll' ? 120_000 : (PERIOD_S + 60) * 1000);
    while (seen.some((s) => s === 0) && performance.now() < deadline) await sleep(50);
    const done = seen.filter((s) => s > 0);
    const latencies = done.map((s) => s - changedAt).sort((a, b) => a - b);
    const result = {
      mode,
      sites: N,
      steadySeconds: STEADY_S,
      coreCpuPercent: Number(cpuPercent.toFixed(1)),
      coreRssMaxBytes: maxRss,
      coreRssIdleBytes: idleRssBytes,
      perAgentBytes: Math.round((maxRss - idleRssBytes) / N),
      coreRssAfterChangeBytes: procStats(pid).rssBytes,
      publishSeconds: Number(((committedAt - changedAt) / 1000).toFixed(2)),
      answered: done.length,
      allAnsweredSeconds:
        done.length === N ? Number(((latencies[latencies.length - 1] ?? 0) / 1000).toFixed(2)) : null,
      firstAnsweredSeconds: Number(((latencies[0] ?? NaN) / 1000).toFixed(2)),
      p50Seconds: Number((percentile(latencies, 50) / 1000).toFixed(2)),
      p99Seconds: Number((percentile(latencies, 99) / 1000).toFixed(2)),
      errors,
      errorKinds: Object.fromEntries(errorKinds),
    };
    results.push(result);
    console.log(JSON.stringify(result));
    running = false;
    await pollAgent.destroy();
    await Promise.all(agents);
  }
  heartbeating = false;
  await heartbeats;
  const hb = heartbeatLatency.sort((a, b) => a - b);
  const [lp, poll] = results as {
    coreCpuPercent: number;
    coreRssMaxBytes: number;
    allAnsweredSeconds: number | null;
    p50Seconds: number;
  }[];
  console.log('');
  console.log(
    `| ${N} sites              | long-poll (ours) | polling every ${PERIOD_S} s (reference) | ratio |`,
  );
  console.log('| --- | --- | --- | --- |');
  console.log(
    `| core CPU, steady       | ${lp!.coreCpuPercent}% | ${poll!.coreCpuPercent}% | ${(lp!.coreCpuPercent / poll!.coreCpuPercent).toFixed(2)}× |`,
  );
  console.log(
    `| core RSS, max          | ${mb(lp!.coreRssMaxBytes)} | ${mb(poll!.coreRssMaxBytes)} | ${(lp!.coreRssMaxBytes / poll!.coreRssMaxBytes).toFixed(2)}× |`,
  );
  console.log(
    `| change → all answered  | ${lp!.allAnsweredSeconds} s | ${poll!.allAnsweredSeconds} s | ${lp!.allAnsweredSeconds !== null && poll!.allAnsweredSeconds !== null ? (lp!.allAnsweredSeconds / poll!.allAnsweredSeconds).toFixed(3) : 'n/a'}× |`,
  );
  console.log(
    `| change → median agent  | ${lp!.p50Seconds} s | ${poll!.p50Seconds} s | ${(lp!.p50Seconds / poll!.p50Seconds).toFixed(3)}× |`,
  );
  console.log(
    `heartbeats: ${hb.length} ok, ${heartbeatErrors} failed, p50 ${percentile(hb, 50).toFixed(1)} ms, p99 ${percentile(hb, 99).toFixed(1)} ms`,
  );
  await mkdir(join(root, 'bench-results'), { recursive: true });
  const file = join(root, 'bench-results', `core-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  await writeFile(
    file,
    JSON.stringify({ sites: N, results, heartbeats: { ok: hb.length, failed: heartbeatErrors } }, null, 2),
  );
  console.log(`results: ${file}`);
  child.kill('SIGTERM');
  await agent.destroy();
  await rm(data, { recursive: true, force: true });
}

await main_();
process.exit(0);
