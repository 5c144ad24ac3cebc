import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  MODEL_REGISTRY_API_PATH,
  type CustomProperties,
  type ModelArtifact,
  type ModelVersion,
  type RegisteredModel,
} from '@aiedge/protocol';
import { createToken } from '../auth.js';
import { startTestCore, type TestCore } from '../_test-core.js';
import { loadRegistrySpec } from './_test-spec.js';

const loaded = loadRegistrySpec();
const spec = loaded.spec;

/** Operations of the upstream document this registry serves. */
const SERVED_OPERATIONS = [
  'getRegisteredModels',
  'createRegisteredModel',
  'getRegisteredModel',
  'updateRegisteredModel',
  'findRegisteredModel',
  'getRegisteredModelVersions',
  'createRegisteredModelVersion',
  'getModelVersions',
  'createModelVersion',
  'getModelVersion',
  'updateModelVersion',
  'findModelVersion',
  'getModelVersionArtifacts',
  'upsertModelVersionArtifact',
  'getModelArtifacts',
  'createModelArtifact',
  'getModelArtifact',
  'updateModelArtifact',
  'findModelArtifact',
];

/* eslint-disable @typescript-eslint/no-explicit-any -- response bodies are checked against the spec, then read freely */
interface Reply {
  readonly status: number;
  readonly body: any;
}

let core: TestCore;
/** The core's clock: advances `step` ms on every read (0 freezes it, to make equal timestamps). */
let clock = Date.now();
let step = 1000;

before(async () => {
  core = await startTestCore({ now: () => new Date((clock += step)), config: { maxBodyBytes: 65_536 } });
});
after(async () => {
  await core.close();
});

let unique = 0;
/** A name no other test uses. */
function fresh(prefix: string): string {
  unique += 1;
  return `${prefix}-${unique}`;
}

/** Calls the registry; every response body is validated against the upstream document's schema for it. */
async function call(
  method: string,
  path: string,
  options: { json?: unknown; token?: string | null } = {},
): Promise<Reply> {
  const response = await core.api(`${MODEL_REGISTRY_API_PATH}${path}`, {
    method,
    ...(options.json !== undefined ? { json: options.json } : {}),
    ...(options.token !== undefined ? { token: options.token } : {}),
  });
  const text = await response.text();
  assert.match(
    response.headers.get('content-type') ?? '',
    /^application\/json/,
    `${method} ${path}: ${text}`,
  );
  const body: unknown = JSON.parse(text);
  spec?.checkResponse(method, `${MODEL_REGISTRY_API_PATH}${path}`, response.status, body);
  return { status: response.status, body };
}

async function ok(
  method: string,
  path: string,
  json?: unknown,
  status = method === 'POST' ? 201 : 200,
): Promise<any> {
  const reply = await call(method, path, json === undefined ? {} : { json });
  assert.equal(reply.status, status, `${method} ${path}: ${JSON.stringify(reply.body)}`);
  return reply.body;
}

async function fails(
  method: string,
  path: string,
  status: number,
  message: RegExp,
  json?: unknown,
): Promise<void> {
  const reply = await call(method, path, json === undefined ? {} : { json });
  assert.equal(reply.status, status, `${method} ${path}: ${JSON.stringify(reply.body)}`);
  assert.deepEqual(Object.keys(reply.body).sort(), ['code', 'message']);
  assert.equal(reply.body.code, String(status));
  assert.match(reply.body.message, message);
}

async function registerModel(name = fresh('model'), extra: object = {}): Promise<RegisteredModel> {
  return ok('POST', '/registered_models', { name, ...extra });
}

async function addVersion(modelId: string, name = fresh('v'), extra: object = {}): Promise<ModelVersion> {
  return ok('POST', `/registered_models/${modelId}/versions`, { name, ...extra });
}

