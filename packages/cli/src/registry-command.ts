import { Command, Option } from 'commander';
import { startRegistry } from '@aiedge/oci';
import { integer } from '@aiedge/runtime';
import { createLogger, type LogLevel } from '@aiedge/telemetry';

/** `aiedge registry`: an OCI distribution-spec registry over a local content store. */
export function registryCommand(): Command {
  return new Command('registry')
    .description('Run an OCI registry (distribution spec v1.1) over a local content store')
    .addOption(
      new Option('--data <dir>', 'content store directory (blobs, refs, uploads); created if missing')
        .env('AIEDGE_REGISTRY_DATA')
        .makeOptionMandatory(),
    )
    .addOption(
      new Option('--host <address>', 'address to listen on').env('AIEDGE_REGISTRY_HOST').default('0.0.0.0'),
    )
    .addOption(
      new Option('--port <n>', 'port to listen on')
        .env('AIEDGE_REGISTRY_PORT')
        .argParser(integer)
        .default(5000),
    )
    .addOption(
      new Option('--log-level <level>', 'log level')
        .env('AIEDGE_REGISTRY_LOG_LEVEL')
        .choices(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'])
        .default('info'),
    )
    .addHelpText(
      'after',
      `
Every flag can also be set through its environment variable (AIEDGE_REGISTRY_<FLAG>, e.g.
AIEDGE_REGISTRY_PORT=5001). The registry has no authentication: bind it to a trusted network.
SIGTERM or SIGINT finishes in-flight requests and stops.

Examples:
  $ aiedge registry --data /var/lib/aiedge/registry
  $ aiedge registry --data ./registry --host 127.0.0.1 --port 5001
  $ skopeo copy --dest-tls-verify=false oci:./image:1.0 docker://127.0.0.1:5000/models/mnist:1.0
  $ curl -s localhost:5000/v2/_catalog
`,
    )
    .action(async (flags: { data: string; host: string; port: number; logLevel: LogLevel }) => {
      const logger = createLogger({ component: 'registry', level: flags.logLevel });
      const registry = await startRegistry({
        data: flags.data,
        host: flags.host,
        port: flags.port,
        logger,
      });
      await new Promise<void>((resolve) => {
        const stop = (): void => {
          process.off('SIGTERM', stop);
          process.off('SIGINT', stop);
          registry.close().then(resolve, resolve);
        };
        process.on('SIGTERM', stop);
        process.on('SIGINT', stop);
      });
    });
}
