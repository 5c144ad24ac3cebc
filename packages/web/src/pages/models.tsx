/** Models: the model registry's registered models, their versions, artifacts and built images. */
import type { ModelArtifact, ModelVersion, RegisteredModel } from '@aiedge/protocol';
import type { Api } from '../api.js';
import { Badge, EmptyState, ErrorState, LiveStatus, Loading, Mono, PageHeader, Stat } from '../components.js';
import { digestOfReference, formatTime, shortDigest } from '../format.js';
import { usePolling, useNow } from '../hooks.js';

interface Catalog {
  readonly models: RegisteredModel[];
  readonly versions: Map<string, ModelVersion[]>;
  readonly artifacts: Map<string, ModelArtifact[]>;
}

async function loadCatalog(api: Api, signal: AbortSignal): Promise<Catalog> {
  const [models, versions] = await Promise.all([api.registeredModels(signal), api.modelVersions(signal)]);
  const byModel = new Map<string, ModelVersion[]>();
  for (const v of versions.items) {
    const list = byModel.get(v.registeredModelId) ?? [];
    list.push(v);
    byModel.set(v.registeredModelId, list);
  }
  const artifacts = new Map(
    await Promise.all(
      versions.items.map(async (v) => [v.id, (await api.versionArtifacts(v.id, signal)).items] as const),
    ),
  );
  return { models: models.items, versions: byModel, artifacts };
}

const msTime = (ms: string | undefined) =>
  ms === undefined ? '—' : formatTime(new Date(Number(ms)).toISOString());

/** An artifact URI that is a built image (`oci://…`). */
function imageOf(artifact: ModelArtifact): string | undefined {
  return artifact.uri?.startsWith('oci://') === true ? artifact.uri.slice('oci://'.length) : undefined;
}

/** The models page. */
export function Models(props: { api: Api }) {
  const now = useNow();
  const catalog = usePolling((signal) => loadCatalog(props.api, signal), 'models', 10_000);
  const data = catalog.data;
  const images =
    data === undefined
      ? 0
      : [...data.artifacts.values()].flat().filter((a) => imageOf(a) !== undefined).length;
  return (
    <>
      <PageHeader
        title="Models"
        subtitle="The core's model registry (Kubeflow Model Registry API): models, versions, where their files are and the images built from them."
        actions={<LiveStatus updatedAt={catalog.updatedAt} error={catalog.error} now={now} />}
      />
      {catalog.loading && <Loading what="models" rows={4} />}
      {catalog.error !== undefined && data === undefined && (
        <ErrorState title="Cannot load the model registry" error={catalog.error} onRetry={catalog.reload} />
      )}
      {data !== undefined && (
        <>
          <section className="stats" aria-label="Model counts">
            <Stat label="Registered models" value={data.models.length} />
            <Stat label="Versions" value={[...data.versions.values()].flat().length} />
            <Stat label="Built images" value={images} />
          </section>
          {data.models.length === 0 ? (
            <EmptyState title="No models registered">
              <p>
                Register one with <code>aiedge model register</code>; a pipeline that builds it registers its
                image back on the version.
              </p>
            </EmptyState>
          ) : (
            data.models.map((model) => (
              <article
                key={model.id}
                className="card"
                aria-label={`Model ${model.name}`}
                data-model={model.name}
              >
                <header className="card-header">
                  <h2>{model.name}</h2>
                  <span className="muted small">
                    id {model.id} · created {msTime(model.createTimeSinceEpoch)}
                  </span>
                  {model.state === 'ARCHIVED' && <Badge tone="muted">archived</Badge>}
                </header>
                {model.description !== undefined && <p>{model.description}</p>}
                <Versions versions={data.versions.get(model.id) ?? []} artifacts={data.artifacts} />
              </article>
            ))
          )}
        </>
      )}
    </>
  );
}

function Versions(props: { versions: readonly ModelVersion[]; artifacts: Map<string, ModelArtifact[]> }) {
  if (props.versions.length === 0) return <p className="muted">No versions yet.</p>;
  return (
    <div className="table-wrap">
      <table className="table" aria-label="Versions">
        <thead>
          <tr>
            <th scope="col">Version</th>
            <th scope="col">Created</th>
            <th scope="col">Model files</th>
            <th scope="col">Built images</th>
          </tr>
        </thead>
        <tbody>
          {props.versions.map((v) => {
            const artifacts = props.artifacts.get(v.id) ?? [];
            const files = artifacts.filter((a) => imageOf(a) === undefined);
            const images = artifacts.filter((a) => imageOf(a) !== undefined);
            return (
              <tr key={v.id} data-version={v.name}>
                <th scope="row">
                  {v.name} {v.state === 'ARCHIVED' && <Badge tone="muted">archived</Badge>}
                </th>
                <td>{msTime(v.createTimeSinceEpoch)}</td>
                <td>
                  {files.length === 0 ? (
                    <span className="muted">none</span>
                  ) : (
                    <ul className="plain">
                      {files.map((a) => (
                        <li key={a.id}>
                          {a.name ?? `artifact ${a.id}`}{' '}
                          {a.modelFormatName !== undefined && <Badge tone="info">{a.modelFormatName}</Badge>}{' '}
                          <code className="wrap small">{a.uri ?? '—'}</code>
                        </li>
                      ))}
                    </ul>
                  )}
                </td>
                <td>
                  {images.length === 0 ? (
                    <span className="muted">not built yet</span>
                  ) : (
                    <ul className="plain">
                      {images.map((a) => {
                        const ref = imageOf(a) ?? '';
                        const digest = digestOfReference(ref);
                        return (
                          <li key={a.id} data-image={ref}>
                            <code className="wrap small">
                              {ref.slice(0, ref.lastIndexOf('@') < 0 ? undefined : ref.lastIndexOf('@'))}
                            </code>
                            {digest !== undefined && (
                              <>
                                {' '}
                                <Mono value={digest} short={shortDigest(digest)} />
                              </>
                            )}
                          </li>
                        );
                      })}
                    </ul>
                  )}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}
