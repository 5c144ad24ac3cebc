import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createSource } from './index.js';

test('createSource picks the module of each kind', () => {
  const sha256 = '0'.repeat(64);
  assert.equal(createSource({ s3: { bucket: 'b', key: 'k' } }).kind, 's3');
  assert.equal(createSource({ git: { url: 'file:///srv/m.git' } }).kind, 'git');
  assert.equal(
    createSource({ registry: { url: 'http://127.0.0.1:8080', model: 'm', version: 'v' } }).kind,
    'registry',
  );
  assert.equal(createSource({ http: { url: 'http://127.0.0.1/m.onnx', sha256 } }).kind, 'http');
  assert.equal(createSource({ oci: { ref: '127.0.0.1:5000/m:1' } }).kind, 'oci');
  assert.equal(createSource({ local: { path: 'm.onnx' } }).kind, 'local');
  assert.throws(
    () => createSource({ s3: { bucket: 'b' } }),
    /spec\.source\.s3: set exactly one of key or prefix/,
  );
  assert.throws(() => createSource({ oci: { ref: 'UPPER/Case' } }), /spec\.source\.oci\.ref/);
});
