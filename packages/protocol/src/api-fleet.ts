/**
 * Resources of the core's fleet API (sites, enrollment, status, desired state, deployments, tokens),
 * as TypeBox schemas with the types inferred from them; shared by core, agent, CLI and dashboard.
 */
import { Type, type Static } from '@sinclair/typebox';

/** DNS-1123 label: what site and deployment names must be. */
export const NAME_PATTERN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';
const Name = Type.String({ pattern: NAME_PATTERN, maxLength: 63 });
/** Label keys like Kubernetes' (optional DNS prefix + name); values up to 63 characters. */
const LabelKey = Type.String({
  pattern: '^([a-z0-9.-]{1,253}/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$',
});
/** Labels of a site. */
export const LabelsSchema = Type.Record(
  LabelKey,
  Type.String({ maxLength: 63, pattern: '^[A-Za-z0-9._-]*$' }),
  {
    maxProperties: 64,
  },
);
const Timestamp = Type.String({ format: 'date-time', description: 'RFC 3339 time' });

/** Kinds of site. */
export const SiteKinds = ['cluster', 'device'] as const;
/** States a deployment goes through at a site. */
export const DeploymentStates = [
  'Pending',
  'Pulling',
  'Starting',
  'Serving',
  'Failed',
  'RolledBack',
] as const;
/** A deployment's state at a site. */
export type DeploymentState = (typeof DeploymentStates)[number];

/** `POST /api/v1/sites/enroll`: an agent exchanges an enrollment token for a site token. */
export const EnrollRequestSchema = Type.Object(
  {
    name: Name,
    labels: Type.Optional(LabelsSchema),
    kind: Type.Optional(Type.Union(SiteKinds.map((k) => Type.Literal(k)))),
    agentVersion: Type.Optional(Type.String({ maxLength: 64 })),
  },
  { additionalProperties: false, $id: 'EnrollRequest' },
);
/** Enrollment request body. */
export type EnrollRequest = Static<typeof EnrollRequestSchema>;

/** One model deployment as an agent reports it. */
export const DeployedModelSchema = Type.Object(
  {
    deployment: Name,
    model: Type.String({ minLength: 1, maxLength: 253 }),
    version: Type.String({ minLength: 1, maxLength: 128 }),
    imageDigest: Type.Optional(Type.String({ pattern: '^sha256:[0-9a-f]{64}$' })),
    state: Type.Union(DeploymentStates.map((s) => Type.Literal(s))),
    reason: Type.Optional(Type.String({ maxLength: 4096 })),
    since: Timestamp,
  },
  { additionalProperties: false },
);
/** One model deployment as an agent reports it. */
export type DeployedModel = Static<typeof DeployedModelSchema>;

/** Resources of a site, as its agent measures them. */
export const SiteResourcesSchema = Type.Object(
  {
    cpuCores: Type.Optional(Type.Number({ minimum: 0 })),
    cpuLoad1m: Type.Optional(Type.Number({ minimum: 0 })),
    memoryTotalBytes: Type.Optional(Type.Integer({ minimum: 0 })),
    memoryAvailableBytes: Type.Optional(Type.Integer({ minimum: 0 })),
    diskStoreBytes: Type.Optional(Type.Integer({ minimum: 0 })),
    diskFreeBytes: Type.Optional(Type.Integer({ minimum: 0 })),
  },
  { additionalProperties: false },
);
/** Resources of a site. */
export type SiteResources = Static<typeof SiteResourcesSchema>;

/** `PUT /api/v1/sites/{site}/status`: what an agent pushes on every change and as a heartbeat. */
export const SiteStatusReportSchema = Type.Object(
  {
    appliedRevision: Type.Optional(Type.String({ maxLength: 128 })),
    agentVersion: Type.Optional(Type.String({ maxLength: 64 })),
    deployments: Type.Array(DeployedModelSchema, { maxItems: 256 }),
    resources: Type.Optional(SiteResourcesSchema),
  },
  { additionalProperties: false, $id: 'SiteStatusReport' },
);
/** A status report. */
export type SiteStatusReport = Static<typeof SiteStatusReportSchema>;

