/**
 * The site agent with the podman driver end to end (see _test-agent-world.ts): the rendered
 * manifest runs under `podman kube play`, v2 replaces v1 after its candidate pod passed the checks,
 * a broken v3 is rolled back while v2 keeps serving, and pods outlive a killed agent and are adopted.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { EXAMPLE_MODEL_NAME } from '@aiedge/runtime';
import { missingTool } from './_test-cli.js';
import { DEPLOYMENT, startAgentWorld, type AgentWorld } from './_test-agent-world.js';
import { assertVersion, infer, loadLoop } from './_test-inference.js';

const run = promisify(execFile);
const skip =
  missingTool('podman', 'apt-get install podman runc catatonit && scripts/podman-setup.sh') ??
  missingTool('catatonit', 'apt-get install catatonit (podman builds its pause image from it)');

async function pods(): Promise<string[]> {
  const { stdout } = await run('podman', ['pod', 'ps', '--format', '{{.Name}} {{.Status}}']);
  return stdout.split('\n').filter((l) => l.startsWith(`${DEPLOYMENT}-`));
}

describe('site agent with the podman driver (end to end)', { skip, timeout: 900_000 }, () => {
  let world: AgentWorld;
  before(async () => {
    world = await startAgentWorld('podman');
  });
  after(async () => {
    await world?.close();
    for (const digest of Object.values(world?.digests ?? {})) {
      await run('podman', [
        'rmi',
        '--force',
        '--ignore',
        `localhost/aiedge-agent/image:${digest.slice(7)}`,
      ]).catch(() => undefined);
    }
  });

  test('v1 arrives, v2 replaces it after a candidate passed, a broken v3 is rolled back, pods outlive the agent', async () => {
    world.startAgent();
    await world.deploy('1');
    await world.settled('1', 'Serving', 300_000);
    assertVersion(await infer(world.servePort), 1);
    assert.deepEqual(
      (await pods()).map((p) => p.split(' ')[0]),
      [`${DEPLOYMENT}-pod-0`],
    );

    // v2: a candidate pod on another port first, then the serving pod is replaced.
    const load = loadLoop(world.servePort, { pauseMs: 20 });
    await world.deploy('2');
    await world.settled('2', 'Serving', 300_000);
    const replaced = await load.stop();
    assert.deepEqual(
      replaced.versions.filter((v) => v !== '?'),
      ['1', '2'],
    );
    assertVersion(await infer(world.servePort), 2);

    // v3 fails in its candidate pod: the serving pod is never touched.
    const during = loadLoop(world.servePort, { pauseMs: 20 });
    await world.deploy('3');
    const reported = await world.settled('3', 'RolledBack', 300_000);
    const rolledBack = await during.stop();
    const d = reported.deployments.find((x) => x.deployment === DEPLOYMENT)!;
    assert.match(d.reason ?? '', /failed to load/);
    assert.match(d.reason ?? '', new RegExp(`still serving ${EXAMPLE_MODEL_NAME} version 2`));
    assert.deepEqual(rolledBack.failures, [], 'v2 kept serving while v3 was tried');
    assert.deepEqual(rolledBack.versions, ['2']);
    assert.deepEqual(
      (await pods()).map((p) => p.split(' ')[0]),
      [`${DEPLOYMENT}-pod-0`],
      'no candidate pod is left',
    );

    // kill -9 of the agent: the pod keeps serving; the next agent adopts it.
    world.agent!.child.kill('SIGKILL');
    await world.agent!.done;
    assertVersion(await infer(world.servePort), 2);
    const agent = world.startAgent();
    await world.deploy('2');
    await world.settled('2', 'Serving', 300_000);
    assert.match(agent.stderr(), /adopted a running pod/);
    assertVersion(await infer(world.servePort), 2);
  });
});
