/** `aiedge core`: runs the control plane; `aiedge core token …` manages tokens in its store. */
import { Command, Option } from 'commander';
import { integer } from '@aiedge/runtime';
import {
  createToken,
  openCoreStore,
  resolveCoreConfig,
  startCore,
  type CoreConfigInput,
  type TokenInfo,
} from '@aiedge/core';
import { InputError, NotFoundError } from '@aiedge/protocol';

interface CoreFlags {
  data?: string;
  host?: string;
  port?: number;
  tlsCert?: string;
  tlsKey?: string;
  gitopsRepo?: string;
  publicUrl?: string;
  config?: string;
  logLevel?: string;
}

function configFrom(flags: CoreFlags) {
  const values: CoreConfigInput = {
    ...(flags.data !== undefined ? { data: flags.data } : {}),
    ...(flags.host !== undefined ? { host: flags.host } : {}),
    ...(flags.port !== undefined ? { port: flags.port } : {}),
    ...(flags.tlsCert !== undefined ? { tlsCert: flags.tlsCert } : {}),
    ...(flags.tlsKey !== undefined ? { tlsKey: flags.tlsKey } : {}),
    ...(flags.gitopsRepo !== undefined ? { gitopsRepo: flags.gitopsRepo } : {}),
    ...(flags.publicUrl !== undefined ? { publicUrl: flags.publicUrl } : {}),
    ...(flags.logLevel !== undefined
      ? { logLevel: flags.logLevel as NonNullable<CoreConfigInput['logLevel']> }
      : {}),
  };
  return resolveCoreConfig({
    env: process.env,
    values,
    ...(flags.config !== undefined ? { file: flags.config } : {}),
  });
}

const dataOption = () =>
  new Option('--data <dir>', 'data directory (env AIEDGE_CORE_DATA; default .aiedge/core)');
const configOption = () => new Option('--config <file>', 'YAML or JSON config file');

