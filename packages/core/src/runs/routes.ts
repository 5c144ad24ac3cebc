/**
 * Pipeline runs API (admin tokens only): start a run, list and get runs, follow a run's logs as
 * Server-Sent Events (or read them as plain text), cancel a run. Execution is the {@link RunService}'s.
 */
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type } from '@sinclair/typebox';
import { parse as parseYaml } from 'yaml';
import {
  CreateRunRequestSchema,
  InputError,
  PipelineRunSchema,
  RunListSchema,
  RunStatusSchema,
  describeValue,
  isRunFinished,
  type CreateRunRequest,
  type PipelineRun,
  type RunLogLine,
  type RunStatus,
  type RunStreamEvent,
} from '@aiedge/protocol';
import { principalOf, requireAdmin } from '../auth.js';
import type { CoreArea, CoreContext } from '../context.js';
import type { PipelineExecutor } from './executor.js';
import { DefaultPipelineExecutor } from './default-executor.js';
import type { RunRecorder } from './recorder.js';
import { toRunLogLine } from './rows.js';
import { RUN_ID_PATTERN, RunService, type RunServiceOptions } from './service.js';

export type { PipelineExecutor } from './executor.js';

/** Options of {@link runsArea} (tests shrink the timings). */
export interface RunsAreaOptions extends RunServiceOptions {
  /** Interval of SSE heartbeat comments. Default 15000. */
  readonly heartbeatMs?: number;
}

const RunIdParams = Type.Object({ id: Type.String({ pattern: RUN_ID_PATTERN, description: 'Run id' }) });
const ListQuery = Type.Object(
  {
    status: Type.Optional(RunStatusSchema),
    pipeline: Type.Optional(Type.String({ minLength: 1, maxLength: 253 })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200, default: 50 })),
    cursor: Type.Optional(Type.String({ pattern: RUN_ID_PATTERN })),
  },
  { additionalProperties: false },
);
const LogsQuery = Type.Object(
  {
    follow: Type.Optional(
      Type.Boolean({
        description: 'false: the stored lines as plain text; true (default): Server-Sent Events',
      }),
    ),
    after: Type.Optional(
      Type.Integer({ minimum: 0, description: 'Only lines with a greater seq (like Last-Event-ID)' }),
    ),
  },
  { additionalProperties: false },
);

/** Log lines read per query when replaying. */
const PAGE_LINES = 1000;
/** A follower that lets this much output pile up unread is dropped. */
const MAX_UNSENT_BYTES = 8 * 1024 * 1024;

/** Parses the `spec` of a request body: a document, or its YAML/JSON text. */
function parseSpec(spec: CreateRunRequest['spec']): unknown {
  if (typeof spec !== 'string') return spec;
  let parsed: unknown;
  try {
    parsed = parseYaml(spec, { maxAliasCount: 100 });
  } catch (error) {
    throw new InputError(
      `body.spec is not valid YAML or JSON: ${(error as Error).message.split('\n')[0] ?? ''}`,
      {
        cause: error,
      },
    );
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new InputError(
      `body.spec is text whose document is ${describeValue(parsed)}: expected a pipeline document (a mapping)`,
    );
  }
  return parsed;
}

/** The `seq` to resume after: `Last-Event-ID` (what a reconnecting EventSource sends), else `?after`. */
function resumeAfter(request: FastifyRequest<{ Querystring: { after?: number } }>): number {
  const header = request.headers['last-event-id'];
  if (header === undefined) return request.query.after ?? 0;
  const value = Array.isArray(header) ? header[0] : header;
  if (value === undefined || !/^\d{1,15}$/.test(value.trim())) {
    throw new InputError(`headers.last-event-id is ${describeValue(value)}: expected a log seq number`);
  }
  return Number(value.trim());
}

function logText(line: RunLogLine): string {
  const stream = line.stream === 'stdout' ? '' : `(${line.stream}) `;
  return `[${line.task ?? 'run'}] ${stream}${line.line}\n`;
}

