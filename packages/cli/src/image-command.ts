import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Command, Option } from 'commander';
import {
  RegistryClient,
  buildInferenceImage,
  formatReference,
  indexMediaTypes,
  parsePlatform,
  parseReference,
  type ContentStore,
  type Descriptor,
  type ImageConfig,
  type ImageIndex,
  type ImageManifest,
} from '@aiedge/oci';
import { InputError } from '@aiedge/protocol';
import { bundleRuntime, collect } from '@aiedge/runtime';
import { loadImage, openStore, parseLocation, storeImage, tagLocally } from './_image-source.js';

interface RegistryFlags {
  readonly store?: string;
  readonly insecure?: boolean;
  readonly ca?: string;
  readonly quiet?: boolean;
}

function mb(bytes: number): string {
  if (bytes < 1e3) return `${bytes} B`;
  if (bytes < 1e6) return `${(bytes / 1e3).toFixed(1)} kB`;
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

function short(digest: string): string {
  return digest.slice(0, 19);
}

/** A registry client configured from the common flags, with progress on stderr. */
async function clientFor(flags: RegistryFlags): Promise<RegistryClient> {
  const ca = flags.ca === undefined ? undefined : await readFile(resolve(flags.ca));
  return new RegistryClient({
    ...(flags.insecure === true ? { insecure: true } : {}),
    ...(ca !== undefined ? { ca } : {}),
    ...(flags.quiet === true
      ? {}
      : {
          onProgress: (e) => {
            if (e.action === 'download' || e.action === 'upload') {
              if (e.bytes === e.total)
                process.stderr.write(`  ${e.action}ed ${short(e.digest)} ${mb(e.total)}\n`);
            } else {
              process.stderr.write(`  ${e.action} ${short(e.digest)} ${mb(e.total)}\n`);
            }
          },
        }),
  });
}

/** One registry client per command run, created on first use and closed when the command ends. */
interface LazyClient {
  readonly get: () => RegistryClient;
  readonly ready: () => Promise<void>;
  readonly close: () => Promise<void>;
}

function lazyClient(flags: RegistryFlags): LazyClient {
  let client: RegistryClient | undefined;
  return {
    ready: async () => {
      client ??= await clientFor(flags);
    },
    get: () => {
      if (client === undefined) throw new Error('registry client used before ready()');
      return client;
    },
    close: async () => {
      await client?.close();
    },
  };
}

/** Runs a command body with a registry client that is closed afterwards (idle sockets would keep the process alive). */
async function withClient<T>(flags: RegistryFlags, body: (client: LazyClient) => Promise<T>): Promise<T> {
  const client = lazyClient(flags);
  await client.ready();
  try {
    return await body(client);
  } finally {
    await client.close();
  }
}

function withRegistryOptions(command: Command): Command {
  return command
    .addOption(
      new Option(
        '--store <dir>',
        'local content store (default $AIEDGE_STORE or ~/.local/share/aiedge/store)',
      ),
    )
    .addOption(new Option('--insecure', 'allow plain HTTP to registries that are not on localhost'))
    .addOption(new Option('--ca <file>', 'PEM file of a CA to trust for registry TLS'))
    .addOption(new Option('-q, --quiet', 'no progress output'));
}

function parseLabels(values: readonly string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const v of values) {
    const at = v.indexOf('=');
    if (at <= 0) throw new InputError(`--label ${JSON.stringify(v)} is not KEY=VALUE`);
    labels[v.slice(0, at)] = v.slice(at + 1);
  }
  return labels;
}

/** A summary of an image for people: platforms, layers, sizes, labels. */
async function describeImage(store: ContentStore, root: Descriptor): Promise<Record<string, unknown>> {
  const manifests: Descriptor[] = indexMediaTypes.includes(root.mediaType)
    ? [...(await store.readJson<ImageIndex>(root.digest)).manifests]
    : [root];
  const images = [];
  for (const m of manifests) {
    const manifest = await store.readJson<ImageManifest>(m.digest);
    const config = (await store.has(manifest.config.digest))
      ? await store.readJson<ImageConfig>(manifest.config.digest)
      : undefined;
    images.push({
      digest: m.digest,
      platform: config === undefined ? m.platform : `${config.os}/${config.architecture}`,
      size: manifest.layers.reduce((n, l) => n + l.size, manifest.config.size),
      layers: manifest.layers.map((l, i) => ({
        digest: l.digest,
        size: l.size,
        createdBy: config?.history?.filter((h) => h.empty_layer !== true)[i]?.created_by,
      })),
      entrypoint: config?.config?.Entrypoint,
      cmd: config?.config?.Cmd,
      user: config?.config?.User,
      labels: config?.config?.Labels,
    });
  }
  return { digest: root.digest, mediaType: root.mediaType, size: root.size, images };
}

