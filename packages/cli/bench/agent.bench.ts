/**
 * `npm run bench:agent`: the site agent's footprint and delivery latency, in one run.
 *
 * - Idle footprint: RSS and CPU of `aiedge agent run` (the compiled CLI, as installed; process
 *   driver) with one model serving and nothing changing, side by side with the floor of its
 *   platform, a bare `node` process that only keeps a timer (the reference). Ratio printed.
 * - Delivery: the time from the GitOps commit of a new model version (the core's answer to the
 *   deployment change) to the new version answering inferences at the site, for N changes
 *   alternating v1/v2; the time split into commit → agent notified (long-poll) and notified →
 *   serving (pull of the one new layer, load, checks, switch). The anchors deliver by polling
 *   (Argo CD's default Git poll is 180 s, Flight Control's agent polls its server every 60 s): their
 *   expected delay to notice a commit is half the interval, printed beside ours.
 *
 * Everything runs on 127.0.0.1 (a core with its registry, a Git smart-HTTP server, the agent and its
 * inference server) and stops by itself. Options: --idle-seconds N (default 20), --changes N (default 6).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startAgentWorld, until } from '../src/_test-agent-world.js';
import { infer } from '../src/_test-inference.js';

const root = new URL('../../..', import.meta.url).pathname;
const { values } = parseArgs({
  options: {
    'idle-seconds': { type: 'string', default: '20' },
    changes: { type: 'string', default: '6' },
    'node-option': { type: 'string', multiple: true, default: [] },
    restart: { type: 'boolean', default: false },
  },
});
const idleSeconds = Number(values['idle-seconds']);
const changes = Number(values.changes);
if (!(idleSeconds > 0) || !(changes > 0))
  throw new Error('--idle-seconds and --changes must be positive numbers');

const TICKS = 100; // clock ticks per second (USER_HZ) on Linux

async function rssBytes(pid: number, field = 'VmRSS'): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1];
  if (kb === undefined) throw new Error(`no ${field} for ${pid}`);
  return Number(kb) * 1024;
}

async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICKS; // utime, stime
}

/** RSS (median of samples) and CPU share of `pid` over `seconds`. */
async function footprint(
  pid: number,
  seconds: number,
): Promise<{ rssMb: number; anonMb: number; fileMb: number; cpuPercent: number }> {
  const rss: number[] = [];
  const cpu0 = await cpuSeconds(pid);
  const t0 = performance.now();
  for (let i = 0; i < seconds; i++) {
    await new Promise((r) => setTimeout(r, 1000));
    rss.push(await rssBytes(pid));
  }
  const cpu = (await cpuSeconds(pid)) - cpu0;
  const wall = (performance.now() - t0) / 1000;
  rss.sort((a, b) => a - b);
  return {
    rssMb: rss[rss.length >> 1]! / 1024 ** 2,
    anonMb: (await rssBytes(pid, 'RssAnon')) / 1024 ** 2,
    fileMb: (await rssBytes(pid, 'RssFile')) / 1024 ** 2,
    cpuPercent: (100 * cpu) / wall,
  };
}

function stop(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

const fmt = (n: number, digits = 1) => n.toFixed(digits);

const world = await startAgentWorld('process', {
  command: [process.execPath, ...values['node-option'], join(root, 'packages/cli/bin/aiedge.js')],
});
let reference: ChildProcess | undefined;
try {
  process.stderr.write('deploying v1 …\n');
  const agent = world.startAgent();
  await world.deploy('1');
  await world.settled('1', 'Serving', 180_000);
  let agentPid = agent.child.pid!;
  if (values.restart) {
    agent.child.kill('SIGTERM');
    await agent.done;
    const again = world.startAgent();
    await until('the restarted agent to adopt', async () =>
      /adopted/.test(again.stderr()) ? true : undefined,
    );
    agentPid = again.child.pid!;
  }

  process.stderr.write(`idle for ${idleSeconds} s (agent and reference side by side) …\n`);
  reference = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 3000)); // both settle after start-up
  const [ours, floor] = await Promise.all([
    footprint(agentPid, idleSeconds),
    footprint(reference.pid!, idleSeconds),
  ]);

  process.stderr.write(`delivering ${changes} model changes …\n`);
  const rows: Array<{ version: string; commitMs: number; servingMs: number; pulled: boolean }> = [];
  let version = '1';
  for (let i = 0; i < changes; i++) {
    version = version === '1' ? '2' : '1';
    const t0 = performance.now();
    await world.deploy(version); // answers once the change is committed to the GitOps repository
    const committed = performance.now();
    await until(
      `version ${version} to serve`,
      async () => ((await infer(world.servePort, 2000)).version === version ? true : undefined),
      120_000,
      5,
    );
    const served = performance.now();
    rows.push({ version, commitMs: committed - t0, servingMs: served - committed, pulled: i === 0 });
    process.stderr.write(
      `  v${version}: commit ${fmt(committed - t0, 0)} ms → serving ${fmt(served - committed, 0)} ms\n`,
    );
  }
  const cached = rows
    .filter((r) => !r.pulled)
    .map((r) => r.servingMs / 1000)
    .sort((a, b) => a - b);
  const median = cached[cached.length >> 1] ?? Number.NaN;

  console.log('\n## bench:agent\n');
  console.log('| idle, one model serving | RSS MB (anon + file) | CPU % |');
  console.log('| --- | ---: | ---: |');
  const row = (name: string, f: typeof ours) =>
    console.log(
      `| ${name} | ${fmt(f.rssMb)} (${fmt(f.anonMb)} + ${fmt(f.fileMb)}) | ${fmt(f.cpuPercent, 2)} |`,
    );
  row('aiedge agent run (process driver)', ours);
  row('reference: bare node with a timer', floor);
  console.log(`| ratio agent / bare node | ${fmt(ours.rssMb / floor.rssMb, 2)}× | |`);
  console.log(`\nTarget idle RSS ≤ 60 MB: ${ours.rssMb <= 60 ? 'MET' : 'NOT MET'} (${fmt(ours.rssMb)} MB)`);
  console.log('\n| change | API: change committed to Git, ms | commit → new version serving, ms |');
  console.log('| --- | ---: | ---: |');
  for (const r of rows) {
    console.log(
      `| v${r.version}${r.pulled ? ' (first time: pull and unpack)' : ' (image at the site)'} | ${fmt(r.commitMs, 0)} | ${fmt(r.servingMs, 0)} |`,
    );
  }
  console.log(`\nMedian commit → serving with the image at the site: ${fmt(median, 3)} s.`);
  console.log(
    `Polling anchors, expected delay to notice a commit alone: Argo CD (180 s poll) 90 s = ${fmt(90 / median, 0)}×, Flight Control (60 s) 30 s = ${fmt(30 / median, 0)}×.`,
  );
} finally {
  if (reference !== undefined) await stop(reference);
  await world.close();
}
