import { resolve } from 'node:path';
import { Command, Option } from 'commander';
import {
  ConflictError,
  InputError,
  NotFoundError,
  type ModelVersion,
  type RegisteredModel,
  type RegistryArtifact,
} from '@aiedge/protocol';
import { EXAMPLE_MODEL_NAME, collect, integer, writeExampleModelRepository } from '@aiedge/runtime';
import { ModelRegistryClient } from './_model-registry-client.js';

/** `aiedge model`: work with models. */
export function modelCommand(): Command {
  const model = new Command('model').description('Work with models');
  model
    .command('example')
    .description(`Write the example ONNX model (${EXAMPLE_MODEL_NAME}) into a model repository directory`)
    .requiredOption('--out <dir>', 'model repository directory to write into')
    .option(
      '--model-version <n>',
      'model version to write; repeatable (default 1)',
      (v, prev: string[] | undefined) => collect(v, prev),
    )
    .addHelpText(
      'after',
      `
The example model is a tiny linear classifier made by ai-edge's own code: input 'features'
FP32 [batch, 4], outputs 'scores' FP32 [batch, 3] and 'label' INT64 [batch]. Each version
has different weights, so a rollout from v1 to v2 is visible in the scores.

Examples:
  $ aiedge model example --out ./models
  $ aiedge model example --out ./models --model-version 1 --model-version 2
  $ aiedge serve --model-repository ./models
`,
    )
    .action(async (flags: { out: string; modelVersion?: string[] }) => {
      const versions = (flags.modelVersion ?? ['1']).map((v) => integer(v));
      const paths = await writeExampleModelRepository(resolve(flags.out), versions);
      for (const p of paths) console.log(p);
    });
  model.addCommand(registerCommand());
  model.addCommand(listCommand());
  model.addCommand(showCommand());
  return model;
}

/** Flags every model registry verb takes. */
interface RegistryFlags {
  readonly registry?: string;
  readonly token?: string;
}

function withRegistryOptions(command: Command): Command {
  return command
    .addOption(
      new Option(
        '--registry <url>',
        'model registry server, e.g. http://127.0.0.1:8080 (ai-edge core or any Kubeflow Model Registry); ' +
          'the API path /api/model_registry/v1alpha3 is appended; default AIEDGE_REGISTRY_URL, else AIEDGE_CORE_URL',
      ).env('AIEDGE_REGISTRY_URL'),
    )
    .addOption(
      new Option('--token <token>', 'bearer token (ai-edge core: admin to write, admin or site to read)').env(
        'AIEDGE_TOKEN',
      ),
    );
}

function clientOf(flags: RegistryFlags): ModelRegistryClient {
  const url = nonEmpty(flags.registry) ?? nonEmpty(process.env['AIEDGE_CORE_URL']);
  if (url === undefined) {
    throw new InputError(
      'no model registry given: pass --registry URL, or set AIEDGE_REGISTRY_URL or AIEDGE_CORE_URL',
    );
  }
  return new ModelRegistryClient({ baseUrl: url, token: nonEmpty(flags.token) });
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value;
}