/** The pipeline runs area. Without an executor, runs use the {@link DefaultPipelineExecutor}. */
export function runsArea(
  context: CoreContext,
  executor: PipelineExecutor | undefined,
  options: RunsAreaOptions = {},
): CoreArea {
  const service = new RunService(
    context,
    executor ?? new DefaultPipelineExecutor(join(context.config.data, 'build-store')),
    options,
  );
  const { db } = context.store;

  async function* storedLines(id: string, after: number, upTo: number): AsyncGenerator<RunLogLine> {
    let from = after;
    for (;;) {
      const rows = await db
        .selectFrom('run_logs')
        .select(['seq', 'task', 'stream', 'at', 'line'])
        .where('run_id', '=', id)
        .where('seq', '>', from)
        .where('seq', '<=', upTo)
        .orderBy('seq')
        .limit(PAGE_LINES)
        .execute();
      for (const row of rows) yield toRunLogLine(row);
      const last = rows.at(-1);
      if (last === undefined || rows.length < PAGE_LINES) return;
      from = last.seq;
    }
  }

  /** Streams the run as Server-Sent Events: snapshot, stored lines, then live events until `end`. */
  async function follow(reply: FastifyReply, id: string, after: number): Promise<void> {
    const res = reply.raw;
    let closed = false;
    let live = false;
    let lastSeq = after;
    const buffered: RunStreamEvent[] = [];
    let unsubscribe = () => {};
    let heartbeat: NodeJS.Timeout | undefined;
    const close = () => {
      if (closed) return;
      closed = true;
      clearInterval(heartbeat);
      unsubscribe();
      context.shutdown.removeEventListener('abort', close);
      res.end();
    };
    const write = (chunk: string): boolean => {
      if (closed) return false;
      const flowing = res.write(chunk);
      if (!flowing && res.writableLength > MAX_UNSENT_BYTES) close();
      return flowing;
    };
    const send = (event: RunStreamEvent): boolean => {
      if (event.event === 'log') {
        if (event.data.seq <= lastSeq) return true;
        lastSeq = event.data.seq;
        return write(`id: ${event.data.seq}\nevent: log\ndata: ${JSON.stringify(event.data)}\n\n`);
      }
      const flowing = write(`event: ${event.event}\ndata: ${JSON.stringify(event.data)}\n\n`);
      if (event.event === 'end') close();
      return flowing;
    };
    const drained = () =>
      new Promise<void>((resolve) => {
        const done = () => {
          res.off('drain', done);
          res.off('close', done);
          resolve();
        };
        res.on('drain', done);
        res.on('close', done);
      });

    reply.hijack();
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.on('close', close);
    context.shutdown.addEventListener('abort', close, { once: true });
    if (context.shutdown.aborted) return close();
    write('retry: 2000\n\n');

    // Subscribe and take the snapshot between two writes of the run: no event is missed or replayed twice.
    const recorder: RunRecorder | undefined = service.recorder(id);
    let snapshot: PipelineRun;
    let upTo = Number.MAX_SAFE_INTEGER;
    const attach = async () => {
      if (recorder !== undefined) {
        unsubscribe = recorder.subscribe((event) => (live ? send(event) : buffered.push(event)));
        upTo = recorder.committedSeq;
      }
      snapshot = await service.get(id);
    };
    try {
      if (recorder !== undefined) await recorder.exclusive(attach);
      else await attach();
      const { tasks, spec: _spec, ...summary } = snapshot!;
      send({ event: 'status', data: summary });
      for (const task of tasks) send({ event: 'task', data: task });
      for await (const line of storedLines(id, after, upTo)) {
        if (closed) return;
        if (!send({ event: 'log', data: line })) await drained();
      }
      if (isRunFinished(summary.status) && !buffered.some((e) => e.event === 'end')) {
        send({ event: 'end', data: summary });
        return;
      }
      live = true;
      for (const event of buffered.splice(0)) send(event);
      heartbeat = setInterval(() => write(': heartbeat\n\n'), options.heartbeatMs ?? 15_000);
    } catch (error) {
      context.logger.warn('run log stream failed', { run: id, err: error });
      close();
    }
  }

  return {
    name: 'runs',
    start: () => service.start(),
    close: () => service.close(),
    register: async (app) => {
      await app.register(async (scope) => {
        // Admin only, refused before the body is even parsed.
        scope.addHook('onRequest', async (request) => requireAdmin(request));

        scope.post<{ Body: CreateRunRequest }>(
          '/api/v1/pipelines/runs',
          {
            schema: {
              tags: ['pipelines'],
              summary: 'Start a pipeline run (queued until a slot of the run pool is free)',
              body: CreateRunRequestSchema,
              response: { 201: PipelineRunSchema },
            },
          },
          async (request, reply) => {
            const run = await service.create({
              spec: parseSpec(request.body.spec),
              params: request.body.params ?? {},
              requestedBy: principalOf(request).tokenId,
              specPath: 'body.spec',
              paramsPath: 'body.params',
            });
            return reply.code(201).header('location', `/api/v1/pipelines/runs/${run.id}`).send(run);
          },
        );

        scope.get<{
          Querystring: { status?: RunStatus; pipeline?: string; limit?: number; cursor?: string };
        }>(
          '/api/v1/pipelines/runs',
          {
            schema: {
              tags: ['pipelines'],
              summary: 'List pipeline runs, newest first',
              querystring: ListQuery,
              response: { 200: RunListSchema },
            },
          },
          async (request) => service.list(request.query),
        );

        scope.get<{ Params: { id: string } }>(
          '/api/v1/pipelines/runs/:id',
          {
            schema: {
              tags: ['pipelines'],
              summary: 'Get a pipeline run: status, reason, timings, results and its tasks',
              params: RunIdParams,
              response: { 200: PipelineRunSchema },
            },
          },
          async (request) => service.get(request.params.id),
        );

        scope.get<{ Params: { id: string }; Querystring: { follow?: boolean; after?: number } }>(
          '/api/v1/pipelines/runs/:id/logs',
          {
            schema: {
              tags: ['pipelines'],
              summary: 'Follow a run as Server-Sent Events, or read its stored logs as text (follow=false)',
              description:
                'Events: `status` (the run, first and on each change), `task` (a task, on connect and on each change), ' +
                '`log` (a RunLogLine; its SSE id is `seq`) and `end` (the run finished; the stream closes). ' +
                'Resumes after `Last-Event-ID` or `?after=seq`. A comment is sent every 15 s as heartbeat.',
              params: RunIdParams,
              querystring: LogsQuery,
              response: {
                200: {
                  description: 'The event stream, or the stored log as text',
                  content: {
                    'text/event-stream': { schema: Type.String() },
                    'text/plain': { schema: Type.String() },
                  },
                },
              },
            },
          },
          async (request, reply) => {
            const { id } = request.params;
            const after = resumeAfter(request);
            await service.get(id); // 404 before anything is sent
            if (request.query.follow === false) {
              const lines = storedLines(id, after, Number.MAX_SAFE_INTEGER);
              const text = Readable.from(
                (async function* () {
                  for await (const line of lines) yield logText(line);
                })(),
              );
              return reply.type('text/plain; charset=utf-8').send(text);
            }
            await follow(reply, id, after);
            return reply;
          },
        );

        scope.post<{ Params: { id: string } }>(
          '/api/v1/pipelines/runs/:id/cancel',
          {
            schema: {
              tags: ['pipelines'],
              summary: 'Cancel a queued or running run (409 when it already finished)',
              params: RunIdParams,
              response: { 200: PipelineRunSchema },
            },
          },
          async (request) => service.cancel(request.params.id, principalOf(request).tokenId),
        );
      });
    },
  };
}
