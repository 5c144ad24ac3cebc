/**
 * The `s3` model source: one object (`key`) or every object under a `prefix`, through the AWS SDK.
 * Credentials come from the environment variables the spec names, else the original ODH AI Edge
 * `s3-storage-config` JSON file, else the SDK's default chain. Downloads stream to disk (at most
 * {@link S3_CONCURRENCY} at once) and are checked against the listed size and, for single-part
 * uploads, the ETag (the MD5 of the content).
 */
import { readFile, rm } from 'node:fs/promises';
import { Agent as HttpsAgent } from 'node:https';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import {
  GetObjectCommand,
  ListObjectsV2Command,
  S3Client,
  type S3ClientConfig,
  type _Object,
} from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { DigestMismatchError } from '@aiedge/oci';
import {
  InputError,
  NotFoundError,
  UnauthorizedError,
  UnavailableError,
  describeValue,
} from '@aiedge/protocol';
import type { FetchedFile, FetchedModel, ModelSource, StepContext } from '../types.js';
import {
  inside,
  mapLimit,
  progressOf,
  resolveSpecPath,
  safeRelativePath,
  secretFromEnv,
  sortFiles,
  streamToFile,
  type WrittenFile,
} from './_files.js';

/** Settings of {@link S3Source} (the `spec.source.s3` block). */
export interface S3SourceSpec {
  readonly bucket: string;
  readonly key?: string;
  readonly prefix?: string;
  readonly endpoint?: string;
  readonly region?: string;
  readonly forcePathStyle?: boolean;
  readonly storageConfig?: string;
  readonly accessKeyIdEnv?: string;
  readonly secretAccessKeyEnv?: string;
  readonly caFile?: string;
}

/** Objects downloaded at once for a prefix. */
export const S3_CONCURRENCY = 4;

/** The original system's `s3-storage-config` secret content. */
interface StorageConfig {
  readonly type?: string;
  readonly access_key_id?: string;
  readonly secret_access_key?: string;
  readonly endpoint_url?: string;
  readonly region?: string;
  readonly bucket?: string;
}

/** Downloads a model from S3 or an S3-compatible store. */
export class S3Source implements ModelSource {
  readonly kind = 's3';
  readonly #spec: S3SourceSpec;
  readonly #field: string;

  constructor(spec: S3SourceSpec, field = 'spec.source.s3') {
    if ((spec.key === undefined) === (spec.prefix === undefined)) {
      throw new InputError(`${field}: set exactly one of key or prefix`);
    }
    if ((spec.accessKeyIdEnv === undefined) !== (spec.secretAccessKeyEnv === undefined)) {
      throw new InputError(`${field}: set both accessKeyIdEnv and secretAccessKeyEnv, or neither`);
    }
    this.#spec = spec;
    this.#field = field;
  }