/** `1700000000000` → `2023-11-14T22:13:20Z`. */
function when(epochMs: string | undefined): string {
  if (epochMs === undefined || !/^[0-9]+$/.test(epochMs)) return '-';
  return new Date(Number(epochMs)).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function latest(versions: readonly ModelVersion[]): ModelVersion | undefined {
  const key = (v: ModelVersion) => [Number(v.createTimeSinceEpoch ?? 0), Number(v.id)] as const;
  return [...versions].sort((a, b) => key(b)[0] - key(a)[0] || key(b)[1] - key(a)[1])[0];
}

function maxEpoch(values: readonly (string | undefined)[]): string | undefined {
  const numbers = values.filter((v): v is string => v !== undefined && /^[0-9]+$/.test(v)).map(Number);
  return numbers.length === 0 ? undefined : String(Math.max(...numbers));
}

/** Rows as left-aligned columns separated by two spaces. */
function table(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows
    .map((row) =>
      row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join('  '),
    )
    .join('\n');
}

function registerCommand(): Command {
  return withRegistryOptions(
    new Command('register')
      .description('Register a model version and where its files are in a model registry')
      .argument('<name>', 'registered model name (created when absent)')
      .requiredOption(
        '--version <version>',
        'model version name, e.g. 1 or 2024-06-01 (must be new for the model)',
      )
      .requiredOption(
        '--uri <uri>',
        'where the model files are, e.g. s3://bucket/mnist/1 or oci://registry/mnist:1',
      )
      .requiredOption('--format <name>', 'model format name, e.g. onnx')
      .option('--format-version <version>', 'model format version, e.g. 1.15 (ONNX IR or opset)')
      .option('--description <text>', 'description of the version (and of the model, when this creates it)'),
  )
    .addHelpText(
      'after',
      `
Finds the registered model by name (creating it when absent), creates the version, then the
version's model artifact with the URI and format. A version name that exists already is refused:
versions are immutable, register a new one.

Examples:
  $ aiedge model register mnist --version 1 --uri s3://models/mnist/1 --format onnx \\
      --registry http://127.0.0.1:8080 --token "$AIEDGE_TOKEN"
  $ AIEDGE_REGISTRY_URL=http://core:8080 aiedge model register mnist --version 2 \\
      --uri oci://core:8080/models/mnist:2 --format onnx --format-version 1.15
`,
    )
    .action(
      async (
        name: string,
        flags: RegistryFlags & {
          version: string;
          uri: string;
          format: string;
          formatVersion?: string;
          description?: string;
        },
      ) => {
        const client = clientOf(flags);
        const description = flags.description !== undefined ? { description: flags.description } : {};
        let model = await client.findRegisteredModel(name);
        let createdModel = false;
        if (model === undefined) {
          try {
            model = await client.createRegisteredModel({ name, ...description });
            createdModel = true;
          } catch (error) {
            // Someone registered it in between: use theirs.
            model = error instanceof ConflictError ? await client.findRegisteredModel(name) : undefined;
            if (model === undefined) throw error;
          }
        }
        process.stdout.write(`registered model ${name} (id ${model.id})${createdModel ? ' created' : ''}\n`);
        let version: ModelVersion;
        try {
          version = await client.createModelVersion(model.id, {
            name: flags.version,
            state: 'LIVE',
            ...description,
          });
        } catch (error) {
          if (!(error instanceof ConflictError)) throw error;
          const existing = await client.findModelVersion(model.id, flags.version);
          throw new ConflictError(
            `model ${name} already has version ${flags.version}` +
              (existing !== undefined ? ` (model version ${existing.id})` : '') +
              ': versions are immutable; register another --version',
            { cause: error },
          );
        }
        process.stdout.write(`model version ${version.name} (id ${version.id}) created\n`);
        let artifact: RegistryArtifact;
        try {
          artifact = await client.createVersionArtifact(version.id, {
            name,
            uri: flags.uri,
            modelFormatName: flags.format,
            ...(flags.formatVersion !== undefined ? { modelFormatVersion: flags.formatVersion } : {}),
            state: 'LIVE',
          });
        } catch (error) {
          process.stderr.write(
            `aiedge: model version ${version.id} was created, but its model artifact was not; ` +
              'the version has no files until one is attached\n',
          );
          throw error;
        }
        process.stdout.write(`model artifact ${artifact.id} created: ${flags.format} ${flags.uri}\n`);
      },
    );
}

function listCommand(): Command {
  return withRegistryOptions(
    new Command('list')
      .description('List the registered models of a model registry with their latest version')
      .option('--json', 'print JSON: [{registeredModel, latestVersion, versionCount}]'),
  )
    .addHelpText(
      'after',
      `
Examples:
  $ aiedge model list --registry http://127.0.0.1:8080 --token "$AIEDGE_TOKEN"
  $ AIEDGE_REGISTRY_URL=http://core:8080 aiedge model list --json
`,
    )
    .action(async (flags: RegistryFlags & { json?: boolean }) => {
      const client = clientOf(flags);
      const models = await client.listRegisteredModels();
      const rows: {
        registeredModel: RegisteredModel;
        latestVersion: ModelVersion | null;
        versionCount: number;
        updated: string | undefined;
      }[] = [];
      for (const registeredModel of models) {
        const versions = await client.listModelVersions(registeredModel.id);
        rows.push({
          registeredModel,
          latestVersion: latest(versions) ?? null,
          versionCount: versions.length,
          updated: maxEpoch([
            registeredModel.lastUpdateTimeSinceEpoch,
            ...versions.map((v) => v.lastUpdateTimeSinceEpoch),
          ]),
        });
      }
      if (flags.json === true) {
        const out = rows.map(({ registeredModel, latestVersion, versionCount }) => ({
          registeredModel,
          latestVersion,
          versionCount,
        }));
        process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
        return;
      }
      if (rows.length === 0) {
        process.stdout.write(`no registered models at ${client.root}\n`);
        return;
      }
      const lines = [
        ['NAME', 'LATEST VERSION', 'VERSIONS', 'STATE', 'UPDATED'],
        ...rows.map((r) => [
          r.registeredModel.name,
          r.latestVersion?.name ?? '-',
          String(r.versionCount),
          r.registeredModel.state ?? '-',
          when(r.updated),
        ]),
      ];
      process.stdout.write(`${table(lines)}\n`);
    });
}

function showCommand(): Command {
  return withRegistryOptions(
    new Command('show')
      .description('Show a registered model with its versions and their artifacts')
      .argument('<name>', 'registered model name')
      .option('--json', 'print JSON: {registeredModel, versions: [{modelVersion, artifacts}]}'),
  )
    .addHelpText(
      'after',
      `
Examples:
  $ aiedge model show mnist --registry http://127.0.0.1:8080 --token "$AIEDGE_TOKEN"
  $ AIEDGE_REGISTRY_URL=http://core:8080 aiedge model show mnist --json
`,
    )
    .action(async (name: string, flags: RegistryFlags & { json?: boolean }) => {
      const client = clientOf(flags);
      const registeredModel = await client.findRegisteredModel(name);
      if (registeredModel === undefined) {
        throw new NotFoundError(
          `no registered model named ${JSON.stringify(name)} at ${client.root} (see aiedge model list)`,
        );
      }
      const versions = [];
      for (const modelVersion of await client.listModelVersions(registeredModel.id)) {
        versions.push({ modelVersion, artifacts: await client.listVersionArtifacts(modelVersion.id) });
      }
      if (flags.json === true) {
        process.stdout.write(`${JSON.stringify({ registeredModel, versions }, null, 2)}\n`);
        return;
      }
      const out: string[] = [
        `${registeredModel.name} (registered model ${registeredModel.id}, ${registeredModel.state ?? 'LIVE'})`,
      ];
      const facts: [string, string | undefined][] = [
        ['description', registeredModel.description],
        ['owner', registeredModel.owner],
        ['externalId', registeredModel.externalId],
        ['created', when(registeredModel.createTimeSinceEpoch)],
        ['updated', when(registeredModel.lastUpdateTimeSinceEpoch)],
      ];
      for (const [key, value] of facts)
        if (value !== undefined && value !== '') out.push(`  ${key}: ${value}`);
      out.push(versions.length === 0 ? 'versions: none' : 'versions:');
      for (const { modelVersion: v, artifacts } of versions) {
        const extra = [
          v.state ?? 'LIVE',
          `created ${when(v.createTimeSinceEpoch)}`,
          ...(v.author !== undefined ? [`by ${v.author}`] : []),
        ];
        out.push(`  ${v.name} (model version ${v.id}, ${extra.join(', ')})`);
        if (v.description !== undefined && v.description !== '')
          out.push(`    description: ${v.description}`);
        if (artifacts.length === 0) out.push('    no artifacts');
        for (const a of artifacts) {
          const format =
            a.artifactType === 'model-artifact'
              ? [a.modelFormatName, a.modelFormatVersion].filter((x) => x !== undefined).join(' ')
              : '';
          out.push(
            `    ${a.artifactType} ${a.id}${a.name !== undefined ? ` ${a.name}` : ''}: ${[format, a.uri ?? '(no uri)'].filter((x) => x !== '').join(' ')}`,
          );
        }
      }
      process.stdout.write(`${out.join('\n')}\n`);
    });
}
