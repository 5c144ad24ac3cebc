/**
 * The web dashboard at `/`: the static files of package web's build, found at run time (the
 * configured `dashboardDir`, else the `dist` folder next to `@aiedge/web`'s package.json), never
 * imported as code. Client routes (`/sites/edge-1`) get `index.html`; hashed files under
 * `assets/` are cached for a year; the API, `/v2`, `/v1`, `/metrics` and `/healthz` are untouched.
 * When the dashboard is not built, `/` answers a page that says how to build it.
 */
import { existsSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve, sep } from 'node:path';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from '@aiedge/telemetry';

/** URL prefixes that belong to the server, never to the dashboard. */
const SERVER_PREFIXES = ['/api/', '/v2/', '/v1/', '/metrics', '/healthz'] as const;
const SERVER_PATHS = new Set(['/api', '/v2', '/v1']);
/** Hashed build output: its names change with its content. */
const ASSETS_PREFIX = '/assets/';
const ONE_YEAR_MS = 365 * 24 * 3600 * 1000;

/** Headers of every dashboard page (the app loads only its own scripts and talks only to this server). */
const PAGE_HEADERS = {
  'content-security-policy':
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
    "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
} as const;

/**
 * Where the built dashboard is: `configured` when given, else `dist` of the installed `@aiedge/web`
 * (resolved through Node's package resolution from this file). Undefined when neither is found.
 */
export function resolveDashboardDir(configured: string | undefined): string | undefined {
  if (configured !== undefined) return resolve(configured);
  try {
    const manifest = createRequire(import.meta.url).resolve('@aiedge/web/package.json');
    return join(dirname(manifest), 'dist');
  } catch {
    return undefined;
  }
}

/** True when `dir` holds a built dashboard (its `index.html`). */
export function isDashboardBuilt(dir: string | undefined): dir is string {
  return dir !== undefined && existsSync(join(dir, 'index.html'));
}

function escapeHtml(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c,
  );
}

/** The page `/` answers when there is no build to serve. */
export function notBuiltPage(dir: string | undefined): string {
  const where =
    dir === undefined
      ? 'package <code>@aiedge/web</code> is not installed next to the core'
      : `<code>${escapeHtml(join(dir, 'index.html'))}</code> does not exist`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ai-edge core: dashboard not built</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: system-ui, sans-serif; max-width: 44rem; margin: 3rem auto; padding: 0 1rem; line-height: 1.5">
<h1>The dashboard is not built</h1>
<p>This core serves its web dashboard from the build of package <code>web</code>, and ${where}.</p>
<p>Build it from the repository root:</p>
<pre style="background: #f3f4f6; padding: 0.75rem 1rem">npm run build -w packages/web</pre>
<p>(<code>npm ci</code> builds it too.) Or point the core at a built copy with
<code>dashboardDir</code> (<code>AIEDGE_CORE_DASHBOARD_DIR</code>). No restart is needed after building.</p>
<p>The API works meanwhile: <a href="/api/v1/openapi.json">/api/v1/openapi.json</a> (with a token).</p>
</body></html>
`;
}

function isServerPath(path: string): boolean {
  return SERVER_PATHS.has(path) || SERVER_PREFIXES.some((p) => path === p || path.startsWith(p));
}

/** The URL path of a request, decoded; undefined when it cannot be decoded. */
function pathOf(request: FastifyRequest): string | undefined {
  const raw = request.url.split('?')[0] ?? '/';
  try {
    return decodeURIComponent(raw);
  } catch {
    return undefined;
  }
}

/** True for `.` and `..` segments (after decoding): never a file of the build, nor a client route. */
function hasDotSegment(path: string): boolean {
  return path.split(/[/\\]/).some((s) => s === '..' || s === '.');
}

/** The file under `dir` that `path` names, when it is a regular file inside `dir`. */
function fileFor(dir: string, path: string): string | undefined {
  const file = resolve(dir, `.${path}`);
  if (file !== dir && !file.startsWith(dir + sep)) return undefined;
  try {
    return statSync(file).isFile() ? file.slice(dir.length + 1) : undefined;
  } catch {
    return undefined;
  }
}

/** Options of {@link registerDashboard}. */
export interface DashboardOptions {
  /** Configured directory of the build; default: `@aiedge/web`'s `dist`. */
  readonly dir: string | undefined;
  readonly logger: Logger;
}

/** Serves the dashboard at `/` (public: the app asks for a token and sends it to the API itself). */
export async function registerDashboard(app: FastifyInstance, options: DashboardOptions): Promise<void> {
  const dir = resolveDashboardDir(options.dir);
  if (isDashboardBuilt(dir)) options.logger.debug('dashboard', { dir });
  else options.logger.info('dashboard is not built: / explains how to build it', { dir: dir ?? null });
  const root = dir ?? resolve('.');
  await app.register(fastifyStatic, {
    root,
    serve: false,
    preCompressed: true,
    suppressWarning: true,
  });

  const serve = async (request: FastifyRequest, reply: FastifyReply) => {
    const path = pathOf(request);
    if (path === undefined || isServerPath(path) || hasDotSegment(path)) return reply.callNotFound();
    if (!isDashboardBuilt(dir)) {
      return reply
        .code(503)
        .headers(PAGE_HEADERS)
        .header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'")
        .header('cache-control', 'no-store')
        .type('text/html; charset=utf-8')
        .send(notBuiltPage(dir));
    }
    const file = path === '/' ? undefined : fileFor(dir, path);
    if (file !== undefined) {
      const hashed = path.startsWith(ASSETS_PREFIX);
      if (file.endsWith('.html')) void reply.headers(PAGE_HEADERS);
      if (hashed) return reply.sendFile(file, dir, { maxAge: ONE_YEAR_MS, immutable: true });
      void reply.header('cache-control', 'no-cache');
      return reply.sendFile(file, dir, { cacheControl: false });
    }
    // A file that is not there (a name with an extension, or under assets/) is a 404, not the app.
    const last = path.slice(path.lastIndexOf('/') + 1);
    if (path.startsWith(ASSETS_PREFIX) || last.includes('.')) return reply.callNotFound();
    // A client route: the app, which routes in the browser.
    void reply.headers(PAGE_HEADERS).header('cache-control', 'no-cache');
    return reply.sendFile('index.html', dir, { cacheControl: false });
  };

  // Outside the API's authenticated context: public, like /healthz.
  app.get('/', { schema: { hide: true } }, serve);
  app.get('/*', { schema: { hide: true } }, serve);
}
