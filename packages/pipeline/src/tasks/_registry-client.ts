/**
 * A small client of the Kubeflow Model Registry REST API (`/api/model_registry/v1alpha3`): just
 * what `push` needs to register an image as a model artifact. Failures carry the registry's message.
 */
import {
  ConflictError,
  ForbiddenError,
  InputError,
  MODEL_REGISTRY_API_PATH,
  NotFoundError,
  UnauthorizedError,
  UnavailableError,
  type AiEdgeError,
  type ModelArtifact,
  type ModelArtifactCreate,
  type ModelVersion,
  type RegisteredModel,
} from '@aiedge/protocol';

function errorFor(status: number, message: string): AiEdgeError {
  if (status === 401) return new UnauthorizedError(message);
  if (status === 403) return new ForbiddenError(message);
  if (status === 404) return new NotFoundError(message);
  if (status === 409) return new ConflictError(message);
  return status < 500 ? new InputError(message) : new UnavailableError(message);
}

/** Client of one model registry. */
export class ModelRegistryClient {
  /** The API root requests go to. */
  readonly root: string;
  readonly #token: string | undefined;
  readonly #signal: AbortSignal | undefined;

  constructor(options: {
    readonly baseUrl: string;
    readonly token?: string | undefined;
    readonly signal?: AbortSignal;
  }) {
    const url = new URL(options.baseUrl);
    const root = `${url.origin}${url.pathname}`.replace(/\/+$/, '');
    this.root = root.endsWith(MODEL_REGISTRY_API_PATH) ? root : `${root}${MODEL_REGISTRY_API_PATH}`;
    this.#token = options.token === '' ? undefined : options.token;
    this.#signal = options.signal;
  }

  async #request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.#token !== undefined) headers['authorization'] = `Bearer ${this.#token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const timeout = AbortSignal.timeout(30_000);
    let response: Response;
    try {
      response = await fetch(`${this.root}${path}`, {
        method,
        headers,
        signal: this.#signal === undefined ? timeout : AbortSignal.any([this.#signal, timeout]),
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
      const m = (parsed as { message?: unknown } | undefined)?.message;
      const message =
        typeof m === 'string' ? m : `${response.status} ${response.statusText} ${text.slice(0, 200)}`;
      throw errorFor(response.status, `model registry: ${method} ${path.split('?')[0] ?? ''}: ${message}`);
    }
    return parsed as T;
  }

  async #find<T>(path: string): Promise<T | undefined> {
    try {
      return await this.#request<T>('GET', path);
    } catch (error) {
      if (error instanceof NotFoundError) return undefined;
      throw error;
    }
  }

  /** The registered model named `name`, or undefined. */
  findRegisteredModel(name: string): Promise<RegisteredModel | undefined> {
    return this.#find(`/registered_model?name=${encodeURIComponent(name)}`);
  }

  /** The version named `name` of registered model `modelId`, or undefined. */
  findModelVersion(modelId: string, name: string): Promise<ModelVersion | undefined> {
    return this.#find(
      `/model_version?name=${encodeURIComponent(name)}&parentResourceId=${encodeURIComponent(modelId)}`,
    );
  }

  /** Creates a registered model. */
  createRegisteredModel(name: string): Promise<RegisteredModel> {
    return this.#request('POST', '/registered_models', { name });
  }

  /** Creates version `name` of registered model `modelId`. */
  createModelVersion(modelId: string, name: string): Promise<ModelVersion> {
    return this.#request('POST', `/registered_models/${encodeURIComponent(modelId)}/versions`, {
      name,
      registeredModelId: modelId,
    });
  }

  /** Creates a model artifact in version `versionId`. */
  createVersionArtifact(versionId: string, body: ModelArtifactCreate): Promise<ModelArtifact> {
    return this.#request('POST', `/model_versions/${encodeURIComponent(versionId)}/artifacts`, {
      artifactType: 'model-artifact',
      ...body,
    });
  }

  /** Registers `uri` as a model artifact of version `version` of model `model`, creating both when absent. */
  async registerArtifact(options: {
    readonly model: string;
    readonly version: string;
    readonly artifact: ModelArtifactCreate;
  }): Promise<ModelArtifact> {
    const model =
      (await this.findRegisteredModel(options.model)) ?? (await this.createRegisteredModel(options.model));
    const version =
      (await this.findModelVersion(model.id, options.version)) ??
      (await this.createModelVersion(model.id, options.version));
    return this.createVersionArtifact(version.id, options.artifact);
  }
}
