#!/usr/bin/env node
// Writes docs/reference/openapi.json: the OpenAPI document a real core serves at
// /api/v1/openapi.json. Starts a core from the TypeScript sources on 127.0.0.1 (free port, temporary
// data directory), fetches the document with an admin token, stops the core.
//
// Usage: node scripts/gen-openapi.mjs           regenerate docs/reference/openapi.json
//        node scripts/gen-openapi.mjs --check   exit 1 when the file is not what it would generate
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fetch } from 'undici';
import { ensureSources, writeOrCheck } from './_generated-file.mjs';

ensureSources(fileURLToPath(import.meta.url));
const target = fileURLToPath(new URL('../docs/reference/openapi.json', import.meta.url));

const { createToken, resolveCoreConfig, startCore } = await import('@aiedge/core');
const { silentLogger } = await import('@aiedge/telemetry');

const data = await mkdtemp(join(tmpdir(), 'aiedge-openapi-'));
let document;
try {
  const config = resolveCoreConfig({ values: { data, host: '127.0.0.1', port: 0, logLevel: 'silent' } });
  const core = await startCore({ config, logger: silentLogger });
  try {
    const admin = await createToken(core.context.store.db, { kind: 'admin', description: 'gen-openapi' });
    const response = await fetch(`${core.url}/api/v1/openapi.json`, {
      headers: { authorization: `Bearer ${admin.token}` },
    });
    if (response.status !== 200) {
      throw new Error(`GET /api/v1/openapi.json answered ${response.status}: ${await response.text()}`);
    }
    document = await response.json();
  } finally {
    await core.close();
  }
} finally {
  await rm(data, { recursive: true, force: true });
}

const paths = Object.keys(document.paths ?? {}).length;
await writeOrCheck(target, `${JSON.stringify(document, null, 2)}\n`, {
  script: 'scripts/gen-openapi.mjs',
  what: `OpenAPI ${document.openapi}, ${paths} paths`,
});