/** A site as the API shows it. */
export const SiteSchema = Type.Object(
  {
    name: Type.String(),
    kind: Type.Union(SiteKinds.map((k) => Type.Literal(k))),
    labels: Type.Record(Type.String(), Type.String()),
    agentVersion: Type.String(),
    createdAt: Timestamp,
    lastSeen: Type.Union([Timestamp, Type.Null()]),
    online: Type.Boolean(),
    revoked: Type.Boolean(),
    desiredRevision: Type.String({
      description:
        'GitOps revision (tree id of sites/<site>) the site should apply; "" before the first publish',
    }),
    appliedRevision: Type.Union([Type.String(), Type.Null()]),
    drift: Type.Boolean({ description: 'true when the applied revision differs from the desired one' }),
    deployments: Type.Array(DeployedModelSchema),
    resources: Type.Union([SiteResourcesSchema, Type.Null()]),
    statusUpdatedAt: Type.Union([Timestamp, Type.Null()]),
  },
  { $id: 'Site' },
);
/** A site. */
export type Site = Static<typeof SiteSchema>;

/** What `GET /api/v1/sites/{site}/desired` answers: the site's directory of the GitOps repository. */
export const DesiredStateSchema = Type.Object(
  {
    site: Type.String(),
    revision: Type.String({ description: 'tree id of sites/<site> at commit' }),
    commit: Type.String(),
    repository: Type.Object({ url: Type.String(), branch: Type.String(), path: Type.String() }),
    files: Type.Record(Type.String(), Type.String(), {
      description: 'the files of sites/<site>/ by name (feed them to @aiedge/gitops readSiteState)',
    }),
  },
  { $id: 'DesiredState' },
);
/** Desired state of one site. */
export type DesiredState = Static<typeof DesiredStateSchema>;

/** `POST /api/v1/deployments`: deploy a model image (by digest) to the sites a selector matches. */
export const DeploymentRequestSchema = Type.Object(
  {
    name: Name,
    image: Type.String({ pattern: '^[^\\s@]+@sha256:[0-9a-f]{64}$', description: 'image pinned by digest' }),
    model: Type.Object(
      {
        name: Type.String({ minLength: 1 }),
        version: Type.String({ minLength: 1 }),
        sha256: Type.Optional(Type.String({ pattern: '^[0-9a-f]{64}$' })),
      },
      { additionalProperties: false },
    ),
    selector: Type.Record(Type.String({ minLength: 1 }), Type.String(), {
      description: 'label selector: every key must equal the site label',
    }),
    port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
    replicas: Type.Optional(Type.Integer({ minimum: 0, maximum: 100 })),
    env: Type.Optional(Type.Record(Type.String({ minLength: 1 }), Type.String())),
    pipelineRun: Type.Optional(Type.String({ minLength: 1 })),
  },
  { additionalProperties: false, $id: 'DeploymentRequest' },
);
/** A deployment request. */
export type DeploymentRequest = Static<typeof DeploymentRequestSchema>;

/** A deployment's state at one site. */
export const DeploymentSiteStatusSchema = Type.Object({
  site: Type.String(),
  online: Type.Boolean(),
  state: Type.Union([...DeploymentStates.map((s) => Type.Literal(s)), Type.Literal('Unknown')]),
  version: Type.Union([Type.String(), Type.Null()]),
  imageDigest: Type.Union([Type.String(), Type.Null()]),
  reason: Type.Union([Type.String(), Type.Null()]),
  since: Type.Union([Timestamp, Type.Null()]),
  upToDate: Type.Boolean({ description: "the site serves the deployment's image digest" }),
});
/** A deployment's state at one site. */
export type DeploymentSiteStatus = Static<typeof DeploymentSiteStatusSchema>;

/** A deployment as the API shows it. */
export const DeploymentSchema = Type.Object(
  {
    name: Type.String(),
    spec: DeploymentRequestSchema,
    createdAt: Timestamp,
    updatedAt: Timestamp,
    commit: Type.Union([Type.String(), Type.Null()]),
    sites: Type.Array(DeploymentSiteStatusSchema),
    summary: Type.Object({
      sites: Type.Integer(),
      serving: Type.Integer(),
      failed: Type.Integer(),
      pending: Type.Integer(),
    }),
  },
  { $id: 'Deployment' },
);
/** A deployment. */
export type Deployment = Static<typeof DeploymentSchema>;

/** `POST /api/v1/tokens`: create an admin or enrollment token. */
export const TokenRequestSchema = Type.Object(
  {
    kind: Type.Union([Type.Literal('admin'), Type.Literal('enrollment')]),
    description: Type.Optional(Type.String({ maxLength: 256 })),
    site: Type.Optional(Name),
    ttlSeconds: Type.Optional(Type.Integer({ minimum: 60, maximum: 31_536_000 })),
  },
  { additionalProperties: false, $id: 'TokenRequest' },
);
/** A token request. */
export type TokenRequest = Static<typeof TokenRequestSchema>;