function printToken(t: TokenInfo & { token?: string }): void {
  const lines = [
    ...(t.token !== undefined ? [`token:       ${t.token}`] : []),
    `id:          ${t.id}`,
    `kind:        ${t.kind}`,
    ...(t.site !== null ? [`site:        ${t.site}`] : []),
    `expires:     ${t.expiresAt ?? 'never'}`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

function tokenCommand(): Command {
  const token = new Command('token').description(
    'create, list and revoke core tokens (works on the store directly)',
  );
  token
    .command('create')
    .description('create a token and print it once (only its hash is stored)')
    .option('--admin', 'an admin token (full access)')
    .option('--enrollment', 'a one-time enrollment token an agent exchanges for a site token')
    .option('--site <name>', 'enrollment token: the only site name it may enroll')
    .option('--ttl <seconds>', 'lifetime in seconds (enrollment default 86400; admin default: none)', integer)
    .option('--description <text>', 'what the token is for')
    .option('--json', 'print JSON')
    .option('-q, --quiet', 'print the token string only (for scripts)')
    .addOption(dataOption())
    .addOption(configOption())
    .action(
      async (
        flags: CoreFlags & {
          admin?: boolean;
          enrollment?: boolean;
          site?: string;
          ttl?: number;
          description?: string;
          json?: boolean;
          quiet?: boolean;
        },
      ) => {
        if ((flags.admin === true) === (flags.enrollment === true)) {
          throw new InputError('token create: give exactly one of --admin or --enrollment');
        }
        if (flags.site !== undefined && flags.admin === true)
          throw new InputError('token create: --site applies to --enrollment only');
        const config = configFrom(flags);
        const store = await openCoreStore(config);
        try {
          const ttlSeconds =
            flags.ttl ?? (flags.enrollment === true ? config.enrollmentTokenTtlSeconds : undefined);
          const created = await createToken(store.db, {
            kind: flags.admin === true ? 'admin' : 'enrollment',
            site: flags.site ?? null,
            description: flags.description ?? '',
            ...(ttlSeconds !== undefined ? { ttlSeconds } : {}),
          });
          if (flags.json === true) process.stdout.write(`${JSON.stringify(created, null, 2)}\n`);
          else if (flags.quiet === true) process.stdout.write(`${created.token}\n`);
          else {
            printToken(created);
            process.stderr.write('Keep the token now: it is not shown again.\n');
          }
        } finally {
          await store.close();
        }
      },
    );
  token
    .command('list')
    .description('list tokens (never their secrets)')
    .option('--json', 'print JSON')
    .addOption(dataOption())
    .addOption(configOption())
    .action(async (flags: CoreFlags & { json?: boolean }) => {
      const store = await openCoreStore(configFrom(flags));
      try {
        const rows = await store.db.selectFrom('tokens').selectAll().orderBy('created_at').execute();
        const items = rows.map((r) => ({
          id: r.id,
          kind: r.kind,
          site: r.site,
          description: r.description,
          createdAt: r.created_at,
          expiresAt: r.expires_at,
          revokedAt: r.revoked_at,
          usedAt: r.used_at,
        }));
        if (flags.json === true) {
          process.stdout.write(`${JSON.stringify(items, null, 2)}\n`);
          return;
        }
        const rowsText = items.map((t) =>
          [
            t.id,
            t.kind,
            t.site ?? '-',
            t.revokedAt !== null ? 'revoked' : t.usedAt !== null ? 'used' : 'active',
            t.expiresAt ?? 'never',
            t.description,
          ].join('\t'),
        );
        process.stdout.write(['ID\tKIND\tSITE\tSTATE\tEXPIRES\tDESCRIPTION', ...rowsText].join('\n') + '\n');
      } finally {
        await store.close();
      }
    });
  token
    .command('revoke <id>')
    .description('revoke a token by its id')
    .addOption(dataOption())
    .addOption(configOption())
    .action(async (id: string, flags: CoreFlags) => {
      const store = await openCoreStore(configFrom(flags));
      try {
        const result = await store.db
          .updateTable('tokens')
          .set({ revoked_at: new Date().toISOString() })
          .where('id', '=', id)
          .executeTakeFirst();
        if (Number(result.numUpdatedRows) === 0) throw new NotFoundError(`token ${id} does not exist`);
        process.stdout.write(`revoked ${id}\n`);
      } finally {
        await store.close();
      }
    });
  return token;
}

/** The `aiedge core` command. */
export function coreCommand(): Command {
  const core = new Command('core')
    .description('run the ai-edge core: fleet API, model registry, OCI registry, GitOps, runs, telemetry')
    // Options after `token …` belong to the token verbs, not to `core` (both have --data).
    .enablePositionalOptions()
    .addOption(dataOption())
    .option('--host <address>', 'listen address (env AIEDGE_CORE_HOST; default 0.0.0.0)')
    .option('--port <port>', 'listen port (env AIEDGE_CORE_PORT; default 8080)', integer)
    .option('--tls-cert <file>', 'PEM certificate (with --tls-key) to serve HTTPS')
    .option('--tls-key <file>', 'PEM private key')
    .option('--gitops-repo <url>', 'GitOps repository URL (default: a bare repository in the data directory)')
    .option('--public-url <url>', 'URL agents reach this core at')
    .option('--log-level <level>', 'trace, debug, info, warn, error or silent')
    .addOption(configOption())
    .addHelpText(
      'after',
      `
Every setting can also come from the config file or the environment (AIEDGE_CORE_<KEY>, e.g.
AIEDGE_CORE_PORT=9000); flags win over the environment, which wins over the file.

Examples:
  $ aiedge core --data ./.aiedge/core --port 8080
  $ aiedge core token create --admin --data ./.aiedge/core`,
    )
    .action(async (flags: CoreFlags) => {
      const config = configFrom(flags);
      const running = await startCore({ config });
      process.stderr.write(`aiedge core listening on ${running.url} (data ${config.data})\n`);
      await new Promise<void>((resolve) => {
        const stop = (): void => {
          process.off('SIGTERM', stop);
          process.off('SIGINT', stop);
          running.close().then(resolve, resolve);
        };
        process.on('SIGTERM', stop);
        process.on('SIGINT', stop);
      });
    });
  core.addCommand(tokenCommand());
  return core;
}
