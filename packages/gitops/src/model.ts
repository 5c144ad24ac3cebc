/** Input types of the GitOps repository: what to deploy (DeploymentSpec) and where (SiteSpec). */
import { Type, type Static } from '@sinclair/typebox';
import { InputError, validateWith } from '@aiedge/protocol';

/** DNS-1123 label: lower-case alphanumerics and '-', at most 63 characters. */
export const DNS_LABEL_PATTERN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';
/** An image reference pinned by digest: `repo@sha256:<64 hex>`. */
export const PINNED_IMAGE = /^[^\s@]+@sha256:[0-9a-f]{64}$/;
/** Default namespace of rendered workloads. */
export const DEFAULT_NAMESPACE = 'aiedge';
/** Default container (and Service) port of the inference server. */
export const DEFAULT_PORT = 8080;
/** Default OTLP/HTTP endpoint: the site agent's receiver. */
export const DEFAULT_OTLP_ENDPOINT = 'http://aiedge-agent.aiedge.svc:4318';
/** Default resources, sized for a small ONNX model. */
export const DEFAULT_RESOURCES = {
  requests: { cpu: '100m', memory: '256Mi' },
  limits: { cpu: '1', memory: '1Gi' },
} as const;
/** Environment variables aiedge sets itself; a DeploymentSpec may not set them. */
export const RESERVED_ENV = [
  'AIEDGE_SERVE_PORT',
  'OTEL_EXPORTER_OTLP_ENDPOINT',
  'OTEL_SERVICE_NAME',
] as const;

const DnsLabel = Type.String({ pattern: DNS_LABEL_PATTERN, maxLength: 63 });
const StringMap = Type.Record(Type.String({ minLength: 1 }), Type.String());
const Quantities = Type.Object(
  { cpu: Type.Optional(Type.String({ minLength: 1 })), memory: Type.Optional(Type.String({ minLength: 1 })) },
  { additionalProperties: false },
);

/** Schema of DeploymentSpec. */
export const DeploymentSpecSchema = Type.Object(
  {
    name: DnsLabel,
    model: Type.Object(
      {
        name: Type.String({ minLength: 1 }),
        version: Type.String({ minLength: 1 }),
        sha256: Type.Optional(Type.String({ pattern: '^[0-9a-f]{64}$' })),
      },
      { additionalProperties: false },
    ),
    image: Type.String({ minLength: 1 }),
    selector: StringMap,
    port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
    replicas: Type.Optional(Type.Integer({ minimum: 0 })),
    resources: Type.Optional(
      Type.Object(
        { requests: Type.Optional(Quantities), limits: Type.Optional(Quantities) },
        { additionalProperties: false },
      ),
    ),
    env: Type.Optional(StringMap),
    route: Type.Optional(
      Type.Object(
        { enabled: Type.Boolean(), host: Type.Optional(Type.String({ minLength: 1 })) },
        { additionalProperties: false },
      ),
    ),
    pipelineRun: Type.Optional(Type.String({ minLength: 1 })),
    namespace: Type.Optional(DnsLabel),
  },
  { additionalProperties: false },
);

/** What to deploy: a model served by an image pinned by digest, to the sites matching `selector`. */
export type DeploymentSpec = Static<typeof DeploymentSpecSchema>;

/** Schema of SiteSpec. */
export const SiteSpecSchema = Type.Object(
  {
    name: DnsLabel,
    labels: StringMap,
    otlpEndpoint: Type.Optional(Type.String({ minLength: 1 })),
  },
  { additionalProperties: false },
);

/** A near-edge site (one cluster) with the labels deployments select on. */
export type SiteSpec = Static<typeof SiteSpecSchema>;

/** Validates one DeploymentSpec; `what` names it in errors (e.g. `deployments[0]`). */
export function parseDeploymentSpec(value: unknown, what = 'deployment'): DeploymentSpec {
  const spec = validateWith(DeploymentSpecSchema, value, what, 'field');
  if (!PINNED_IMAGE.test(spec.image)) {
    throw new InputError(`${what}.image: image "${spec.image}" must be pinned by digest (repo@sha256:...)`);
  }
  for (const key of RESERVED_ENV) {
    if (spec.env !== undefined && Object.hasOwn(spec.env, key)) {
      throw new InputError(`${what}.env.${key} is set by aiedge and may not be given`);
    }
  }
  return spec;
}

/** Validates one SiteSpec; `what` names it in errors (e.g. `sites[0]`). */
export function parseSiteSpec(value: unknown, what = 'site'): SiteSpec {
  return validateWith(SiteSpecSchema, value, what, 'field');
}

function noDuplicates(names: readonly string[], what: string): void {
  const seen = new Map<string, number>();
  names.forEach((name, i) => {
    const first = seen.get(name);
    if (first !== undefined) {
      throw new InputError(`${what}[${i}].name "${name}" duplicates ${what}[${first}].name`);
    }
    seen.set(name, i);
  });
}

/** Validates lists of deployments and sites, including duplicate names. */
export function parseInputs(
  deployments: readonly unknown[],
  sites: readonly unknown[],
): { deployments: DeploymentSpec[]; sites: SiteSpec[] } {
  const ds = deployments.map((d, i) => parseDeploymentSpec(d, `deployments[${i}]`));
  const ss = sites.map((s, i) => parseSiteSpec(s, `sites[${i}]`));
  noDuplicates(
    ds.map((d) => d.name),
    'deployments',
  );
  noDuplicates(
    ss.map((s) => s.name),
    'sites',
  );
  return { deployments: ds, sites: ss };
}

/** True when every selector entry equals the site's label of that key. */
export function selectorMatches(
  selector: Readonly<Record<string, string>>,
  labels: Readonly<Record<string, string>>,
): boolean {
  return Object.entries(selector).every(([k, v]) => Object.hasOwn(labels, k) && labels[k] === v);
}

/** Turns any string into a valid Kubernetes label value (at most 63 chars, alphanumeric ends). */
export function sanitizeLabelValue(value: string): string {
  const cleaned = value.replace(/[^A-Za-z0-9._-]/g, '-');
  return cleaned
    .replace(/^[^A-Za-z0-9]+/, '')
    .slice(0, 63)
    .replace(/[^A-Za-z0-9]+$/, '');
}
