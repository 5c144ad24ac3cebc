/** Version of the serving runtime (kept equal to packages/runtime/package.json; a test checks it). */
export const RUNTIME_VERSION = '0.1.0';

/** Name the runtime reports in `GET /v2`. */
export const RUNTIME_NAME = 'aiedge-serve';
