import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { InputError } from '@aiedge/protocol';
import type { Digest } from './digest.js';
import { formatReference, parseReference, referenceTarget, type ImageReference } from './reference.js';

const D: Digest = `sha256:${'ab'.repeat(32)}`;

describe('parseReference', () => {
  const valid: Array<[string, ImageReference, string]> = [
    ['alpine', { registry: 'docker.io', repository: 'library/alpine' }, 'docker.io/library/alpine'],
    [
      'alpine:3.19',
      { registry: 'docker.io', repository: 'library/alpine', tag: '3.19' },
      'docker.io/library/alpine:3.19',
    ],
    ['user/app', { registry: 'docker.io', repository: 'user/app' }, 'docker.io/user/app'],
    ['docker.io/alpine', { registry: 'docker.io', repository: 'library/alpine' }, 'docker.io/library/alpine'],
    [
      'index.docker.io/library/alpine:latest',
      { registry: 'docker.io', repository: 'library/alpine', tag: 'latest' },
      'docker.io/library/alpine:latest',
    ],
    ['localhost/foo', { registry: 'localhost', repository: 'foo' }, 'localhost/foo'],
    [
      `localhost:5000/a/b:tag@${D}`,
      { registry: 'localhost:5000', repository: 'a/b', tag: 'tag', digest: D },
      `localhost:5000/a/b:tag@${D}`,
    ],
    [
      `ghcr.io/org/app@${D}`,
      { registry: 'ghcr.io', repository: 'org/app', digest: D },
      `ghcr.io/org/app@${D}`,
    ],
    ['127.0.0.1:5000/x', { registry: '127.0.0.1:5000', repository: 'x' }, '127.0.0.1:5000/x'],
    ['[::1]:5000/x:1', { registry: '[::1]:5000', repository: 'x', tag: '1' }, '[::1]:5000/x:1'],
    ['my-registry:5000/app', { registry: 'my-registry:5000', repository: 'app' }, 'my-registry:5000/app'],
    ['Registry.Example/app', { registry: 'Registry.Example', repository: 'app' }, 'Registry.Example/app'],
    // Docker's rule: without a "/" the part after ":" is a tag, not a port.
    [
      'foo:5000',
      { registry: 'docker.io', repository: 'library/foo', tag: '5000' },
      'docker.io/library/foo:5000',
    ],
    [
      'r.io/a.b/c__d/e-f---g:V_1.0-rc',
      { registry: 'r.io', repository: 'a.b/c__d/e-f---g', tag: 'V_1.0-rc' },
      'r.io/a.b/c__d/e-f---g:V_1.0-rc',
    ],
  ];
  for (const [text, expected, canonical] of valid) {
    test(`parses ${text}`, () => {
      const ref = parseReference(text);
      assert.deepEqual(ref, expected);
      assert.equal(formatReference(ref), canonical);
      assert.deepEqual(parseReference(formatReference(ref)), ref);
    });
  }

  const invalid: Array<[string, RegExp]> = [
    ['', /is empty/],
    [' alpine', /whitespace/],
    ['Alpine', /must be lowercase/],
    ['foo/Bar', /must be lowercase/],
    ['a//b', /empty path component/],
    ['a/b/', /empty path component/],
    ['a/b:', /tag ""/],
    ['a:-bad', /tag "-bad"/],
    [`a:${'t'.repeat(129)}`, /tag/],
    ['a@sha256:abc', /64 lowercase hex/],
    ['a@md5:d41d8cd98f00b204e9800998ecf8427e', /algorithm "md5" is not supported/],
    ['a@nodigest', /is not <algorithm>:<hex>/],
    ['localhost:99999/x', /port "99999"/],
    ['bad_host.io/x', /not a hostname/],
    ['[::1/x', /unclosed IPv6/],
    ['r.io/-a', /component "-a"/],
    ['r.io/a..b', /component "a\.\.b"/],
    [`r.io/${'a'.repeat(256)}`, /at most 255/],
    [':tag', /repository name is empty/],
  ];
  for (const [text, message] of invalid) {
    test(`rejects ${JSON.stringify(text.slice(0, 40))}`, () => {
      assert.throws(
        () => parseReference(text),
        (error: unknown) => {
          assert.ok(error instanceof InputError, String(error));
          assert.match(error.message, message);
          assert.ok(
            error.message.includes(JSON.stringify(text)),
            `message names the reference: ${error.message}`,
          );
          return true;
        },
      );
    });
  }

  test('referenceTarget prefers the digest, then the tag, then latest', () => {
    assert.equal(referenceTarget(parseReference(`a:1@${D}`)), D);
    assert.equal(referenceTarget(parseReference('a:1')), '1');
    assert.equal(referenceTarget(parseReference('a')), 'latest');
  });
});
