/**
 * The site agent end to end with the process driver, every piece real (see _test-agent-world.ts):
 * a deployment arrives and serves, v2 replaces v1 under load with no failed request, a broken v3
 * is rolled back and reported, and `kill -9` of the agent at random moments of updates.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Deployment } from '@aiedge/protocol';
import { EXAMPLE_MODEL_NAME } from '@aiedge/runtime';
import { DEPLOYMENT, startAgentWorld, until, type AgentWorld } from './_test-agent-world.js';
import { assertVersion, infer, loadLoop } from './_test-inference.js';

const KILLS = 20;

/** A tiny seeded random generator (mulberry32), so a failing run can be repeated with its seed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The deployment states the agent logged for image `digest`, in order. */
function statesOf(stderr: string, digest: string): string[] {
  const states: string[] = [];
  for (const line of stderr.split('\n')) {
    if (!line.includes('"deployment state"') || !line.includes(digest)) continue;
    const state = /"state":"(\w+)"/.exec(line)?.[1];
    if (state !== undefined) states.push(state);
  }
  return states;
}

/** Waits until the process driver's state file records a switch in progress (polled every 5 ms). */
async function switching(agentData: string, timeoutMs: number): Promise<void> {
  await until(
    'the agent to begin the switch',
    async () => ((await midSwitch(agentData)) ? true : undefined),
    timeoutMs,
    5,
  );
}

/** True when the process driver's state file records a switch in progress. */
async function midSwitch(agentData: string): Promise<boolean> {
  const state = JSON.parse(await readFile(join(agentData, 'process', 'state.json'), 'utf8')) as {
    deployments: Record<string, { switching?: unknown }>;
  };
  return state.deployments[DEPLOYMENT]?.switching !== undefined;
}

/**
 * True when the killed agent's log shows it had begun applying `version` (a state change for its
 * image) without reporting it Serving: the kill interrupted the update.
 */
function interrupted(stderr: string, digest: string): boolean {
  const states = statesOf(stderr, digest);
  return states.length > 0 && states.at(-1) !== 'Serving';
}

describe(
  'site agent end to end (core, Git over HTTP, embedded registry, process driver)',
  { timeout: 900_000 },
  () => {
    let world: AgentWorld;
    before(async () => {
      world = await startAgentWorld('process');
    });
    after(async () => {
      await world?.close();
    });

    test('a deployment arrives and serves; v2 replaces v1 under load with no failed request; a broken v3 is rolled back and reported', async () => {
      world.startAgent();
      const created = await world.deploy('1');
      assert.ok(created.commit !== null, 'the deployment is committed to the GitOps repository');
      await world.settled('1');
      assertVersion(await infer(world.servePort), 1);

      const load = loadLoop(world.servePort);
      await new Promise((r) => setTimeout(r, 300));
      await world.deploy('2');
      await world.settled('2');
      await new Promise((r) => setTimeout(r, 300));
      const result = await load.stop();
      assert.deepEqual(result.failures, []);
      assert.ok(result.ok > 10, `${result.ok} requests`);
      assert.deepEqual(result.versions, ['1', '2']);
      assertVersion(await infer(world.servePort), 2);

      const during = loadLoop(world.servePort);
      await world.deploy('3');
      const reported = await world.settled('3', 'RolledBack');
      const rolledBack = await during.stop();
      const d = reported.deployments.find((x) => x.deployment === DEPLOYMENT)!;
      assert.match(d.reason ?? '', /failed to load/);
      assert.match(d.reason ?? '', new RegExp(`still serving ${EXAMPLE_MODEL_NAME} version 2`));
      assert.deepEqual(rolledBack.failures, []);
      assert.deepEqual(rolledBack.versions, ['2']);
      const deployment = await world.api<Deployment>(`/api/v1/deployments/${DEPLOYMENT}`);
      assert.equal(deployment.summary.failed, 1, 'the core counts the rolled-back site as failed');
    });

    test(`kill -9 of the agent at ${KILLS} random moments during updates: it converges every time and a model always serves`, async (t) => {
      const seed = Number(process.env['AIEDGE_KILL_SEED'] ?? Date.now() % 100_000);
      const next = random(seed);
      // A sampler: one inference every 50 ms for the whole test; every one must succeed.
      const sampler = loadLoop(world.servePort, { pauseMs: 50, maxMs: 600_000 });
      let version = '2';
      let interruptions = 0;
      try {
        for (let i = 0; i < KILLS; i++) {
          if (world.agent === undefined || world.agent.child.exitCode !== null) world.startAgent();
          version = version === '2' ? '1' : '2';
          const running = world.agent!;
          await world.deploy(version);
          // Every other kill lands at a random moment of the switch itself (once the driver recorded
          // it in its state file); the others anywhere in the first 1.5 s after the change.
          const inSwitch = i % 2 === 0;
          if (inSwitch) await switching(world.agentData, 30_000);
          const delayMs = Math.floor(next() * (inSwitch ? 40 : 1500));
          await new Promise((r) => setTimeout(r, delayMs));
          running.child.kill('SIGKILL');
          const killed = await running.done;
          // Interrupted: the state file holds a switch in progress, or the log an unfinished update.
          const cut =
            (await midSwitch(world.agentData)) || interrupted(killed.stderr, world.digests[version]!);
          if (cut) interruptions++;
          world.startAgent();
          await world.settled(version, 'Serving', 120_000).catch((error: unknown) => {
            throw new Error(`seed ${seed}, kill ${i + 1} after ${delayMs} ms: ${(error as Error).message}`);
          });
          assertVersion(await infer(world.servePort), Number(version));
        }
      } finally {
        const sampled = await sampler.stop();
        assert.deepEqual(sampled.failures, [], `seed ${seed}: a sample failed`);
        assert.ok(sampled.ok > KILLS, `${sampled.ok} samples`);
      }
      t.diagnostic(`seed ${seed}: ${interruptions} of ${KILLS} kills interrupted an update in progress`);
      assert.ok(interruptions >= KILLS / 4, `only ${interruptions} kills hit an update in progress`);
    });
  },
);
