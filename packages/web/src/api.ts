/**
 * The core's HTTP API as the dashboard calls it: same origin, the token as a bearer header, errors
 * as {@link ApiError} with the server's own message (problem documents and the model registry's
 * `{code, message}` alike).
 */
import type {
  Deployment,
  ModelArtifact,
  ModelVersion,
  PipelineRun,
  RegisteredModel,
  RunList,
  Site,
  TelemetrySeries,
  TelemetrySeriesMetric,
  TelemetrySummary,
} from '@aiedge/protocol';

/** A refused or failed API call. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code?: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** The list answer of `GET /api/v1/sites`. */
export interface SiteList {
  readonly items: Site[];
  readonly nextCursor: string | null;
  readonly counts: { total: number; online: number; offline: number; drift: number };
}

/** One event of a site's history (`GET /api/v1/sites/{site}/events`). */
export interface SiteEvent {
  readonly id: number;
  readonly at: string;
  readonly type: string;
  readonly detail: Record<string, unknown>;
}

/** A task of a run as the dashboard reads it (with the tasks it runs after, when the API gives them). */
export type RunTaskView = PipelineRun['tasks'][number] & { readonly runAfter?: readonly string[] };

/** The model registry's list envelope. */
export interface RegistryList<T> {
  readonly items: T[];
  readonly nextPageToken: string;
  readonly pageSize: number;
  readonly size: number;
}

const REGISTRY = '/api/model_registry/v1alpha3';

/** Called when the server says the token is not (or no longer) valid. */
let onUnauthorized: (message: string) => void = () => undefined;

/** Sets what happens on a 401 (the app signs out). */
export function setUnauthorizedHandler(handler: (message: string) => void): void {
  onUnauthorized = handler;
}

async function errorOf(response: Response): Promise<ApiError> {
  const text = await response.text().catch(() => '');
  let message = text.trim() === '' ? `${response.status} ${response.statusText}` : text.slice(0, 500);
  let code: string | undefined;
  try {
    const body = JSON.parse(text) as { detail?: unknown; message?: unknown; code?: unknown };
    if (typeof body.detail === 'string') message = body.detail;
    else if (typeof body.message === 'string') message = body.message;
    if (typeof body.code === 'string') code = body.code;
  } catch {
    // not JSON: keep the text
  }
  return new ApiError(response.status, message, code);
}

/** A client of one core, with one token. */
export class Api {
  constructor(readonly token: string) {}

  async request<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    const headers: Record<string, string> = {
      accept: 'application/json',
      authorization: `Bearer ${this.token}`,
    };
    if (body !== undefined) headers['content-type'] = 'application/json';
    let response: Response;
    try {
      response = await fetch(path, {
        method,
        headers,
        cache: 'no-store',
        ...(signal !== undefined ? { signal } : {}),
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
    } catch (error) {
      if ((error as Error).name === 'AbortError') throw error;
      throw new ApiError(0, `cannot reach the core: ${(error as Error).message}`);
    }
    if (!response.ok) {
      const error = await errorOf(response);
      if (response.status === 401) onUnauthorized(error.message);
      throw error;
    }
    if (response.status === 204) return undefined as T;
    return (await response.json()) as T;
  }

  get<T>(path: string, signal?: AbortSignal): Promise<T> {
    return this.request<T>('GET', path, undefined, signal);
  }

  sites(selector: string, signal?: AbortSignal): Promise<SiteList> {
    const q = new URLSearchParams({ limit: '1000' });
    if (selector.trim() !== '') q.set('selector', selector.trim());
    return this.get(`/api/v1/sites?${q}`, signal);
  }

  site(name: string, signal?: AbortSignal): Promise<Site> {
    return this.get(`/api/v1/sites/${encodeURIComponent(name)}`, signal);
  }

  siteEvents(name: string, signal?: AbortSignal): Promise<{ items: SiteEvent[] }> {
    return this.get(`/api/v1/sites/${encodeURIComponent(name)}/events?limit=200`, signal);
  }

  deployments(signal?: AbortSignal): Promise<{ items: Deployment[] }> {
    return this.get('/api/v1/deployments', signal);
  }

  runs(status: string, signal?: AbortSignal): Promise<RunList> {
    const q = new URLSearchParams({ limit: '100' });
    if (status !== '') q.set('status', status);
    return this.get(`/api/v1/pipelines/runs?${q}`, signal);
  }

  run(id: string, signal?: AbortSignal): Promise<PipelineRun & { tasks: RunTaskView[] }> {
    return this.get(`/api/v1/pipelines/runs/${encodeURIComponent(id)}`, signal);
  }

  startRun(spec: string, params: Record<string, string>): Promise<PipelineRun> {
    return this.request('POST', '/api/v1/pipelines/runs', { spec, params });
  }

  cancelRun(id: string): Promise<PipelineRun> {
    return this.request('POST', `/api/v1/pipelines/runs/${encodeURIComponent(id)}/cancel`);
  }

  summary(
    filter: { site?: string; model?: string; version?: string },
    windowSeconds: number,
    signal?: AbortSignal,
  ): Promise<TelemetrySummary> {
    const q = new URLSearchParams({ windowSeconds: String(windowSeconds) });
    for (const [k, v] of Object.entries(filter)) if (v !== undefined) q.set(k, v);
    return this.get(`/api/v1/telemetry/summary?${q}`, signal);
  }

  series(
    filter: { site?: string; model?: string; version?: string },
    metric: TelemetrySeriesMetric,
    range: { fromMs: number; toMs: number; stepSeconds: number },
    signal?: AbortSignal,
  ): Promise<TelemetrySeries> {
    const q = new URLSearchParams({
      metric,
      from: String(Math.floor(range.fromMs)),
      to: String(Math.floor(range.toMs)),
      stepSeconds: String(range.stepSeconds),
    });
    for (const [k, v] of Object.entries(filter)) if (v !== undefined) q.set(k, v);
    return this.get(`/api/v1/telemetry/series?${q}`, signal);
  }

  registeredModels(signal?: AbortSignal): Promise<RegistryList<RegisteredModel>> {
    return this.get(`${REGISTRY}/registered_models?pageSize=1000&orderBy=CREATE_TIME&sortOrder=ASC`, signal);
  }

  modelVersions(signal?: AbortSignal): Promise<RegistryList<ModelVersion>> {
    return this.get(`${REGISTRY}/model_versions?pageSize=1000&orderBy=CREATE_TIME&sortOrder=ASC`, signal);
  }

  versionArtifacts(versionId: string, signal?: AbortSignal): Promise<RegistryList<ModelArtifact>> {
    return this.get(
      `${REGISTRY}/model_versions/${encodeURIComponent(versionId)}/artifacts?pageSize=1000&orderBy=CREATE_TIME&sortOrder=ASC`,
      signal,
    );
  }
}
