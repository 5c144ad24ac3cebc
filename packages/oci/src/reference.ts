/**
 * Image references (`registry/repository[:tag][@digest]`) parsed by Docker's rules: a first path
 * component with a `.` or `:`, or `localhost`, is the registry; otherwise the registry is
 * `docker.io`, where single-component names live under `library/`.
 */
import { InputError } from '@aiedge/protocol';
import type { Digest } from './digest.js';

/** A parsed image reference; `tag` and `digest` may both be present (the digest wins). */
export interface ImageReference {
  /** Registry host with optional port: `docker.io`, `localhost:5000`, `[::1]:5000`. */
  registry: string;
  /** Repository path on the registry: `library/alpine`, `team/models/resnet`. */
  repository: string;
  /** Tag, when given. */
  tag?: string;
  /** Manifest digest, when given. */
  digest?: Digest;
}

/** The registry of references that name none. */
export const DEFAULT_REGISTRY = 'docker.io';
/** The tag a client uses when a reference has neither tag nor digest. */
export const DEFAULT_TAG = 'latest';

const MAX_NAME_LENGTH = 255;
/** One repository path component (distribution's `path-component`). */
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const HOST_LABEL = /^(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])$/;
const PORT = /^[0-9]{1,5}$/;
const IPV6 = /^\[[A-Fa-f0-9:.]+(?:%[A-Za-z0-9]+)?\]$/;
const DIGEST = /^([a-z0-9]+(?:[+._-][a-z0-9]+)*):([A-Za-z0-9=_-]+)$/;

function invalid(ref: string, what: string): InputError {
  return new InputError(`image reference ${JSON.stringify(ref)} is invalid: ${what}`);
}

/** Checks a registry host (`host[:port]`, `[ipv6][:port]`); returns a description of the problem or undefined. */
function registryProblem(registry: string): string | undefined {
  let host = registry;
  let port: string | undefined;
  if (registry.startsWith('[')) {
    const close = registry.indexOf(']');
    if (close < 0) return `registry ${JSON.stringify(registry)} has an unclosed IPv6 bracket`;
    host = registry.slice(0, close + 1);
    const rest = registry.slice(close + 1);
    if (rest !== '') {
      if (!rest.startsWith(':'))
        return `registry ${JSON.stringify(registry)} has junk after the IPv6 address`;
      port = rest.slice(1);
    }
    if (!IPV6.test(host)) return `registry ${JSON.stringify(registry)} is not a valid IPv6 address`;
  } else {
    const colon = registry.lastIndexOf(':');
    if (colon >= 0) {
      host = registry.slice(0, colon);
      port = registry.slice(colon + 1);
    }
    if (host === '') return `registry ${JSON.stringify(registry)} has an empty host`;
    for (const label of host.split('.')) {
      if (!HOST_LABEL.test(label)) {
        return `registry host ${JSON.stringify(host)} is not a hostname (labels of letters, digits and inner dashes)`;
      }
    }
  }
  if (port !== undefined && (!PORT.test(port) || Number(port) > 65535)) {
    return `registry port ${JSON.stringify(port)} is not a number from 0 to 65535`;
  }
  return undefined;
}

/** True when the first path component of a name is a registry host rather than a repository part. */
function looksLikeRegistry(component: string): boolean {
  return (
    component.includes('.') ||
    component.includes(':') ||
    component === 'localhost' ||
    component !== component.toLowerCase()
  );
}

/**
 * Parses an image reference such as `alpine`, `ghcr.io/org/app:1.2`, or
 * `localhost:5000/a/b:tag@sha256:…`; throws InputError naming the reference and what is wrong.
 */
export function parseReference(ref: string): ImageReference {
  if (typeof ref !== 'string' || ref === '') throw invalid(String(ref), 'it is empty');
  if (/\s/.test(ref)) throw invalid(ref, 'it contains whitespace');

  let rest = ref;
  let digest: Digest | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    const digestText = rest.slice(at + 1);
    rest = rest.slice(0, at);
    const m = DIGEST.exec(digestText);
    if (m === null) throw invalid(ref, `digest ${JSON.stringify(digestText)} is not <algorithm>:<hex>`);
    if (m[1] !== 'sha256')
      throw invalid(ref, `digest algorithm ${JSON.stringify(m[1])} is not supported (only sha256)`);
    if (!/^[a-f0-9]{64}$/.test(m[2] ?? '')) {
      throw invalid(ref, `digest ${JSON.stringify(digestText)} does not have 64 lowercase hex digits`);
    }
    digest = digestText as Digest;
  }

  let tag: string | undefined;
  const lastColon = rest.lastIndexOf(':');
  if (lastColon > rest.lastIndexOf('/')) {
    tag = rest.slice(lastColon + 1);
    rest = rest.slice(0, lastColon);
    if (!TAG.test(tag)) {
      throw invalid(
        ref,
        `tag ${JSON.stringify(tag)} must be 1-128 of [A-Za-z0-9_.-], not starting with . or -`,
      );
    }
  }
  if (rest === '') throw invalid(ref, 'the repository name is empty');

  let registry: string = DEFAULT_REGISTRY;
  let repository = rest;
  const slash = rest.indexOf('/');
  if (slash >= 0 && looksLikeRegistry(rest.slice(0, slash))) {
    registry = rest.slice(0, slash);
    repository = rest.slice(slash + 1);
    const problem = registryProblem(registry);
    if (problem !== undefined) throw invalid(ref, problem);
  }
  if (registry === 'index.docker.io' || registry === 'registry-1.docker.io') registry = DEFAULT_REGISTRY;
  if (registry === DEFAULT_REGISTRY && !repository.includes('/')) repository = `library/${repository}`;

  if (repository === '') throw invalid(ref, 'the repository name is empty');
  if (repository !== repository.toLowerCase()) {
    throw invalid(ref, `repository ${JSON.stringify(repository)} must be lowercase`);
  }
  for (const component of repository.split('/')) {
    if (!PATH_COMPONENT.test(component)) {
      throw invalid(
        ref,
        component === ''
          ? `repository ${JSON.stringify(repository)} has an empty path component`
          : `repository component ${JSON.stringify(component)} must be lowercase letters and digits separated by ".", "_", "__" or "-"`,
      );
    }
  }
  if (repository.length > MAX_NAME_LENGTH) {
    throw invalid(
      ref,
      `repository name is ${repository.length} characters, at most ${MAX_NAME_LENGTH} allowed`,
    );
  }

  return {
    registry,
    repository,
    ...(tag !== undefined ? { tag } : {}),
    ...(digest !== undefined ? { digest } : {}),
  };
}

/** The canonical text of a reference: `registry/repository[:tag][@digest]` (docker.io and library/ kept). */
export function formatReference(ref: ImageReference): string {
  return `${ref.registry}/${ref.repository}${ref.tag !== undefined ? `:${ref.tag}` : ''}${
    ref.digest !== undefined ? `@${ref.digest}` : ''
  }`;
}

/** What a client asks the registry for: the digest if any, else the tag, else `latest`. */
export function referenceTarget(ref: ImageReference): string {
  return ref.digest ?? ref.tag ?? DEFAULT_TAG;
}
