/**
 * A small client of the Kubeflow Model Registry REST API (`/api/model_registry/v1alpha3`): works
 * against ai-edge core and any other registry that serves this API. Failed requests become ai-edge
 * errors carrying the registry's own message.
 */
import {
  ConflictError,
  ForbiddenError,
  InputError,
  MODEL_REGISTRY_API_PATH,
  NotFoundError,
  UnauthorizedError,
  UnavailableError,
  describeValue,
  type AiEdgeError,
  type ModelArtifact,
  type ModelArtifactCreate,
  type ModelVersion,
  type ModelVersionCreate,
  type RegisteredModel,
  type RegisteredModelCreate,
  type RegistryArtifact,
} from '@aiedge/protocol';

/** Options of {@link ModelRegistryClient}. */
export interface ModelRegistryClientOptions {
  /** Server URL such as `http://host:8080`; the API path is appended unless the URL ends with it. */
  readonly baseUrl: string;
  /** Bearer token; none for a registry without authentication. */
  readonly token?: string | undefined;
  /** Time limit of each request. Default 30 s. */
  readonly timeoutMs?: number;
}

interface Page<T> {
  readonly items: T[];
  readonly nextPageToken: string;
}

/** The API root of a server URL, e.g. `http://host:8080` → `http://host:8080/api/model_registry/v1alpha3`. */
export function registryApiRoot(baseUrl: string, what = 'registry URL'): string {
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch {
    throw new InputError(
      `${what} is ${describeValue(baseUrl)}: expected an http(s) URL such as http://127.0.0.1:8080`,
    );
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new InputError(
      `${what} is ${describeValue(baseUrl)}: expected an http(s) URL such as http://127.0.0.1:8080`,
    );
  }
  const root = `${url.origin}${url.pathname}`.replace(/\/+$/, '');
  return root.endsWith(MODEL_REGISTRY_API_PATH) ? root : `${root}${MODEL_REGISTRY_API_PATH}`;
}

function errorFor(status: number, message: string): AiEdgeError {
  switch (status) {
    case 400:
    case 422:
      return new InputError(message);
    case 401:
      return new UnauthorizedError(`${message} (pass --token or set AIEDGE_TOKEN)`);
    case 403:
      return new ForbiddenError(message);
    case 404:
      return new NotFoundError(message);
    case 409:
      return new ConflictError(message);
    default:
      return status < 500 ? new InputError(message) : new UnavailableError(message);
  }
}

/** Client of one model registry. */
export class ModelRegistryClient {
  /** The API root requests go to. */
  readonly root: string;
  readonly #token: string | undefined;
  readonly #timeoutMs: number;

  constructor(options: ModelRegistryClientOptions) {
    this.root = registryApiRoot(options.baseUrl);
    this.#token = options.token === '' ? undefined : options.token;
    this.#timeoutMs = options.timeoutMs ?? 30_000;
  }

  async #request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const url = `${this.root}${path}`;
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.#token !== undefined) headers['authorization'] = `Bearer ${this.#token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let response: Response;
    try {
      response = await fetch(url, {
        method,
        headers,
        signal: AbortSignal.timeout(this.#timeoutMs),
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
    } catch (error) {
      const cause = (error as { cause?: { message?: string } }).cause?.message ?? (error as Error).message;
      throw new UnavailableError(`cannot reach the model registry at ${this.root}: ${cause}`, {
        cause: error,
      });
    }
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (!response.ok) {
      const message =
        typeof parsed === 'object' &&
        parsed !== null &&
        typeof (parsed as { message?: unknown }).message === 'string'
          ? (parsed as { message: string }).message
          : `${response.status} ${response.statusText}${text === '' ? '' : `: ${text.slice(0, 200)}`}`;
      throw errorFor(response.status, `model registry: ${method} ${path.split('?')[0]}: ${message}`);
    }
    if (parsed === undefined) {
      throw new UnavailableError(
        `model registry: ${method} ${path}: the answer is not JSON: ${describeValue(text)}`,
      );
    }
    return parsed as T;
  }

  async #all<T>(path: string): Promise<T[]> {
    const items: T[] = [];
    const separator = path.includes('?') ? '&' : '?';
    let token = '';
    for (let pages = 0; pages < 10_000; pages++) {
      const query = `pageSize=1000&orderBy=ID&sortOrder=ASC${token === '' ? '' : `&nextPageToken=${encodeURIComponent(token)}`}`;
      const page = await this.#request<Page<T>>('GET', `${path}${separator}${query}`);
      items.push(...page.items);
      token = page.nextPageToken ?? '';
      if (token === '') return items;
    }
    throw new UnavailableError(`model registry: GET ${path}: paging did not end`);
  }

  /** The registered model named `name`, or undefined when there is none. */
  async findRegisteredModel(name: string): Promise<RegisteredModel | undefined> {
    try {
      return await this.#request<RegisteredModel>(
        'GET',
        `/registered_model?name=${encodeURIComponent(name)}`,
      );
    } catch (error) {
      if (error instanceof NotFoundError) return undefined;
      throw error;
    }
  }

  /** The version named `name` of registered model `modelId`, or undefined. */
  async findModelVersion(modelId: string, name: string): Promise<ModelVersion | undefined> {
    try {
      return await this.#request<ModelVersion>(
        'GET',
        `/model_version?name=${encodeURIComponent(name)}&parentResourceId=${encodeURIComponent(modelId)}`,
      );
    } catch (error) {
      if (error instanceof NotFoundError) return undefined;
      throw error;
    }
  }

  /** Creates a registered model. */
  createRegisteredModel(body: RegisteredModelCreate): Promise<RegisteredModel> {
    return this.#request('POST', '/registered_models', body);
  }

  /** Creates a version of registered model `modelId`. */
  createModelVersion(
    modelId: string,
    body: Omit<ModelVersionCreate, 'registeredModelId'>,
  ): Promise<ModelVersion> {
    return this.#request('POST', `/registered_models/${encodeURIComponent(modelId)}/versions`, body);
  }

  /** Creates a model artifact in version `versionId`. */
  createVersionArtifact(versionId: string, body: ModelArtifactCreate): Promise<ModelArtifact> {
    return this.#request('POST', `/model_versions/${encodeURIComponent(versionId)}/artifacts`, {
      artifactType: 'model-artifact',
      ...body,
    });
  }

  /** Every registered model. */
  listRegisteredModels(): Promise<RegisteredModel[]> {
    return this.#all('/registered_models');
  }

  /** Every version of registered model `modelId`. */
  listModelVersions(modelId: string): Promise<ModelVersion[]> {
    return this.#all(`/registered_models/${encodeURIComponent(modelId)}/versions`);
  }

  /** Every artifact of model version `versionId`. */
  listVersionArtifacts(versionId: string): Promise<RegistryArtifact[]> {
    return this.#all(`/model_versions/${encodeURIComponent(versionId)}/artifacts`);
  }
}
