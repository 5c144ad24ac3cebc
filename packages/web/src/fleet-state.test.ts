import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DeployedModel, Site } from '@aiedge/protocol';
import { fleetFigures, revisionStatus, siteHealth, toggleLabel } from './fleet-state.js';

const at = '2026-11-02T12:00:00Z';
const deployed = (
  state: DeployedModel['state'],
  model = 'example-classifier',
  version = '1',
): DeployedModel => ({
  deployment: `${model}-${version}`,
  model,
  version,
  state,
  since: at,
});
const site = (over: Partial<Site>): Site => ({
  name: 'edge-1',
  kind: 'device',
  labels: {},
  agentVersion: '0.1.0',
  createdAt: at,
  lastSeen: at,
  online: true,
  revoked: false,
  desiredRevision: 'a'.repeat(40),
  appliedRevision: 'a'.repeat(40),
  drift: false,
  deployments: [],
  resources: null,
  statusUpdatedAt: at,
  ...over,
});

test('health: revoked and offline first, then failures, then rollouts in progress', () => {
  assert.equal(siteHealth(site({ revoked: true, online: false })), 'revoked');
  assert.equal(siteHealth(site({ online: false, deployments: [deployed('Serving')] })), 'offline');
  assert.equal(
    siteHealth(site({ deployments: [deployed('Serving'), deployed('RolledBack', 'b')] })),
    'failing',
  );
  assert.equal(siteHealth(site({ deployments: [deployed('Failed'), deployed('Pulling', 'b')] })), 'failing');
  assert.equal(
    siteHealth(site({ deployments: [deployed('Serving'), deployed('Starting', 'b')] })),
    'progressing',
  );
  assert.equal(siteHealth(site({ deployments: [deployed('Serving')] })), 'healthy');
  assert.equal(siteHealth(site({})), 'idle');
});

test('drift compares the desired and applied GitOps revisions', () => {
  const a = 'a'.repeat(40);
  const b = 'b'.repeat(40);
  assert.deepEqual(revisionStatus(site({ desiredRevision: a, appliedRevision: a })).kind, 'in-sync');
  const drift = revisionStatus(site({ desiredRevision: b, appliedRevision: a }));
  assert.equal(drift.kind, 'drift');
  assert.equal(drift.text, 'applied aaaaaaaa, desired bbbbbbbb');
  assert.equal(revisionStatus(site({ desiredRevision: b, appliedRevision: null })).kind, 'never-applied');
  assert.equal(revisionStatus(site({ desiredRevision: '', appliedRevision: null })).kind, 'not-published');
  assert.equal(revisionStatus(site({ revoked: true, desiredRevision: b })).kind, 'revoked');
});

test('fleet figures count failing and progressing sites and distinct serving model versions', () => {
  const figures = fleetFigures([
    site({ name: 'a', deployments: [deployed('Serving'), deployed('Serving', 'mnist', '3')] }),
    site({ name: 'b', deployments: [deployed('Serving'), deployed('Failed', 'mnist', '4')] }),
    site({ name: 'c', deployments: [deployed('Pulling', 'mnist', '4')] }),
    site({ name: 'd', online: false, deployments: [deployed('Serving', 'other')] }),
  ]);
  assert.deepEqual(figures, { failing: 1, progressing: 1, modelVersions: 3, serving: 4 });
});

test('a label chip adds its term to the filter, removes it when present, and replaces the same key', () => {
  assert.equal(toggleLabel('', 'tier', 'edge'), 'tier=edge');
  assert.equal(toggleLabel('tier=edge', 'region', 'eu'), 'tier=edge, region=eu');
  assert.equal(toggleLabel('tier = edge, region=eu', 'tier', 'edge'), 'region=eu');
  assert.equal(toggleLabel('tier==edge', 'tier', 'edge'), '');
  assert.equal(toggleLabel('tier=core, !gpu', 'tier', 'edge'), '!gpu, tier=edge');
});
