/** `aiedge agent`: enroll a site at the core, and run the site agent. */
import { Command, Option } from 'commander';
import {
  AGENT_VERSION,
  PodmanDriver,
  ProcessDriver,
  agentDataDir,
  enrollSite,
  loadIdentity,
  parseLabels,
  readCaFile,
  startAgent,
  type Driver,
  type DriverContext,
} from '@aiedge/agent';
import { InputError, SiteKinds, describeValue } from '@aiedge/protocol';
import { integer, collect } from '@aiedge/runtime';
import { createLogger, parseLogLevel } from '@aiedge/telemetry';

const dataOption = () =>
  new Option('--data <dir>', 'agent data directory (env AIEDGE_AGENT_DATA; default .aiedge/agent)');

const DRIVERS = ['process', 'podman'] as const;

function driverFactory(kind: string): (context: DriverContext) => Driver {
  if (kind === 'process') return (context) => new ProcessDriver(context);
  if (kind === 'podman') return (context) => new PodmanDriver(context);
  throw new InputError(`--driver ${describeValue(kind)} must be one of ${DRIVERS.join(', ')}`);
}

function enrollCommand(): Command {
  return new Command('enroll')
    .description('enroll this site at the core with a one-time enrollment token; stores the site identity')
    .requiredOption('--core <url>', 'URL of the core (http:// or https://)')
    .requiredOption('--token <token>', 'enrollment token (aiedge core token create --enrollment)')
    .requiredOption('--site <name>', 'name of this site (DNS-1123 label)')
    .option('--label <key=value>', 'site label (repeatable); deployments select sites by label', collect, [])
    .addOption(new Option('--kind <kind>', 'kind of site').choices([...SiteKinds]).default('device'))
    .addOption(dataOption())
    .option('--ca <file>', 'PEM CA certificate to trust for an https core')
    .addHelpText(
      'after',
      `
The site token is written to <data>/identity.json (mode 0600) and never printed.

Example:
  $ aiedge agent enroll --core https://core.example:8080 --token aie_… --site store-42 \\
      --label region=eu --label tier=small`,
    )
    .action(
      async (flags: {
        core: string;
        token: string;
        site: string;
        label: string[];
        kind: (typeof SiteKinds)[number];
        data?: string;
        ca?: string;
      }) => {
        const dataDir = agentDataDir(flags.data);
        const identity = await enrollSite({
          core: flags.core,
          enrollmentToken: flags.token,
          site: flags.site,
          labels: parseLabels(flags.label),
          kind: flags.kind,
          dataDir,
          agentVersion: AGENT_VERSION,
          ...(flags.ca !== undefined ? { ca: await readCaFile(flags.ca) } : {}),
        });
        process.stdout.write(
          `site ${identity.site} enrolled at ${identity.core}; identity stored in ${dataDir}/identity.json\n`,
        );
      },
    );
}

function runCommand(): Command {
  return new Command('run')
    .description('run the site agent until SIGTERM or SIGINT')
    .addOption(dataOption())
    .addOption(
      new Option('--driver <kind>', 'what runs the inference servers')
        .choices([...DRIVERS])
        .default('process'),
    )
    .option(
      '--telemetry-port <port>',
      'loopback OTLP/HTTP port of the telemetry relay (0: any free port)',
      integer,
      4318,
    )
    .option('--status-interval <seconds>', 'heartbeat period of the status report', integer, 30)
    .option('--stop-serving', 'on shutdown also stop the inference servers (default: they keep serving)')
    .addOption(
      new Option('--log-level <level>', 'log level')
        .choices(['trace', 'debug', 'info', 'warn', 'error', 'silent'])
        .default('info'),
    )
    .addHelpText(
      'after',
      `
Example:
  $ aiedge agent run --data /var/lib/aiedge/agent --driver process`,
    )
    .action(
      async (flags: {
        data?: string;
        driver: string;
        telemetryPort: number;
        statusInterval: number;
        stopServing?: boolean;
        logLevel: string;
      }) => {
        if (flags.statusInterval < 1) {
          throw new InputError(`--status-interval ${flags.statusInterval} must be at least 1`);
        }
        const dataDir = agentDataDir(flags.data);
        const identity = await loadIdentity(dataDir);
        const createDriver = driverFactory(flags.driver);
        const logger = createLogger({
          component: 'agent',
          level: parseLogLevel(flags.logLevel, 'info'),
          destination: 2,
        });
        const agent = await startAgent({
          dataDir,
          identity,
          createDriver,
          logger,
          agentVersion: AGENT_VERSION,
          telemetry: { host: '127.0.0.1', port: flags.telemetryPort },
          statusIntervalMs: flags.statusInterval * 1000,
        });
        process.stderr.write(
          `aiedge agent running for site ${identity.site} (core ${identity.core}, data ${dataDir}` +
            `${agent.telemetryUrl !== undefined ? `, OTLP ${agent.telemetryUrl}` : ''})\n`,
        );
        await new Promise<void>((resolve) => {
          const stop = (): void => {
            process.off('SIGTERM', stop);
            process.off('SIGINT', stop);
            agent.stop(flags.stopServing === true ? { stopServing: true } : {}).then(resolve, resolve);
          };
          process.on('SIGTERM', stop);
          process.on('SIGINT', stop);
        });
      },
    );
}

/** `aiedge agent`: the site agent's verbs. */
export function agentCommand(): Command {
  const agent = new Command('agent')
    .description('the site agent: enroll a site, run desired state, report status, forward telemetry')
    .enablePositionalOptions();
  agent.addCommand(enrollCommand());
  agent.addCommand(runCommand());
  return agent;
}
