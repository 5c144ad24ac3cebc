/**
 * The `registry` model source: a version of a registered model in a Kubeflow Model Registry
 * (`/api/model_registry/v1alpha3`, served by the core or any registry). The version's model artifact
 * is chosen (ONNX preferred; `oci://` images, which our own push registers, only when nothing else
 * is there) and its `uri` fetched with the matching source: `s3://`, `http(s)://` (with a `sha256`
 * custom property), `git+…`, `oci://`, `file://` or a plain path.
 */
import { fileURLToPath } from 'node:url';
import {
  InputError,
  MODEL_REGISTRY_API_PATH,
  NotFoundError,
  UnauthorizedError,
  UnavailableError,
  describeValue,
  type CustomProperties,
  type ModelArtifact,
  type ModelVersion,
  type RegisteredModel,
  type RegistryArtifact,
} from '@aiedge/protocol';
import type { FetchedModel, ModelSource, StepContext } from '../types.js';
import { displayUrl, secretFromEnv } from './_files.js';
import { GitSource } from './git.js';
import { HttpSource } from './http.js';
import { LocalSource } from './local.js';
import { OciSource } from './oci.js';
import { S3Source } from './s3.js';

/** Settings of {@link RegistrySource} (the `spec.source.registry` block). */
export interface RegistrySourceSpec {
  /** Server URL; the API path is appended unless the URL ends with it. */
  readonly url: string;
  readonly model: string;
  readonly version: string;
  /** Environment variable holding a bearer token. */
  readonly tokenEnv?: string;
}

const PAGE_SIZE = 100;
const MAX_PAGES = 1000;
const REQUEST_TIMEOUT_MS = 30_000;

/** Resolves a registered model version to its artifact and fetches that. */
export class RegistrySource implements ModelSource {
  readonly kind = 'registry';
  readonly #spec: RegistrySourceSpec;
  readonly #field: string;
  readonly #root: string;

