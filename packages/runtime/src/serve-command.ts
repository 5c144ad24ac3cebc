import { Command, Option } from 'commander';
import { byteSize, collect, integer, nonNegativeNumber } from './cli-flags.js';
import { parseModelFlag, resolveServeOptions, type ServeOptionsInput } from './options.js';
import { startServer } from './serve.js';

/** `aiedge serve`: the Open Inference Protocol server that runs inside every inference container. */
export function serveCommand(): Command {
  return new Command('serve')
    .description('Serve ONNX models over the Open Inference Protocol (KServe V2 REST) with ONNX Runtime')
    .addOption(
      new Option('--model-repository <dir>', 'model repository: DIR/<model>/<version>/*.onnx').env(
        'AIEDGE_SERVE_MODEL_REPOSITORY',
      ),
    )
    .addOption(
      new Option(
        '--model <name:path>',
        'serve one model (a model directory or one .onnx file); repeatable',
      ).argParser(collect),
    )
    .addOption(
      new Option('--host <address>', 'address to listen on').env('AIEDGE_SERVE_HOST').default('0.0.0.0'),
    )
    .addOption(
      new Option('--port <n>', 'port to listen on').env('AIEDGE_SERVE_PORT').argParser(integer).default(8080),
    )
    .addOption(
      new Option('--workers <n>', 'inference worker threads (default: one per CPU, at most 4)')
        .env('AIEDGE_SERVE_WORKERS')
        .argParser(integer),
    )
    .addOption(
      new Option('--intra-op-threads <n>', 'ONNX Runtime threads per inference (default: CPUs / workers)')
        .env('AIEDGE_SERVE_INTRA_OP_THREADS')
        .argParser(integer),
    )
    .addOption(
      new Option('--max-body-bytes <size>', 'largest request body, e.g. 67108864 or 64m (default 64m)')
        .env('AIEDGE_SERVE_MAX_BODY_BYTES')
        .argParser(byteSize),
    )
    .addOption(
      new Option('--max-queue <n>', 'requests that may wait for a worker before 503 (default 64 per worker)')
        .env('AIEDGE_SERVE_MAX_QUEUE')
        .argParser(integer),
    )
    .addOption(
      new Option(
        '--repository-poll-seconds <s>',
        're-scan the model repository this often; 0 = never (default 0)',
      )
        .env('AIEDGE_SERVE_REPOSITORY_POLL_SECONDS')
        .argParser(nonNegativeNumber),
    )
    .addOption(
      new Option('--log-level <level>', 'log level')
        .env('AIEDGE_SERVE_LOG_LEVEL')
        .choices(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'])
        .default('info'),
    )
    .addHelpText(
      'after',
      `
Every flag can also be set through its environment variable (AIEDGE_SERVE_<FLAG>, e.g.
AIEDGE_SERVE_PORT=9000); AIEDGE_SERVE_MODELS takes NAME:PATH entries separated by commas.
OpenTelemetry metrics and traces are exported when OTEL_EXPORTER_OTLP_ENDPOINT is set.

Examples:
  $ aiedge serve --model-repository ./models
  $ aiedge serve --model mnist:./mnist.onnx --port 9000 --workers 2
  $ AIEDGE_SERVE_MODEL_REPOSITORY=/models aiedge serve --repository-poll-seconds 10
  $ curl -s localhost:8080/v2/models/mnist
`,
    )
    .action(async (flags: Record<string, unknown>) => {
      const modelFlags = [
        ...((flags['model'] as string[] | undefined) ?? []),
        ...(process.env['AIEDGE_SERVE_MODELS'] ?? '').split(',').filter((s) => s.trim() !== ''),
      ];
      const input: ServeOptionsInput = {
        host: flags['host'] as string,
        port: flags['port'] as number,
        logLevel: flags['logLevel'] as NonNullable<ServeOptionsInput['logLevel']>,
        models: modelFlags.map((m) => parseModelFlag(m.trim())),
      };
      const optional = [
        'modelRepository',
        'workers',
        'intraOpThreads',
        'maxBodyBytes',
        'maxQueue',
        'repositoryPollSeconds',
      ] as const;
      for (const key of optional) {
        if (flags[key] !== undefined) Object.assign(input, { [key]: flags[key] });
      }
      const options = resolveServeOptions(input);
      const server = await startServer(options);
      await new Promise<void>((resolve) => {
        const stop = (): void => {
          process.off('SIGTERM', stop);
          process.off('SIGINT', stop);
          server.close().then(resolve, resolve);
        };
        process.on('SIGTERM', stop);
        process.on('SIGINT', stop);
      });
    });
}
