export {
  LogLevels,
  createLogger,
  parseLogLevel,
  silentLogger,
  type LogLevel,
  type Logger,
  type LoggerOptions,
} from './logger.js';
export {
  extractTraceContext,
  injectTraceContext,
  startTelemetry,
  type Telemetry,
  type TelemetryOptions,
} from './otel.js';