  constructor(spec: RegistrySourceSpec, field = 'spec.source.registry') {
    let url: URL;
    try {
      url = new URL(spec.url);
    } catch {
      throw new InputError(`${field}.url ${describeValue(displayUrl(spec.url))} is not a URL`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new InputError(`${field}.url must be an http(s) URL`);
    }
    const root = `${url.origin}${url.pathname}`.replace(/\/+$/, '');
    this.#root = root.endsWith(MODEL_REGISTRY_API_PATH) ? root : `${root}${MODEL_REGISTRY_API_PATH}`;
    this.#spec = spec;
    this.#field = field;
  }

  /** Looks up model, version and artifact, then fetches the artifact's URI into `dir`. */
  async fetch(context: StepContext, dir: string): Promise<FetchedModel> {
    const { model, version } = this.#spec;
    const token =
      this.#spec.tokenEnv === undefined
        ? undefined
        : secretFromEnv(context.env, this.#spec.tokenEnv, `${this.#field}.tokenEnv`);
    const call = <T>(path: string): Promise<T | undefined> => this.#get<T>(path, token, context.signal);
    const registered = await call<RegisteredModel>(`/registered_model?name=${encodeURIComponent(model)}`);
    if (registered === undefined) {
      throw new NotFoundError(
        `model registry ${this.#root} has no registered model named ${JSON.stringify(model)}`,
      );
    }
    const found = await call<ModelVersion>(
      `/model_version?name=${encodeURIComponent(version)}&parentResourceId=${encodeURIComponent(registered.id)}`,
    );
    if (found === undefined) {
      throw new NotFoundError(
        `model registry ${this.#root}: model ${JSON.stringify(model)} has no version ${JSON.stringify(version)}`,
      );
    }
    const artifacts: RegistryArtifact[] = [];
    let pageToken = '';
    for (let page = 0; page < MAX_PAGES; page++) {
      const query = `pageSize=${PAGE_SIZE}&orderBy=ID&sortOrder=ASC${pageToken === '' ? '' : `&nextPageToken=${encodeURIComponent(pageToken)}`}`;
      const listed = await call<{ items?: RegistryArtifact[]; nextPageToken?: string }>(
        `/model_versions/${encodeURIComponent(found.id)}/artifacts?${query}`,
      );
      artifacts.push(...(listed?.items ?? []));
      pageToken = listed?.nextPageToken ?? '';
      if (pageToken === '') break;
    }
    const artifact = chooseArtifact(artifacts);
    const what = `model ${JSON.stringify(model)} version ${JSON.stringify(version)}`;
    if (artifact === undefined) {
      throw new NotFoundError(`model registry ${this.#root}: ${what} has no model artifact with a uri`);
    }
    const uri = artifact.uri as string;
    context.log(`${what}: artifact ${artifact.id} ${displayUrl(uri)}`);
    const source = sourceForUri(
      uri,
      artifact.customProperties,
      context,
      `${what} artifact ${artifact.id} uri`,
    );
    const fetched = await source.fetch(context, dir);
    return {
      ...fetched,
      origin: `${this.#root}#${model}/${version}/artifact/${artifact.id} → ${fetched.origin}`,
    };
  }

  async #get<T>(path: string, token: string | undefined, signal: AbortSignal): Promise<T | undefined> {
    const url = `${this.#root}${path}`;
    const shownPath = path.split('?')[0] ?? path;
    let response: Response;
    try {
      response = await fetch(url, {
        headers: {
          accept: 'application/json',
          ...(token !== undefined ? { authorization: `Bearer ${token}` } : {}),
        },
        signal: AbortSignal.any([signal, AbortSignal.timeout(REQUEST_TIMEOUT_MS)]),
      });
    } catch (error) {
      if (signal.aborted) throw error;
      const cause = (error as { cause?: { message?: string } }).cause?.message ?? (error as Error).message;
      throw new UnavailableError(`cannot reach the model registry at ${this.#root}: ${cause}`, {
        cause: error,
      });
    }
    const text = await response.text();
    if (response.status === 404) return undefined;
    if (!response.ok) {
      let message = `HTTP ${response.status}`;
      try {
        const body = JSON.parse(text) as { message?: unknown };
        if (typeof body.message === 'string') message += `: ${body.message}`;
      } catch {
        // not JSON: the status says enough
      }
      const full = `model registry ${this.#root}: GET ${shownPath}: ${message}`;
      if (response.status === 401 || response.status === 403) {
        throw new UnauthorizedError(`${full}${token === undefined ? ` (set ${this.#field}.tokenEnv)` : ''}`);
      }
      throw response.status >= 500 ? new UnavailableError(full) : new InputError(full);
    }
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new UnavailableError(`model registry ${this.#root}: GET ${shownPath}: the answer is not JSON`);
    }
  }
}

/**
 * The artifact to fetch: model artifacts with a `uri`, deleted or abandoned ones last; non-`oci://` before
 * `oci://` (images our push registered); ONNX before other formats; then the oldest.
 */
export function chooseArtifact(artifacts: readonly RegistryArtifact[]): ModelArtifact | undefined {
  const candidates = artifacts.filter(
    (a): a is ModelArtifact =>
      a.artifactType === 'model-artifact' && typeof a.uri === 'string' && a.uri !== '',
  );
  const rank = (a: ModelArtifact): number =>
    (a.state === 'DELETED' || a.state === 'MARKED_FOR_DELETION' || a.state === 'ABANDONED' ? 4 : 0) +
    ((a.uri ?? '').startsWith('oci://') ? 2 : 0) +
    ((a.modelFormatName ?? '').toLowerCase() === 'onnx' ? 0 : 1);
  return [...candidates].sort((a, b) => rank(a) - rank(b) || Number(a.id) - Number(b.id))[0];
}

function stringProperty(properties: CustomProperties | undefined, ...names: string[]): string | undefined {
  for (const name of names) {
    const value = properties?.[name];
    if (value?.metadataType === 'MetadataStringValue' && value.string_value !== '') return value.string_value;
  }
  return undefined;
}

/** The source that fetches an artifact URI. */
export function sourceForUri(
  uri: string,
  properties: CustomProperties | undefined,
  context: Pick<StepContext, 'env'>,
  field: string,
): ModelSource {
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(uri)?.[1]?.toLowerCase();
  if (scheme === undefined || scheme.length === 1) {
    return new LocalSource({ path: uri }, field); // a plain path (or a Windows drive letter)
  }
  switch (scheme) {
    case 'file':
      return new LocalSource({ path: fileURLToPath(uri) }, field);
    case 's3': {
      // s3://bucket/key, optionally ?endpoint=…&defaultRegion=… (the model-registry Python client's form).
      const url = new URL(uri);
      const bucket = url.hostname;
      const key = decodeURIComponent(url.pathname.replace(/^\/+/, ''));
      if (bucket === '') throw new InputError(`${field} ${describeValue(uri)} names no bucket`);
      const endpoint =
        url.searchParams.get('endpoint') ??
        stringProperty(properties, 'endpoint', 'endpoint_url', 's3_endpoint', 'AWS_S3_ENDPOINT') ??
        context.env['AWS_S3_ENDPOINT'] ??
        context.env['AWS_ENDPOINT_URL_S3'] ??
        context.env['AWS_ENDPOINT_URL'];
      const region =
        url.searchParams.get('defaultRegion') ??
        stringProperty(properties, 'region', 'AWS_DEFAULT_REGION') ??
        context.env['AWS_DEFAULT_REGION'] ??
        context.env['AWS_REGION'];
      const where = key === '' || key.endsWith('/') ? { prefix: key } : { key };
      return new S3Source(
        {
          bucket,
          ...where,
          ...(endpoint !== undefined && endpoint !== '' ? { endpoint } : {}),
          ...(region !== undefined && region !== '' ? { region } : {}),
        },
        field,
      );
    }
    case 'http':
    case 'https': {
      const sha256 = stringProperty(properties, 'sha256', 'SHA256', 'digest')?.replace(/^sha256:/, '');
      if (sha256 === undefined || !/^[0-9a-f]{64}$/.test(sha256)) {
        throw new InputError(
          `${field} is an http(s) URL (${displayUrl(uri)}): the artifact needs a custom property sha256 (MetadataStringValue, 64 hex digits) to verify the download`,
        );
      }
      return new HttpSource({ url: uri, sha256 }, field);
    }
    case 'oci':
      return new OciSource({ ref: uri.slice('oci://'.length) }, field);
    default:
      if (scheme.startsWith('git+')) return new GitSource(parseGitUri(uri, field), field);
      throw new InputError(
        `${field} has unsupported scheme ${scheme}: (supported: s3, http, https, git+https, git+file, oci, file, or a path)`,
      );
  }
}

/** `git+https://host/repo.git[@ref-or-commit][#subdirectory=path]` (pip's VCS URL form). */
export function parseGitUri(
  uri: string,
  field: string,
): { url: string; ref?: string; commit?: string; path?: string } {
  const hash = uri.indexOf('#');
  const fragment = hash < 0 ? '' : uri.slice(hash + 1);
  let rest = (hash < 0 ? uri : uri.slice(0, hash)).slice('git+'.length);
  const schemeEnd = rest.indexOf('://');
  if (schemeEnd < 0) throw new InputError(`${field} ${describeValue(displayUrl(uri))} is not a git+<url>`);
  const pathStart = rest.indexOf('/', schemeEnd + 3);
  const at = pathStart < 0 ? -1 : rest.lastIndexOf('@');
  let revision: string | undefined;
  if (at > pathStart && pathStart >= 0) {
    revision = rest.slice(at + 1);
    rest = rest.slice(0, at);
  }
  const path = new URLSearchParams(fragment).get('subdirectory') ?? undefined;
  const isCommit = revision !== undefined && /^[0-9a-f]{40}$/.test(revision);
  return {
    url: rest,
    ...(revision !== undefined && revision !== '' && !isCommit ? { ref: revision } : {}),
    ...(isCommit ? { commit: revision as string } : {}),
    ...(path !== undefined && path !== '' ? { path } : {}),
  };
}