/** `aiedge image`: build, move and inspect OCI images. */
export function imageCommand(): Command {
  const image = new Command('image').description(
    'Build, push, pull and inspect OCI inference images (no daemon needed)',
  );

  withRegistryOptions(
    image
      .command('build')
      .description('Build an inference image: base + aiedge serve runtime + the model, one layer each')
      .requiredOption('--model <path>', 'directory with one .onnx file at its top level (or the .onnx file)')
      .requiredOption('--name <name>', 'model name, served at /v2/models/<name>')
      .requiredOption('--version <n>', 'model version (a positive integer)')
      .requiredOption('--tag <ref>', 'image reference, e.g. localhost:5000/models/mnist:1')
      .option(
        '--base <host|ref>',
        "base: 'host' (this machine's Node runtime) or an image reference / oci:DIR",
        'host',
      )
      .option(
        '--platform <list>',
        'platforms, e.g. linux/amd64,linux/arm64 (default: host, or every platform of the base)',
      )
      .option('--output <dest>', 'also write the image to oci:DIR or oci-archive:FILE')
      .option('--push', 'push the image to --tag')
      .option('--label <k=v>', 'extra label (repeatable)', collect),
  )
    .addHelpText(
      'after',
      `
The image runs \`aiedge serve\` on /models as a non-root user (1001, group 0: works under
OpenShift's random UIDs). Base and runtime layers are byte-identical across model versions, so
version 2 of a model adds exactly one layer. Same inputs give the same digest
(set SOURCE_DATE_EPOCH to stamp a creation time).

Examples:
  $ aiedge image build --model ./models/mnist/1 --name mnist --version 1 --tag localhost:5000/models/mnist:1 --push
  $ aiedge image build --model ./mnist.onnx --name mnist --version 2 --tag mnist:2 --output oci-archive:mnist-2.tar
  $ aiedge image build --model ./m --name m --version 1 --tag reg.example.com/m:1 \\
      --base registry.access.redhat.com/ubi9/nodejs-20-minimal:latest --platform linux/amd64,linux/arm64 --push
`,
    )
    .action(
      async (
        flags: RegistryFlags & {
          model: string;
          name: string;
          version: string;
          tag: string;
          base: string;
          platform?: string;
          output?: string;
          push?: boolean;
          label?: string[];
        },
      ) => {
        const tag = parseReference(flags.tag);
        const output = flags.output === undefined ? undefined : parseLocation(flags.output);
        if (output?.kind === 'registry')
          throw new InputError(
            `--output ${flags.output}: expected oci:DIR or oci-archive:FILE (use --push for registries)`,
          );
        const platforms = flags.platform?.split(',').map((p) => parsePlatform(p.trim()));
        const store = await openStore(flags.store);
        await withClient(flags, async (client) => {
          const log = (line: string): void => {
            if (flags.quiet !== true) process.stderr.write(`${line}\n`);
          };
          let base: { root: Descriptor; name: string } | undefined;
          if (flags.base !== 'host') {
            log(`base ${flags.base}`);
            base = { root: await loadImage(store, parseLocation(flags.base), client.get), name: flags.base };
          }
          const started = performance.now();
          log(`building ${formatReference(tag)} from ${flags.model}`);
          const built = await buildInferenceImage({
            store,
            modelPath: resolve(flags.model),
            name: flags.name,
            version: flags.version,
            runtime: (architecture) => bundleRuntime({ architecture }),
            ...(base !== undefined ? { base } : {}),
            ...(platforms !== undefined ? { platforms } : {}),
            labels: parseLabels(flags.label ?? []),
          });
          await tagLocally(store, tag, built.root);
          for (const m of built.manifests) {
            log(
              `  ${m.descriptor.platform?.os}/${m.descriptor.platform?.architecture} ${m.descriptor.digest}`,
            );
            log(`    base    ${m.base.map((b) => `${short(b.digest)} ${mb(b.size)}`).join(', ')}`);
            log(`    runtime ${short(m.runtime.digest)} ${mb(m.runtime.size)}`);
            log(`    model   ${short(m.model.digest)} ${mb(m.model.size)}`);
          }
          log(`built in ${((performance.now() - started) / 1000).toFixed(1)} s`);
          if (output !== undefined) log(`wrote ${await storeImage(store, built.root, output, client.get)}`);
          if (flags.push === true) {
            // Base layers already in the registry are mounted from the base's repository, not uploaded.
            const baseRef = base === undefined ? undefined : parseLocation(base.name);
            const mountFrom =
              baseRef?.kind === 'registry' && baseRef.reference.registry === tag.registry
                ? baseRef.reference.repository
                : undefined;
            const result = await client
              .get()
              .push(store, built.root, tag, mountFrom !== undefined ? { mountFrom } : {});
            log(
              `pushed ${formatReference(tag)}: ${mb(result.uploadedBytes)} uploaded, ${result.skippedBlobs} blobs already there, ${result.mountedBlobs} mounted`,
            );
          }
          console.log(built.root.digest);
        });
      },
    );

  withRegistryOptions(
    image
      .command('push')
      .description('Copy an image to a registry')
      .argument(
        '<source>',
        'image reference (built or pulled locally), oci:DIR[:NAME] or oci-archive:FILE[:NAME]',
      )
      .argument('<destination>', 'registry reference, e.g. localhost:5000/models/mnist:1'),
  )
    .addHelpText(
      'after',
      `
Examples:
  $ aiedge image push localhost:5000/models/mnist:1 registry.example.com/models/mnist:1
  $ aiedge image push oci-archive:mnist-1.tar localhost:5000/models/mnist:1
`,
    )
    .action(async (source: string, destination: string, flags: RegistryFlags) => {
      const store = await openStore(flags.store);
      await withClient(flags, async (client) => {
        const root = await loadImage(store, parseLocation(source), client.get);
        const dst = parseLocation(destination);
        if (dst.kind !== 'registry')
          throw new InputError(`destination ${destination} must be a registry reference`);
        const result = await client.get().push(store, root, dst.reference);
        await tagLocally(store, dst.reference, root);
        if (flags.quiet !== true) {
          process.stderr.write(
            `pushed ${formatReference(dst.reference)}: ${mb(result.uploadedBytes)} uploaded, ${result.skippedBlobs} blobs already there\n`,
          );
        }
        console.log(result.digest);
      });
    });

  withRegistryOptions(
    image
      .command('pull')
      .description('Pull an image from a registry into the local store (every blob digest-verified)')
      .argument('<reference>', 'image reference')
      .option('--output <dest>', 'also write it to oci:DIR or oci-archive:FILE'),
  )
    .addHelpText(
      'after',
      `\nExamples:\n  $ aiedge image pull localhost:5000/models/mnist:1\n  $ aiedge image pull localhost:5000/models/mnist:1 --output oci:./mnist-layout\n`,
    )
    .action(async (reference: string, flags: RegistryFlags & { output?: string }) => {
      const store = await openStore(flags.store);
      await withClient(flags, async (client) => {
        const location = parseLocation(reference);
        const root = await loadImage(store, location, client.get, { preferLocal: false });
        if (flags.output !== undefined) {
          const out = await storeImage(store, root, parseLocation(flags.output), client.get);
          if (flags.quiet !== true) process.stderr.write(`wrote ${out}\n`);
        }
        console.log(root.digest);
      });
    });

  withRegistryOptions(
    image
      .command('inspect')
      .description('Show an image: platforms, layers and sizes, entrypoint, user, labels')
      .argument('<image>', 'image reference, oci:DIR[:NAME] or oci-archive:FILE[:NAME]')
      .option('--raw', 'print the manifest or index as stored'),
  )
    .addHelpText(
      'after',
      `\nExamples:\n  $ aiedge image inspect localhost:5000/models/mnist:1\n  $ aiedge image inspect oci-archive:mnist-1.tar --raw\n`,
    )
    .action(async (reference: string, flags: RegistryFlags & { raw?: boolean }) => {
      const store = await openStore(flags.store);
      await withClient({ ...flags, quiet: true }, async (client) => {
        const root = await loadImage(store, parseLocation(reference), client.get);
        if (flags.raw === true) console.log((await store.readBytes(root.digest)).toString('utf8'));
        else console.log(JSON.stringify(await describeImage(store, root), null, 2));
      });
    });

  withRegistryOptions(
    image
      .command('save')
      .description('Write an image as an oci-archive file (for air-gapped sites)')
      .argument('<image>', 'image reference or oci:DIR')
      .requiredOption('-o, --output <file>', 'archive file to write'),
  )
    .addHelpText('after', `\nExamples:\n  $ aiedge image save localhost:5000/models/mnist:1 -o mnist-1.tar\n`)
    .action(async (reference: string, flags: RegistryFlags & { output: string }) => {
      const store = await openStore(flags.store);
      await withClient(flags, async (client) => {
        const root = await loadImage(store, parseLocation(reference), client.get);
        const name = parseLocation(reference);
        const refName = name.kind === 'registry' ? formatReference(name.reference) : undefined;
        await storeImage(
          store,
          root,
          { kind: 'oci-archive', path: resolve(flags.output), refName },
          client.get,
        );
        console.log(root.digest);
      });
    });

  withRegistryOptions(
    image
      .command('load')
      .description('Load an oci-archive file into the local store')
      .argument('<file>', 'archive written by `aiedge image save`, skopeo or podman (oci-archive)')
      .option('--tag <ref>', 'remember the image under this reference'),
  )
    .addHelpText(
      'after',
      `\nExamples:\n  $ aiedge image load mnist-1.tar --tag localhost:5000/models/mnist:1\n`,
    )
    .action(async (file: string, flags: RegistryFlags & { tag?: string }) => {
      const store = await openStore(flags.store);
      const location = parseLocation(file.startsWith('oci-archive:') ? file : `oci-archive:${file}`);
      const root = await loadImage(store, location, () => {
        throw new InputError('load reads archives only');
      });
      if (flags.tag !== undefined) await tagLocally(store, parseReference(flags.tag), root);
      console.log(root.digest);
    });

  return image;
}