  /** Downloads the object or the prefix into `dir`. */
  async fetch(context: StepContext, dir: string): Promise<FetchedModel> {
    const { client, endpoint } = await this.#client(context);
    try {
      const bucket = this.#spec.bucket;
      if (this.#spec.key !== undefined) {
        const key = this.#spec.key;
        const name = safeRelativePath(key.split('/').pop() ?? '', `${this.#field}.key's file name`);
        const got = await this.#download(client, endpoint, key, join(dir, name), context, context.signal);
        context.log(`downloaded s3://${bucket}/${key} (${got.file.bytes} bytes)`);
        return {
          dir,
          files: [{ ...got.file, path: name }],
          origin: `s3://${bucket}/${key}${got.etag === undefined ? '' : `#etag=${got.etag}`}`,
        };
      }
      const prefix = this.#spec.prefix ?? '';
      const objects = await this.#list(client, endpoint, prefix, context.signal);
      const jobs = objects.map((o) => {
        const key = o.Key ?? '';
        let rel = key.slice(prefix.length).replace(/^\/+/, '');
        if (rel === '') rel = key.split('/').pop() ?? key;
        rel = safeRelativePath(rel, `s3://${bucket}/${key}: object path`);
        return { object: o, key, rel };
      });
      context.log(`s3://${bucket}/${prefix}: ${jobs.length} object(s)`);
      const files = await mapLimit(jobs, S3_CONCURRENCY, context.signal, async (job, signal) => {
        const got = await this.#download(client, endpoint, job.key, inside(dir, job.rel), context, signal, {
          ...(job.object.Size !== undefined ? { size: job.object.Size } : {}),
          ...(job.object.ETag !== undefined ? { etag: job.object.ETag } : {}),
        });
        return { ...got.file, path: job.rel } satisfies FetchedFile;
      });
      return { dir, files: sortFiles(files), origin: `s3://${bucket}/${prefix}` };
    } finally {
      client.destroy();
    }
  }

  /** The client, configured from the spec, the storage config file or the SDK defaults. */
  async #client(context: StepContext): Promise<{ client: S3Client; endpoint: string }> {
    const spec = this.#spec;
    let fileConfig: StorageConfig = {};
    if (spec.storageConfig !== undefined) {
      fileConfig = await readStorageConfig(
        resolveSpecPath(context.baseDir, spec.storageConfig),
        `${this.#field}.storageConfig`,
      );
    }
    const endpoint = spec.endpoint ?? fileConfig.endpoint_url;
    const region = spec.region ?? fileConfig.region ?? context.env['AWS_REGION'] ?? 'us-east-1';
    const config: S3ClientConfig = {
      region,
      forcePathStyle: spec.forcePathStyle ?? endpoint !== undefined,
      // Checksums are checked here (size, ETag); the SDK's own validation needs object checksums.
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestChecksumCalculation: 'WHEN_REQUIRED',
      maxAttempts: 3,
      ...(endpoint !== undefined ? { endpoint } : {}),
    };
    if (spec.accessKeyIdEnv !== undefined && spec.secretAccessKeyEnv !== undefined) {
      config.credentials = {
        accessKeyId: secretFromEnv(context.env, spec.accessKeyIdEnv, `${this.#field}.accessKeyIdEnv`),
        secretAccessKey: secretFromEnv(
          context.env,
          spec.secretAccessKeyEnv,
          `${this.#field}.secretAccessKeyEnv`,
        ),
      };
    } else if (fileConfig.access_key_id !== undefined && fileConfig.secret_access_key !== undefined) {
      config.credentials = {
        accessKeyId: fileConfig.access_key_id,
        secretAccessKey: fileConfig.secret_access_key,
      };
    }
    if (spec.caFile !== undefined) {
      const ca = await readFile(resolveSpecPath(context.baseDir, spec.caFile));
      config.requestHandler = new NodeHttpHandler({ httpsAgent: new HttpsAgent({ ca, keepAlive: true }) });
    }
    return { client: new S3Client(config), endpoint: endpoint ?? `AWS S3 (${region})` };
  }

  /** Every object under `prefix` (directory markers left out), following continuation tokens. */
  async #list(client: S3Client, endpoint: string, prefix: string, signal: AbortSignal): Promise<_Object[]> {
    const bucket = this.#spec.bucket;
    const out: _Object[] = [];
    let token: string | undefined;
    do {
      const page = await client
        .send(
          new ListObjectsV2Command({
            Bucket: bucket,
            Prefix: prefix,
            ...(token !== undefined ? { ContinuationToken: token } : {}),
          }),
          { abortSignal: signal },
        )
        .catch((error: unknown) => {
          throw s3Error(error, `listing s3://${bucket}/${prefix} at ${endpoint}`, signal);
        });
      for (const o of page.Contents ?? []) if (o.Key !== undefined && !o.Key.endsWith('/')) out.push(o);
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
    if (out.length === 0) {
      throw new NotFoundError(`no objects under s3://${bucket}/${prefix} at ${endpoint}`);
    }
    return out;
  }

  /** Downloads one object to `path`, checking size and (single-part) ETag. */
  async #download(
    client: S3Client,
    endpoint: string,
    key: string,
    path: string,
    context: StepContext,
    signal: AbortSignal,
    listed: { size?: number; etag?: string } = {},
  ): Promise<{ file: Omit<FetchedFile, 'path'>; etag: string | undefined }> {
    const bucket = this.#spec.bucket;
    const item = `s3://${bucket}/${key}`;
    const got = await client
      .send(new GetObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: signal })
      .catch((error: unknown) => {
        throw s3Error(error, `${item} at ${endpoint}`, signal);
      });
    const size = got.ContentLength ?? listed.size;
    const etag = unquote(got.ETag ?? listed.etag);
    if (got.Body === undefined) throw new UnavailableError(`${item} at ${endpoint}: the answer has no body`);
    const written = await streamToFile(got.Body as Readable, path, {
      signal,
      md5: true,
      onBytes: progressOf(context, item, size),
    });
    const problem = checkDownload(item, written, size, listed.size, etag);
    if (problem !== undefined) {
      await rm(path, { force: true });
      throw new DigestMismatchError(problem);
    }
    return { file: { bytes: written.bytes, sha256: written.sha256 }, etag };
  }
}