const everyMetadataType: CustomProperties = {
  int: { metadataType: 'MetadataIntValue', int_value: '-42' },
  double: { metadataType: 'MetadataDoubleValue', double_value: 0.975 },
  string: { metadataType: 'MetadataStringValue', string_value: 'pytorch' },
  struct: { metadataType: 'MetadataStructValue', struct_value: 'CgsKA2tleRIEGgJ2YQ==' },
  proto: {
    metadataType: 'MetadataProtoValue',
    type: 'type.googleapis.com/google.protobuf.Duration',
    proto_value: 'CAE=',
  },
  bool: { metadataType: 'MetadataBoolValue', bool_value: true },
  'mlflow.source.type': { metadataType: 'MetadataStringValue', string_value: 'notebook' },
};

describe('model registry API', () => {
  test('the spec checker refuses bodies the document does not describe', (t) => {
    if (spec === undefined) {
      t.skip(loaded.skip);
      return;
    }
    const good = {
      id: '1',
      name: 'm',
      customProperties: { a: { metadataType: 'MetadataIntValue', int_value: '3' } },
    };
    spec.assertSchema('RegisteredModel', good, 'good');
    const bad: [string, unknown][] = [
      ['RegisteredModel', { ...good, id: 1 }],
      ['RegisteredModel', { ...good, name: '' }],
      ['RegisteredModel', { ...good, state: 'GONE' }],
      [
        'RegisteredModel',
        { ...good, customProperties: { a: { metadataType: 'MetadataIntValue', int_value: 3 } } },
      ],
      ['RegisteredModel', { ...good, customProperties: { a: { metadataType: 'Nope', int_value: '3' } } }],
      ['RegisteredModel', { ...good, customProperties: { a: { int_value: '3' } } }],
      ['ModelArtifact', { id: '1', state: 'GONE' }],
      ['Artifact', { id: '1', artifactType: 'model-artifact', state: 'GONE' }],
      ['Artifact', { id: '1', artifactType: 'unknown' }],
      ['RegisteredModelList', { items: [], pageSize: 1, size: 0 }],
      ['Error', { code: 404, message: 'x' }],
    ];
    for (const [name, body] of bad) {
      assert.throws(
        () => spec.assertSchema(name, body, 'bad'),
        /is not a valid/,
        `${name} ${JSON.stringify(body)}`,
      );
    }
  });

  test('every endpoint answers with bodies the upstream OpenAPI document describes', async (t) => {
    if (spec === undefined) {
      t.skip(loaded.skip);
      return;
    }
    const name = fresh('mnist');
    const model: RegisteredModel = await ok('POST', '/registered_models', {
      name,
      description: 'handwritten digits',
      externalId: fresh('ext-model'),
      owner: 'ml-team',
      readme: '# MNIST',
      maturity: 'Generally Available',
      language: ['en'],
      tasks: ['image-classification'],
      provider: 'ai-edge',
      logo: 'data:image/png;base64,iVBORw0KGgo=',
      license: 'apache-2.0',
      licenseLink: 'https://www.apache.org/licenses/LICENSE-2.0',
      libraryName: 'onnx',
      customProperties: everyMetadataType,
    });
    assert.match(model.id, /^[1-9][0-9]*$/);
    assert.equal(model.state, 'LIVE');
    assert.match(model.createTimeSinceEpoch, /^[0-9]+$/);
    assert.equal(model.lastUpdateTimeSinceEpoch, model.createTimeSinceEpoch);
    await ok('GET', `/registered_models/${model.id}`);
    await ok('GET', `/registered_model?name=${name}`);
    await ok('GET', '/registered_models?pageSize=2&orderBy=CREATE_TIME&sortOrder=DESC');
    await ok('PATCH', `/registered_models/${model.id}`, { description: 'MNIST digits', state: 'LIVE' });

    const v1: ModelVersion = await addVersion(model.id, '1', {
      author: 'me',
      customProperties: everyMetadataType,
    });
    assert.equal(v1.registeredModelId, model.id);
    const v2: ModelVersion = await ok('POST', '/model_versions', {
      name: '2',
      registeredModelId: model.id,
      externalId: fresh('ext-version'),
      description: 'second',
    });
    await ok('GET', `/registered_models/${model.id}/versions?orderBy=ID&sortOrder=ASC`);
    await ok('GET', '/model_versions?pageSize=1');
    await ok('GET', `/model_versions/${v2.id}`);
    await ok('GET', `/model_version?name=2&parentResourceId=${model.id}`);
    await ok('PATCH', `/model_versions/${v2.id}`, { state: 'ARCHIVED', author: 'you' });

    const artifact: ModelArtifact = await ok('POST', `/model_versions/${v1.id}/artifacts`, {
      artifactType: 'model-artifact',
      name: 'mnist-onnx',
      uri: 's3://models/mnist/1/model.onnx',
      modelFormatName: 'onnx',
      modelFormatVersion: '1.15',
      storageKey: 'aws-connection',
      storagePath: 'mnist/1',
      serviceAccountName: 'sa',
      modelSourceKind: 'aiedge',
      modelSourceClass: 'pipeline',
      modelSourceGroup: 'default',
      modelSourceId: 'run-1',
      modelSourceName: 'mnist-train',
      state: 'LIVE',
      customProperties: everyMetadataType,
    });
    await ok('POST', `/model_versions/${v1.id}/artifacts`, {
      artifactType: 'doc-artifact',
      name: 'card',
      uri: 'https://x/card.md',
    });
    await ok('GET', `/model_versions/${v1.id}/artifacts`);
    await ok('GET', `/model_versions/${v1.id}/artifacts?artifactType=doc-artifact`);
    await ok('POST', `/model_versions/${v1.id}/artifacts`, { id: artifact.id, description: 'updated' }, 200);
    const loose: ModelArtifact = await ok('POST', '/model_artifacts', { name: 'loose', uri: 'oci://r/m:1' });
    await ok('GET', '/model_artifacts?orderBy=LAST_UPDATE_TIME');
    await ok('GET', `/model_artifacts/${artifact.id}`);
    await ok('GET', `/model_artifact?name=mnist-onnx&parentResourceId=${v1.id}`);
    await ok('PATCH', `/model_artifacts/${loose.id}`, { modelFormatName: 'onnx', state: 'PENDING' });

    // Error bodies of each kind are the document's Error.
    await fails('GET', '/registered_models/999999', 404, /registered model 999999 not found/);
    await fails('POST', '/registered_models', 409, /already exists/, { name });
    await fails('POST', '/model_versions', 422, /no registered model has this id/, {
      name: 'x',
      registeredModelId: '999999',
    });
    await fails('POST', '/registered_models', 400, /body: missing required key 'name'/, {});

    const missing = SERVED_OPERATIONS.filter((op) => !spec.covered.has(op));
    assert.deepEqual(missing, [], 'every served operation was exercised');
  });

  test('custom properties of every metadata type are stored and returned unchanged', async () => {
    const model = await registerModel(fresh('props'), { customProperties: everyMetadataType });
    assert.deepEqual(model.customProperties, everyMetadataType);
    const read: RegisteredModel = await ok('GET', `/registered_models/${model.id}`);
    assert.deepEqual(read.customProperties, everyMetadataType);
    const version = await addVersion(model.id, '1', { customProperties: everyMetadataType });
    assert.deepEqual((await ok('GET', `/model_versions/${version.id}`)).customProperties, everyMetadataType);
    // PATCH replaces the whole map.
    const replaced = { only: { metadataType: 'MetadataBoolValue', bool_value: false } };
    const patched: RegisteredModel = await ok('PATCH', `/registered_models/${model.id}`, {
      customProperties: replaced,
    });
    assert.deepEqual(patched.customProperties, replaced);
    assert.deepEqual((await ok('GET', `/registered_models/${model.id}`)).customProperties, replaced);
  });

  test('PATCH changes the given fields only, moves lastUpdateTime and refuses renames', async () => {
    const model = await registerModel(fresh('patch'), { description: 'a', owner: 'o', tasks: ['t'] });
    const patched: RegisteredModel = await ok('PATCH', `/registered_models/${model.id}`, {
      description: 'b',
      state: 'ARCHIVED',
    });
    assert.equal(patched.description, 'b');
    assert.equal(patched.owner, 'o');
    assert.deepEqual(patched.tasks, ['t']);
    assert.equal(patched.state, 'ARCHIVED');
    assert.equal(patched.createTimeSinceEpoch, model.createTimeSinceEpoch);
    assert.ok(Number(patched.lastUpdateTimeSinceEpoch) > Number(model.lastUpdateTimeSinceEpoch));
    assert.deepEqual(await ok('GET', `/registered_models/${model.id}`), patched);
    // What was read may be sent back as it is.
    await ok('PATCH', `/registered_models/${model.id}`, patched);
    await fails(
      'PATCH',
      `/registered_models/${model.id}`,
      400,
      /body\.name is "other": the name of a registered model cannot change \(it is ".*"\)/,
      { name: 'other' },
    );
    await fails('PATCH', `/registered_models/${model.id}`, 400, /body\.id is "1234": must be the path's id/, {
      id: '1234',
    });

    const version = await addVersion(model.id);
    const other = await registerModel();
    await fails(
      'PATCH',
      `/model_versions/${version.id}`,
      400,
      /body\.registeredModelId is ".*": a model version cannot move/,
      {
        registeredModelId: other.id,
      },
    );
    const v: ModelVersion = await ok('PATCH', `/model_versions/${version.id}`, { state: 'ARCHIVED' });
    assert.equal(v.state, 'ARCHIVED');
    assert.equal(v.name, version.name);
  });

  test('the artifacts of a version: create (201), update and attach by id (200)', async () => {
    const model = await registerModel();
    const v1 = await addVersion(model.id);
    const v2 = await addVersion(model.id);
    const created: ModelArtifact = await ok('POST', `/model_versions/${v1.id}/artifacts`, {
      name: 'weights',
      uri: 's3://a',
    });
    assert.equal(created.artifactType, 'model-artifact', 'artifactType defaults to model-artifact');
    assert.equal(created.state, 'UNKNOWN');
    const updated: ModelArtifact = await ok(
      'POST',
      `/model_versions/${v1.id}/artifacts`,
      { id: created.id, uri: 's3://b' },
      200,
    );
    assert.equal(updated.uri, 's3://b');
    assert.equal(updated.name, 'weights');
    // An artifact made on its own is attached by id; one of another version is refused.
    const loose: ModelArtifact = await ok('POST', '/model_artifacts', { name: 'weights', uri: 's3://c' });
    await fails(
      'POST',
      `/model_versions/${v1.id}/artifacts`,
      409,
      /already has an artifact named "weights"/,
      { id: loose.id },
    );
    await ok('POST', `/model_versions/${v2.id}/artifacts`, { id: loose.id }, 200);
    await fails(
      'POST',
      `/model_versions/${v1.id}/artifacts`,
      409,
      new RegExp(`artifact ${loose.id} belongs to model version ${v2.id}`),
      {
        id: loose.id,
      },
    );
    const doc = await ok('POST', `/model_versions/${v1.id}/artifacts`, {
      artifactType: 'doc-artifact',
      name: 'card',
    });
    await fails(
      'POST',
      `/model_versions/${v1.id}/artifacts`,
      400,
      /body\.artifactType is "model-artifact": artifact \d+ is a doc-artifact/,
      {
        id: doc.id,
      },
    );
    // A doc artifact is not a model artifact.
    await fails('GET', `/model_artifacts/${doc.id}`, 404, /model artifact \d+ not found/);
    const list = await ok('GET', `/model_versions/${v1.id}/artifacts`);
    assert.deepEqual(
      list.items.map((a: { id: string }) => a.id),
      [created.id, doc.id],
    );
    const models = await ok(
      'GET',
      `/model_versions/${v1.id}/artifacts?artifactType=model-artifact&name=weights`,
    );
    assert.deepEqual(
      models.items.map((a: { id: string }) => a.id),
      [created.id],
    );
  });

  test('find by name or externalId', async () => {
    const name = fresh('find');
    const externalId = fresh('ext');
    const model = await registerModel(name, { externalId });
    assert.equal((await ok('GET', `/registered_model?name=${name}`)).id, model.id);
    assert.equal((await ok('GET', `/registered_model?externalId=${externalId}`)).id, model.id);
    assert.equal((await ok('GET', `/registered_model?name=${name}&externalId=${externalId}`)).id, model.id);
    await fails(
      'GET',
      `/registered_model?name=${name}&externalId=nope`,
      404,
      /no registered model with name ".*" and externalId "nope"/,
    );
    await fails(
      'GET',
      '/registered_model?name=no-such-model',
      404,
      /no registered model with name "no-such-model"/,
    );
    await fails('GET', '/registered_model', 400, /give name or externalId/);

    const other = await registerModel();
    const versionExt = fresh('ext');
    const v = await addVersion(model.id, '1.0', { externalId: versionExt });
    await addVersion(other.id, '1.0');
    assert.equal((await ok('GET', `/model_version?name=1.0&parentResourceId=${model.id}`)).id, v.id);
    assert.equal((await ok('GET', `/model_version?externalId=${versionExt}`)).id, v.id);
    await fails(
      'GET',
      '/model_version?name=1.0',
      400,
      /name and parentResourceId.*name "1\.0" needs parentResourceId/,
    );
    await fails(
      'GET',
      `/model_version?name=2.0&parentResourceId=${model.id}`,
      404,
      /no model version with name "2\.0"/,
    );
    const versions = await ok('GET', `/registered_models/${model.id}/versions?name=1.0`);
    assert.deepEqual(
      versions.items.map((x: { id: string }) => x.id),
      [v.id],
    );

    const artifactExt = fresh('ext');
    const a = await ok('POST', `/model_versions/${v.id}/artifacts`, { name: 'w', externalId: artifactExt });
    assert.equal((await ok('GET', `/model_artifact?name=w&parentResourceId=${v.id}`)).id, a.id);
    assert.equal((await ok('GET', `/model_artifact?externalId=${artifactExt}`)).id, a.id);
    await fails(
      'GET',
      '/model_artifact?name=w',
      400,
      /give name and parentResourceId \(the model version id\)/,
    );
    await fails('GET', `/model_artifact?name=x&parentResourceId=${v.id}`, 404, /no model artifact/);
  });

  test('unknown ids and routes are 404 in the Error shape', async () => {
    await fails('GET', '/registered_models/987654', 404, /registered model 987654 not found/);
    await fails('PATCH', '/registered_models/987654', 404, /registered model 987654 not found/, {
      description: 'x',
    });
    await fails('GET', '/registered_models/987654/versions', 404, /registered model 987654 not found/);
    await fails('POST', '/registered_models/987654/versions', 404, /registered model 987654 not found/, {
      name: '1',
    });
    await fails('GET', '/model_versions/987654', 404, /model version 987654 not found/);
    await fails('PATCH', '/model_versions/987654', 404, /model version 987654 not found/, { author: 'x' });
    await fails('GET', '/model_versions/987654/artifacts', 404, /model version 987654 not found/);
    await fails('POST', '/model_versions/987654/artifacts', 404, /model version 987654 not found/, {
      uri: 'x',
    });
    await fails('GET', '/model_artifacts/987654', 404, /model artifact 987654 not found/);
    await fails('PATCH', '/model_artifacts/987654', 404, /model artifact 987654 not found/, { uri: 'x' });
    const v = await addVersion((await registerModel()).id);
    await fails('POST', `/model_versions/${v.id}/artifacts`, 404, /artifact 987654 not found/, {
      id: '987654',
    });
    await fails(
      'GET',
      '/no_such_thing',
      404,
      /no route for GET \/api\/model_registry\/v1alpha3\/no_such_thing/,
    );
    await fails('DELETE', '/registered_models/1', 404, /no route for DELETE/);
  });

  test('names and externalIds are unique where the registry says (409)', async () => {
    const name = fresh('dup');
    const model = await registerModel(name, { externalId: `${name}-ext` });
    await fails(
      'POST',
      '/registered_models',
      409,
      new RegExp(`registered model "${name}" already exists \\(id ${model.id}\\)`),
      { name },
    );
    await fails(
      'POST',
      '/registered_models',
      409,
      new RegExp(`externalId "${name}-ext" is already used by registered model ${model.id}`),
      {
        name: fresh('dup'),
        externalId: `${name}-ext`,
      },
    );
    const other = await registerModel();
    await fails('PATCH', `/registered_models/${other.id}`, 409, /externalId ".*" is already used/, {
      externalId: `${name}-ext`,
    });
    // Setting its own externalId again is fine.
    await ok('PATCH', `/registered_models/${model.id}`, { externalId: `${name}-ext` });

    await addVersion(model.id, '1');
    await fails(
      'POST',
      `/registered_models/${model.id}/versions`,
      409,
      new RegExp(`model version "1" of registered model "${name}" \\(id ${model.id}\\) already exists`),
      {
        name: '1',
      },
    );
    await fails('POST', '/model_versions', 409, /already exists/, { name: '1', registeredModelId: model.id });
    // The same version name in another model is fine.
    await addVersion(other.id, '1');
  });

  test('bad input is 400 and names the field path and the value', async () => {
    const model = await registerModel();
    const v = await addVersion(model.id);
    const cases: [string, string, unknown, RegExp][] = [
      ['POST', '/registered_models', { name: '' }, /^body\.name is "": expected a non-empty string$/],
      ['POST', '/registered_models', { name: 5 }, /^body\.name is 5: expected a non-empty string$/],
      ['POST', '/registered_models', { name: 'x', nmae: 'y' }, /^body: unknown key 'nmae'$/],
      [
        'POST',
        '/registered_models',
        { name: 'x', state: 'DELETED' },
        /^body\.state is "DELETED": expected one of "LIVE", "ARCHIVED"$/,
      ],
      [
        'POST',
        '/registered_models',
        { name: 'x', language: 'en' },
        /^body\.language is "en": expected an array$/,
      ],
      [
        'POST',
        '/registered_models',
        { name: 'x', customProperties: { foo: { metadataType: 'X' } } },
        /^body\.customProperties\.foo\.metadataType is "X": expected one of "MetadataIntValue", "MetadataDoubleValue", "MetadataStringValue", "MetadataStructValue", "MetadataProtoValue", "MetadataBoolValue"$/,
      ],
      [
        'POST',
        '/registered_models',
        { name: 'x', customProperties: { foo: { string_value: 'a' } } },
        /^body\.customProperties\.foo: missing required key 'metadataType'/,
      ],
      [
        'POST',
        '/registered_models',
        { name: 'x', customProperties: { foo: { metadataType: 'MetadataIntValue', int_value: 3 } } },
        /^body\.customProperties\.foo\.int_value is 3: expected a decimal int32 string such as "42"$/,
      ],
      [
        'POST',
        '/registered_models',
        { name: 'x', customProperties: { foo: { metadataType: 'MetadataIntValue', int_value: '1.5' } } },
        /^body\.customProperties\.foo\.int_value is "1\.5": expected a decimal int32 string/,
      ],
      [
        'POST',
        '/registered_models',
        { name: 'x', customProperties: { foo: { metadataType: 'MetadataBoolValue', bool_value: 'yes' } } },
        /^body\.customProperties\.foo\.bool_value is "yes": expected a boolean/,
      ],
      [
        'POST',
        '/registered_models',
        {
          name: 'x',
          customProperties: {
            foo: { metadataType: 'MetadataStringValue', string_value: 'a', int_value: '1' },
          },
        },
        /^body\.customProperties\.foo: unknown key 'int_value'$/,
      ],
      [
        'POST',
        '/registered_models',
        {
          name: 'x',
          customProperties: { 'a.b': { metadataType: 'MetadataStructValue', struct_value: 'not base64!' } },
        },
        /^body\.customProperties\["a\.b"\]\.struct_value is "not base64!": expected a base64 string$/,
      ],
      [
        'POST',
        '/registered_models',
        { name: 'x', customProperties: { foo: 'bar' } },
        /^body\.customProperties\.foo is "bar": expected an object$/,
      ],
      ['POST', '/model_versions', { name: '1' }, /^body: missing required key 'registeredModelId'$/],
      [
        'POST',
        '/model_versions',
        { name: '1', registeredModelId: 'abc' },
        /^body\.registeredModelId is "abc": expected a decimal id such as "1"$/,
      ],
      [
        'POST',
        `/registered_models/${model.id}/versions`,
        { name: '1', registeredModelId: '77' },
        /^body\.registeredModelId is "77": must be the path's registered model id/,
      ],
      [
        'POST',
        `/registered_models/${model.id}/versions`,
        { name: '1', id: '5' },
        /^body\.id is "5": a new model version must not carry an id$/,
      ],
      [
        'POST',
        `/model_versions/${v.id}/artifacts`,
        { artifactType: 'dataset-artifact' },
        /^body\.artifactType is "dataset-artifact": expected one of "model-artifact", "doc-artifact"$/,
      ],
      [
        'POST',
        `/model_versions/${v.id}/artifacts`,
        { artifactType: 'doc-artifact', modelFormatName: 'onnx' },
        /^body: unknown key 'modelFormatName'$/,
      ],
      [
        'POST',
        `/model_versions/${v.id}/artifacts`,
        { state: 'GONE' },
        /^body\.state is "GONE": expected one of "UNKNOWN", "PENDING", "LIVE"/,
      ],
      [
        'POST',
        '/model_artifacts',
        { artifactType: 'doc-artifact' },
        /^body\.artifactType is "doc-artifact": expected "model-artifact"$/,
      ],
      ['PATCH', `/model_versions/${v.id}`, { state: 'LIVE', extra: 1 }, /^body: unknown key 'extra'$/],
      [
        'GET',
        '/registered_models?pageSize=0',
        undefined,
        /^query\.pageSize is "0": expected a positive integer such as "100"$/,
      ],
      [
        'GET',
        '/registered_models?orderBy=NAME',
        undefined,
        /^query\.orderBy is "NAME": expected one of "CREATE_TIME", "LAST_UPDATE_TIME", "ID"$/,
      ],
      [
        'GET',
        '/registered_models?sortOrder=up',
        undefined,
        /^query\.sortOrder is "up": expected one of "ASC", "DESC"$/,
      ],
      [
        'GET',
        '/registered_models?nextPageToken=garbage',
        undefined,
        /^query\.nextPageToken is "garbage": not a token this registry issued/,
      ],
      [
        'GET',
        "/registered_models?filterQuery=name%3D'x'",
        undefined,
        /^query\.filterQuery is "name='x'": filter queries are not supported/,
      ],
      [
        'GET',
        '/registered_models/0',
        undefined,
        /^path\.registeredmodelId is "0": expected a decimal id such as "1"$/,
      ],
      ['GET', '/model_versions/x1', undefined, /^path\.modelversionId is "x1": expected a decimal id/],
    ];
    for (const [method, path, json, message] of cases) await fails(method, path, 400, message, json);

    const raw = await core.api(`${MODEL_REGISTRY_API_PATH}/registered_models`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"name": ',
    });
    assert.equal(raw.status, 400);
    const body = (await raw.json()) as { code: string; message: string };
    assert.equal(body.code, '400');
    assert.match(body.message, /request body is not valid JSON/);
    spec?.checkResponse('POST', `${MODEL_REGISTRY_API_PATH}/registered_models`, raw.status, body);

    await fails('POST', '/registered_models', 413, /^request body is larger than the limit of 65536 bytes$/, {
      name: 'big',
      description: 'x'.repeat(70_000),
    });
  });

  test('paging walks every item exactly once, in every order', async () => {
    // Equal timestamps for some rows (frozen clock), so ties are broken by id.
    const created: RegisteredModel[] = [];
    for (let i = 0; i < 11; i++) {
      step = i % 3 === 0 ? 1000 : 0;
      created.push(await registerModel(fresh('page')));
    }
    step = 1000;
    // Touch some, so LAST_UPDATE_TIME order differs from CREATE_TIME order.
    for (const m of [created[4], created[1], created[9]])
      await ok('PATCH', `/registered_models/${m!.id}`, { description: 'touched' });

    const all = (await ok('GET', '/registered_models?pageSize=1000')).items as RegisteredModel[];
    assert.ok(all.length >= created.length);
    const key = {
      ID: (m: RegisteredModel) => Number(m.id),
      CREATE_TIME: (m: RegisteredModel) => Number(m.createTimeSinceEpoch),
      LAST_UPDATE_TIME: (m: RegisteredModel) => Number(m.lastUpdateTimeSinceEpoch),
    };
    for (const orderBy of ['ID', 'CREATE_TIME', 'LAST_UPDATE_TIME'] as const) {
      for (const sortOrder of ['ASC', 'DESC'] as const) {
        const sign = sortOrder === 'ASC' ? 1 : -1;
        const expected = [...all]
          .sort((a, b) => sign * (key[orderBy](a) - key[orderBy](b) || Number(a.id) - Number(b.id)))
          .map((m) => m.id);
        const seen: string[] = [];
        let token = '';
        let pages = 0;
        do {
          // After the first page, the token alone carries the order.
          const query =
            token === ''
              ? `pageSize=4&orderBy=${orderBy}&sortOrder=${sortOrder}`
              : `pageSize=4&nextPageToken=${encodeURIComponent(token)}`;
          const page = await ok('GET', `/registered_models?${query}`);
          assert.equal(page.pageSize, 4);
          assert.equal(page.size, page.items.length);
          assert.ok(page.size <= 4);
          seen.push(...page.items.map((m: RegisteredModel) => m.id));
          token = page.nextPageToken;
          pages += 1;
          assert.ok(pages < 100, 'paging ends');
        } while (token !== '');
        assert.equal(new Set(seen).size, seen.length, `${orderBy} ${sortOrder}: no duplicates`);
        assert.deepEqual(seen, expected, `${orderBy} ${sortOrder}: every item, in order`);
      }
    }

    // A token continues only the order it was made for.
    const first = await ok('GET', '/registered_models?pageSize=2&orderBy=CREATE_TIME&sortOrder=DESC');
    await fails(
      'GET',
      `/registered_models?nextPageToken=${encodeURIComponent(first.nextPageToken)}&orderBy=ID`,
      400,
      /continues a list ordered by CREATE_TIME DESC, not ID DESC/,
    );
    // A page size above the cap is capped, and said so.
    assert.equal((await ok('GET', '/registered_models?pageSize=5000')).pageSize, 1000);
    // Rows added while paging appear after the token, never twice.
    const start = await ok('GET', '/registered_models?pageSize=3');
    const late = await registerModel(fresh('late'));
    let token = start.nextPageToken as string;
    const rest: string[] = [];
    while (token !== '') {
      const page = await ok(
        'GET',
        `/registered_models?pageSize=50&nextPageToken=${encodeURIComponent(token)}`,
      );
      rest.push(...page.items.map((m: RegisteredModel) => m.id));
      token = page.nextPageToken;
    }
    assert.equal(rest.filter((id) => id === late.id).length, 1);
    assert.ok(!start.items.some((m: RegisteredModel) => rest.includes(m.id)));
  });

  test('admin and site tokens read, only admin tokens write, no token is 401', async () => {
    const model = await registerModel();
    const site = await core.enrollSite(fresh('site'));
    const read = await call('GET', `/registered_models/${model.id}`, { token: site.token });
    assert.equal(read.status, 200);
    assert.equal((await call('GET', '/registered_models', { token: site.token })).status, 200);
    for (const [method, path, json] of [
      ['POST', '/registered_models', { name: fresh('site-made') }],
      ['PATCH', `/registered_models/${model.id}`, { description: 'x' }],
      ['POST', `/registered_models/${model.id}/versions`, { name: '1' }],
    ] as const) {
      const denied = await call(method, path, { token: site.token, json });
      assert.equal(denied.status, 403, `${method} ${path}`);
      assert.equal(denied.body.code, '403');
      assert.match(denied.body.message, /admin token/);
    }
    const anonymous = await call('GET', '/registered_models', { token: null });
    assert.equal(anonymous.status, 401);
    assert.equal(anonymous.body.code, '401');
    const bogus = await call('GET', '/registered_models', {
      token: 'aie_0000000000000000_' + 'a'.repeat(43),
    });
    assert.equal(bogus.status, 401);
    const enrollment = await createToken(core.core.context.store.db, { kind: 'enrollment', ttlSeconds: 600 });
    const enrolling = await call('GET', '/registered_models', { token: enrollment.token });
    assert.equal(enrolling.status, 403);
    assert.equal(enrolling.body.code, '403');
  });
});
