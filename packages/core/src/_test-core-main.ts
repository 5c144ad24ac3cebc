// Test helper (left out of the build): runs a core in its own process, for crash and shutdown tests.
// Usage: node --conditions=@aiedge/source --import tsx _test-core-main.ts DATA_DIR
// Prints `listening <url>` on stdout once it accepts connections.
import { createLogger, parseLogLevel } from '@aiedge/telemetry';
import { resolveCoreConfig } from './config.js';
import { startCore } from './server.js';

const data = process.argv[2];
if (data === undefined) throw new Error('usage: _test-core-main.ts DATA_DIR');
const core = await startCore({
  config: resolveCoreConfig({ values: { data, host: '127.0.0.1', port: 0, logLevel: 'silent' } }),
  // Errors go to stderr when AIEDGE_TEST_LOG_LEVEL asks for them (benchmarks do).
  logger: createLogger({
    component: 'core',
    level: parseLogLevel(process.env['AIEDGE_TEST_LOG_LEVEL'], 'silent'),
    destination: 2,
  }),
});
process.stdout.write(`listening ${core.url}\n`);
const stop = () => {
  core.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