/** Why a download does not match what the store said about it, or undefined when it does. */
function checkDownload(
  item: string,
  written: WrittenFile,
  size: number | undefined,
  listedSize: number | undefined,
  etag: string | undefined,
): string | undefined {
  if (size !== undefined && written.bytes !== size) {
    return `${item}: received ${written.bytes} bytes, the store says ${size}`;
  }
  if (listedSize !== undefined && written.bytes !== listedSize) {
    return `${item}: received ${written.bytes} bytes, the listing says ${listedSize}`;
  }
  // A single-part upload's ETag is the MD5 of the content; a multipart one (`…-N`) is not.
  if (etag !== undefined && /^[0-9a-f]{32}$/i.test(etag) && etag.toLowerCase() !== written.md5) {
    return `${item}: received content has MD5 ${String(written.md5)}, but the object's ETag is ${etag}`;
  }
  return undefined;
}

function unquote(etag: string | undefined): string | undefined {
  return etag?.replace(/^W\//, '').replace(/^"|"$/g, '');
}

/** Reads and checks an `s3-storage-config` JSON file (its content is never echoed: it holds secrets). */
async function readStorageConfig(path: string, field: string): Promise<StorageConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new InputError(
      `${field}: cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`,
      {
        cause: error,
      },
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new InputError(`${field}: ${path} is not valid JSON`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new InputError(`${field}: ${path} does not hold a JSON object`);
  }
  const config = parsed as Record<string, unknown>;
  for (const key of ['type', 'access_key_id', 'secret_access_key', 'endpoint_url', 'region', 'bucket']) {
    const value = config[key];
    if (value !== undefined && typeof value !== 'string') {
      throw new InputError(
        `${field}: ${path} field ${key} is ${describeValue(typeof value)}, expected a string`,
      );
    }
  }
  if (config['type'] !== undefined && config['type'] !== 's3') {
    throw new InputError(`${field}: ${path} has type ${describeValue(config['type'])}, expected "s3"`);
  }
  if ((config['access_key_id'] === undefined) !== (config['secret_access_key'] === undefined)) {
    throw new InputError(`${field}: ${path} must hold both access_key_id and secret_access_key, or neither`);
  }
  const endpoint = config['endpoint_url'];
  if (typeof endpoint === 'string' && !/^https?:\/\//.test(endpoint)) {
    throw new InputError(`${field}: ${path} field endpoint_url must be an http(s) URL`);
  }
  return config as StorageConfig;
}

/** Maps an SDK failure to an ai-edge error that names the object (and never a credential). */
function s3Error(error: unknown, what: string, signal: AbortSignal): unknown {
  if (signal.aborted) return error;
  const e = error as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  const status = e.$metadata?.httpStatusCode;
  const name = e.name ?? 'Error';
  if (name === 'NoSuchKey' || name === 'NotFound' || (status === 404 && name !== 'NoSuchBucket')) {
    return new NotFoundError(`${what}: no such object`, { cause: error });
  }
  if (name === 'NoSuchBucket') return new NotFoundError(`${what}: no such bucket`, { cause: error });
  if (
    status === 401 ||
    status === 403 ||
    /AccessDenied|InvalidAccessKeyId|SignatureDoesNotMatch/.test(name)
  ) {
    return new UnauthorizedError(`${what}: access denied (${name})`, { cause: error });
  }
  if (name === 'CredentialsProviderError') {
    return new UnauthorizedError(
      `${what}: no S3 credentials found (set accessKeyIdEnv/secretAccessKeyEnv, storageConfig, or AWS_* variables)`,
      { cause: error },
    );
  }
  return new UnavailableError(`${what}: ${name}${e.message ? `: ${e.message}` : ''}`, { cause: error });
}
